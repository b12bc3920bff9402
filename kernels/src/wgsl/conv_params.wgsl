// Shared by the conv2d kernels: an implicit GEMM out[m, n] = Σ_k w[m, k]·x̂[k, n] with m an output
// channel, n = (b, oy, ox) and k = (ci, ky, kx); x̂ is gathered from x on the fly (no im2col buffer).
// KH, KW and STRIDE are constants so the k decomposition divides by constants.
struct Params {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    ho: u32,
    wo: u32,
    pad: u32,
    // GEMM sizes: N = batch·ho·wo, K = cin·KH·KW.
    n: u32,
    k: u32,
    // conv2d_direct only: blocks of NB columns per output row, their count over all rows, and
    // the count of MB-channel blocks.
    xblocks: u32,
    nblocks: u32,
    mblocks: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const KSZ: u32 = KH * KW;

// Epilogue: bias, activation, store to out[b, m, s] (s = oy·wo + ox).
fn finish(acc: f32, m: u32, b: u32, s: u32) {
    var v = acc;
    if (HAS_BIAS) {
        v = v + ld_bias(m);
    }
    out[(b * p.cout + m) * p.ho * p.wo + s] = activate(v, ACT);
}
