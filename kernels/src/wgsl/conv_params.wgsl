// Shared by the conv2d kernels: an implicit GEMM out[m, n] = Σ_k w[m, k]·x̂[k, n] with m an output
// channel, n = (b, oy, ox) and k = (ci, ky, kx); x̂ is gathered from x on the fly (no im2col buffer).
// KH, KW and STRIDE are constants so the k decomposition divides by constants.
struct Params {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    // GEMM M = Cout.
    gm: u32,
    ho: u32,
    wo: u32,
    pad: u32,
    // GEMM N = batch·ho·wo and K = cin·KH·KW (the weight row length).
    gn: u32,
    k: u32,
    // conv2d_direct only: blocks of NB columns per output row, their count over all rows, and
    // the count of MB-channel blocks.
    xblocks: u32,
    nblocks: u32,
    mblocks: u32,
    // The part of the reduction this dispatch adds (CPU adapters cap an invocation's loop
    // iterations, so long reductions are split over dispatches): input channels [kb, ke) for
    // conv2d_direct, k in [kb, ke) for conv2d_tiled.
    kb: u32,
    ke: u32,
    // Bit 0: add to what earlier dispatches wrote; bit 1: last part, apply bias and activation.
    flags: u32,
}

const KSZ: u32 = KH * KW;

// Epilogue: (accumulate,) bias, activation, residual (same layout as out), store to out[b, m, s]
// (s = oy·wo + ox).
fn finish(acc: f32, m: u32, b: u32, s: u32) {
    let i = (b * p.gm + m) * p.ho * p.wo + s;
    var v = acc;
    if ((p.flags & 1u) != 0u) {
        v = v + out[i];
    }
    if ((p.flags & 2u) != 0u) {
        if (HAS_BIAS) {
            v = v + ld_bias(m);
        }
        v = activate(v, ACT);
        if (HAS_RESIDUAL) {
            v = v + ld_residual(i);
        }
    }
    out[i] = v;
}
