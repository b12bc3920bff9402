// GPU variant of the input gradient of one phase (see conv_grad_params.wgsl), the transposed
// convolution as an implicit GEMM (tile loop of gemm_tiled.wgsl): M = Cin, N = B·hq·wq,
// K = Cout·NKY·NKX with k = (co, tky, tkx); A = the weights, B = g gathered on the fly (zero
// outside the output), so only the taps that reach this phase are visited.
const NT: u32 = NKY * NKX;

struct Col {
    gbase: u32,
    oyb: i32,
    oxb: i32,
}

fn col_of(n: u32) -> Col {
    let q = p.hq * p.wq;
    let r = n % q;
    return Col((n / q) * p.cout * p.ho * p.wo, i32(r / p.wq + p.dy0), i32(r % p.wq + p.dx0));
}

fn a_at(m: u32, k: u32) -> f32 {
    let co = k / NT;
    let t = k % NT;
    let ky = p.ky0 + STRIDE * (t / NKX);
    let kx = p.kx0 + STRIDE * (t % NKX);
    return ld_w((co * p.cin + m) * KSZ + ky * KW + kx);
}

fn b_at(c: Col, k: u32) -> f32 {
    let co = k / NT;
    let t = k % NT;
    let oy = c.oyb - i32(t / NKX);
    let ox = c.oxb - i32(t % NKX);
    // Negative coordinates wrap to large u32 and fail the same test as too-large ones.
    if (u32(oy) < p.ho && u32(ox) < p.wo) {
        return ld_g(c.gbase + (co * p.ho + u32(oy)) * p.wo + u32(ox));
    }
    return 0.0;
}

fn epilogue(m: u32, n: u32, v: f32) {
    let q = p.hq * p.wq;
    let r = n % q;
    let iy = p.py + STRIDE * (r / p.wq);
    let ix = p.px + STRIDE * (r % p.wq);
    emit(((n / q) * p.cin + m) * p.h * p.w + iy * p.w + ix, v);
}
