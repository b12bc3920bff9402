// GPU variant of the weight gradient, an implicit GEMM (tile loop of gemm_tiled.wgsl):
// M = Cout, N = Cin·KH·KW with n = (ci, ky, kx), K = B·Ho·Wo with k = (b, oy, ox); A = g,
// B = x gathered on the fly (implicit im2col, zero in the padding). dW[m, n] is out[m·N + n].
struct Col {
    xoff: u32,
    dy: i32,
    dx: i32,
}

fn col_of(n: u32) -> Col {
    let r = n % KSZ;
    return Col((n / KSZ) * p.h * p.w, i32(r / KW) - i32(p.pad), i32(r % KW) - i32(p.pad));
}

fn a_at(m: u32, k: u32) -> f32 {
    let hw = p.ho * p.wo;
    return ld_g(((k / hw) * p.cout + m) * hw + k % hw);
}

fn b_at(c: Col, k: u32) -> f32 {
    let hw = p.ho * p.wo;
    let s = k % hw;
    let iy = i32((s / p.wo) * STRIDE) + c.dy;
    let ix = i32((s % p.wo) * STRIDE) + c.dx;
    // Negative coordinates wrap to large u32 and fail the same test as too-large ones.
    if (u32(iy) < p.h && u32(ix) < p.w) {
        return ld_x((k / hw) * p.cin * p.h * p.w + c.xoff + u32(iy) * p.w + u32(ix));
    }
    return 0.0;
}

fn epilogue(m: u32, n: u32, v: f32) {
    emit(m * p.gn + n, v);
}
