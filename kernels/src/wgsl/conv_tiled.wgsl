// GPU variant of conv2d (the tile loop of gemm_tiled.wgsl): A = the weights [Cout, K], B = the
// input gathered straight from x (padding reads as zero; the padding checks always remain).
struct Col {
    xbase: u32,
    iy0: i32,
    ix0: i32,
}

fn col_of(n: u32) -> Col {
    let hw = p.ho * p.wo;
    let s = n % hw;
    return Col((n / hw) * p.cin * p.h * p.w, i32((s / p.wo) * STRIDE) - i32(p.pad),
               i32((s % p.wo) * STRIDE) - i32(p.pad));
}

fn a_at(m: u32, k: u32) -> f32 {
    return ld_w(m * p.k + k);
}

fn b_at(c: Col, k: u32) -> f32 {
    let ci = k / KSZ;
    let r = k % KSZ;
    let iy = c.iy0 + i32(r / KW);
    let ix = c.ix0 + i32(r % KW);
    // Negative coordinates wrap to large u32 and fail the same test as too-large ones.
    if (u32(iy) < p.h && u32(ix) < p.w) {
        return ld_x(c.xbase + (ci * p.h + u32(iy)) * p.w + u32(ix));
    }
    return 0.0;
}

fn epilogue(m: u32, n: u32, v: f32) {
    let hw = p.ho * p.wo;
    finish(v, m, n / hw, n % hw);
}
