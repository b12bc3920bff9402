// Attention backward, the part its kernels share (see families/attention.rs for the algorithm).
//
// Layouts as in the forward: q, g (the output's gradient dO) [B, Lq, H, D]; ONE key segment bound
// as k, v [B, seg_len, H, D] whose first key is key seg0 of the forward's Lk = Lk1 + Lk2 keys (the
// host runs the kernels once per segment: both segments are never bound together, nor
// concatenated); bias [Bb, H, Lq, Lk] indexed by the global key seg0 + j.
//
// `stats` holds, per query row r (flat (b, i, h) index): stats[3r] = m, the maximum score, and
// stats[3r + 1] = l = Σ_j exp(s_ij − m), both written by the dQ kernels; stats[3r + 2] = Δ_r =
// dO_r · O_r, written by attention_grad_prep. With a key mask, its values follow at 3·rows: copying
// it there keeps the dK/dV kernel at 8 storage buffers (WebGPU's default limit per stage).
struct Params {
    batch: u32,
    lq: u32,
    heads: u32,
    // Keys of both segments (rows of bias and mask).
    lk: u32,
    seg0: u32,
    seg_len: u32,
    bias_b: u32,
    scale: f32,
    // Workgroups along the row axis (queries for dQ, keys for dK/dV) per (batch, head).
    tiles: u32,
    // This dispatch's range of the loop axis: segment keys for dQ, queries for dK/dV.
    r_begin: u32,
    r_end: u32,
    first: u32,
    last: u32,
    // B·Lq·H.
    rows: u32,
}


const IN_Q: u32 = 0u;
const IN_K: u32 = 1u;
const IN_V: u32 = 2u;
const IN_G: u32 = 3u;

// `which` is always a constant at the call site, so the switch folds away after inlining. Every
// input read here is an operand of a product (q·k and dO·v, dS·k, dSᵀ·q, Pᵀ·dO): rounded to f16
// under ROUND_F16 (q before the scale is applied in f32). The kernels round dS and P themselves.
fn ld_in(which: u32, i: u32) -> f32 {
    switch which {
        case 0u: { return operand(ld_q(i)); }
        case 1u: { return operand(ld_k(i)); }
        case 2u: { return operand(ld_v(i)); }
        default: { return operand(ld_g(i)); }
    }
}


fn q_row(b: u32, h: u32, i: u32) -> u32 {
    return ((b * p.lq + i) * p.heads + h) * D;
}

// Flat offset of row j of the bound key segment.
fn key_row(b: u32, h: u32, j: u32) -> u32 {
    return ((b * p.seg_len + j) * p.heads + h) * D;
}

// Global key jg (both segments) of batch b is attended.
fn key_on(b: u32, jg: u32) -> bool {
    if (!HAS_MASK) {
        return true;
    }
    return stat(3u * p.rows + b * p.lk + jg) != 0.0;
}

fn bias_at(b: u32, h: u32, i: u32, jg: u32) -> f32 {
    if (!HAS_BIAS) {
        return 0.0;
    }
    return ld_bias((((b * p.bias_b) * p.heads + h) * p.lq + i) * p.lk + jg);
}
