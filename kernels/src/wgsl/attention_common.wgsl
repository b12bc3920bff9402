// Fused attention, the part both variants share: parameters, loads, masking and output.
//
// q [B, Lq, H, D]; keys/values in one or two segments k,v [B, Lk1, H, D] and k2,v2 [B, Lk2, H, D]
// (segment 2's keys follow segment 1's: global key j ≥ Lk1 is row j − Lk1 of k2); optional additive
// bias [Bb, H, Lq, Lk1 + Lk2] (bias_b = 1 when Bb = B, 0 when the bias is shared by the batch) and
// key mask [B, Lk1 + Lk2] (0 masks a key). Output [B, Lq, H, D], written as f32.
//
// Each query row is processed by one invocation that keeps q (pre-multiplied by the scale), the
// running maximum m, the running sum l of exp(s − m) and the accumulator Σ exp(s − m)·v in private
// memory: the online softmax. A masked key gets weight 0; a row whose keys are all masked ends with
// l = 0 and is written as zeros. D is a constant, so the rows live in D4 = ⌈D/4⌉ vec4 registers
// whose padding lanes (D not a multiple of 4) are zero and never stored.
//
// Precision f16 (ROUND_F16) rounds the operands of both products as tensor-core flash attention
// does: q, k and v as they are read (`ld_in`), and the weights exp(s − m) (m the running maximum)
// as they multiply v; the scores, the softmax's maximum and sum, the rescaling and the
// accumulators stay f32.
//
// One dispatch covers the keys [j_begin, j_end). When the host splits the keys over several
// dispatches (CPU adapters cap the loop iterations of one invocation), the state carries over:
// the unnormalised accumulator in `out`, (m, l) in `ml`; `first` starts it, `last` normalises.
struct Params {
    batch: u32,
    lq: u32,
    heads: u32,
    lk1: u32,
    lk2: u32,
    bias_b: u32,
    scale: f32,
    // Workgroups along the query axis per (batch, head).
    qtiles: u32,
    j_begin: u32,
    j_end: u32,
    first: u32,
    last: u32,
}


const IN_Q: u32 = 0u;
const IN_K: u32 = 1u;
const IN_V: u32 = 2u;
const IN_K2: u32 = 3u;
const IN_V2: u32 = 4u;

// `which` is always a constant at the call site, so the switch folds away after inlining. Every
// input read here is an operand of a product (q and k of the scores, v of P·V): rounded to f16
// under ROUND_F16 (q before the scale is applied in f32).
fn ld_in(which: u32, i: u32) -> f32 {
    switch which {
        case 0u: { return operand(ld_q(i)); }
        case 1u: { return operand(ld_k(i)); }
        case 2u: { return operand(ld_v(i)); }
        case 3u: { return operand(ld_k2(i)); }
        default: { return operand(ld_v2(i)); }
    }
}


fn key_count() -> u32 {
    return p.lk1 + p.lk2;
}

// Flat offset of key j's row (batch b, head h) inside its segment's tensor.
fn key_row(b: u32, h: u32, j: u32) -> u32 {
    if (HAS_K2 && j >= p.lk1) {
        return ((b * p.lk2 + (j - p.lk1)) * p.heads + h) * D;
    }
    return ((b * p.lk1 + j) * p.heads + h) * D;
}

fn in_second(j: u32) -> bool {
    return HAS_K2 && j >= p.lk1;
}

fn ld_key4(j: u32, row: u32, c: u32) -> vec4<f32> {
    if (in_second(j)) {
        return ld4(IN_K2, row, c);
    }
    return ld4(IN_K, row, c);
}

fn ld_val4(j: u32, row: u32, c: u32) -> vec4<f32> {
    if (in_second(j)) {
        return ld4(IN_V2, row, c);
    }
    return ld4(IN_V, row, c);
}

fn key_on(b: u32, j: u32) -> bool {
    if (!HAS_MASK) {
        return true;
    }
    return ld_mask(b * key_count() + j) != 0.0;
}

fn bias_at(b: u32, h: u32, i: u32, j: u32) -> f32 {
    if (!HAS_BIAS) {
        return 0.0;
    }
    return ld_bias((((b * p.bias_b) * p.heads + h) * p.lq + i) * key_count() + j);
}

fn q_row(b: u32, h: u32, i: u32) -> u32 {
    return ((b * p.lq + i) * p.heads + h) * D;
}

// The accumulator of the output row at flat offset `row` before this dispatch (0 on the first).
fn load_acc(row: u32) -> array<vec4<f32>, D4> {
    var acc: array<vec4<f32>, D4>;
    if (p.first == 0u) {
        for (var c = 0u; c < D4; c = c + 1u) {
            for (var t = 0u; t < 4u; t = t + 1u) {
                if (D % 4u == 0u || 4u * c + t < D) {
                    acc[c][t] = out[row + 4u * c + t];
                }
            }
        }
    }
    return acc;
}

// (m, l) of the output row at flat offset `row` before this dispatch.
fn load_ml(row: u32) -> vec2<f32> {
    if (p.first != 0u) {
        return vec2<f32>(NEG_MAX, 0.0);
    }
    let r = row / D;
    return vec2<f32>(ml[2u * r], ml[2u * r + 1u]);
}

// After the last dispatch out = acc / l (zeros when no key contributed, l = 0); before it the raw
// accumulator and (m, l).
fn store(row: u32, acc: array<vec4<f32>, D4>, m: f32, l: f32) {
    var inv = 1.0;
    if (p.last != 0u) {
        inv = select(0.0, 1.0 / l, l > 0.0);
    } else {
        let r = row / D;
        ml[2u * r] = m;
        ml[2u * r + 1u] = l;
    }
    for (var c = 0u; c < D4; c = c + 1u) {
        let o = acc[c] * inv;
        for (var t = 0u; t < 4u; t = t + 1u) {
            if (D % 4u == 0u || 4u * c + t < D) {
                out[row + 4u * c + t] = o[t];
            }
        }
    }
}
