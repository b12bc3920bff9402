// CPU-adapter variant (register block of conv_block.wgsl): a workgroup owns MB output channels,
// each invocation NB neighbouring columns of one output row; k is walked as (ci, ky, kx), so a
// padded-out input row is skipped whole and k is never divided. Per tap it loads MB weights and
// (stride 1) one new input: column j at tap kx reads what column j + 1 read at tap kx − 1, so the
// input window slides through registers.
const WG: u32 = 64u;

var<private> ctx_m0: u32;
var<private> ctx_b: u32;
var<private> ctx_oy: u32;
var<private> ctx_ox0: u32;

// Both GEMM operands, the weights here and the input in `ldx`, pass through `operand` (rounded to
// f16 under ROUND_F16); the bias is added in f32 by the epilogue.
fn ld_a(i: u32) -> f32 {
    return operand(ld_w(i));
}

// x[xr + ix] of the current input row, zero in the padding. A negative ix wraps to a large u32 and
// fails the same test as too large ones; what the wrapped index loads is discarded.
fn ldx(xr: u32, ix: i32) -> f32 {
    return select(0.0, operand(ld_x(xr + u32(ix))), u32(ix) < p.w);
}

// Stride 1: load the window for tap 0 (minus its last column), then slide it one column per tap.
fn row_stride1(xr: u32, ix0: i32, kk0: u32) {
    v1 = ldx(xr, ix0 + 0); v2 = ldx(xr, ix0 + 1); v3 = ldx(xr, ix0 + 2);
    v4 = ldx(xr, ix0 + 3); v5 = ldx(xr, ix0 + 4); v6 = ldx(xr, ix0 + 5); v7 = ldx(xr, ix0 + 6);
    if (NB == 16u) {
        v8 = ldx(xr, ix0 + 7); v9 = ldx(xr, ix0 + 8);
        v10 = ldx(xr, ix0 + 9); v11 = ldx(xr, ix0 + 10);
        v12 = ldx(xr, ix0 + 11); v13 = ldx(xr, ix0 + 12);
        v14 = ldx(xr, ix0 + 13); v15 = ldx(xr, ix0 + 14);
    }
    for (var kx = 0u; kx < KW; kx = kx + 1u) {
        slide_left(ldx(xr, ix0 + i32(kx + NB) - 1));
        taps(kk0 + kx);
    }
}

// Other strides: the columns share no inputs within a tap; load each.
fn row_strided(xr: u32, ix0: i32, kk0: u32) {
    let s = i32(STRIDE);
    for (var kx = 0u; kx < KW; kx = kx + 1u) {
        let ix = ix0 + i32(kx);
        v0 = ldx(xr, ix + 0 * s); v1 = ldx(xr, ix + 1 * s);
        v2 = ldx(xr, ix + 2 * s); v3 = ldx(xr, ix + 3 * s);
        v4 = ldx(xr, ix + 4 * s); v5 = ldx(xr, ix + 5 * s);
        v6 = ldx(xr, ix + 6 * s); v7 = ldx(xr, ix + 7 * s);
        if (NB == 16u) {
            v8 = ldx(xr, ix + 8 * s); v9 = ldx(xr, ix + 9 * s);
            v10 = ldx(xr, ix + 10 * s); v11 = ldx(xr, ix + 11 * s);
            v12 = ldx(xr, ix + 12 * s); v13 = ldx(xr, ix + 13 * s);
            v14 = ldx(xr, ix + 14 * s); v15 = ldx(xr, ix + 15 * s);
        }
        taps(kk0 + kx);
    }
}

// Epilogue for column ox0 + j.
fn store_column(ca: vec4<f32>, cb: vec4<f32>, j: u32) {
    let ox = ctx_ox0 + j;
    if (ox >= p.wo) {
        return;
    }
    let s = ctx_oy * p.wo + ox;
    let m0 = ctx_m0;
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (m0 + i < p.gm) {
            finish(ca[i], m0 + i, ctx_b, s);
        }
        if (MB == 8u && m0 + 4u + i < p.gm) {
            finish(cb[i], m0 + 4u + i, ctx_b, s);
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    // The channel block comes from the workgroup id alone: all lanes read the same weights.
    let g = group_index(wid, nwg);
    let m0 = (g % p.mblocks) * MB;
    let nbi = (g / p.mblocks) * WG + li;
    if (nbi >= p.nblocks) {
        return;
    }
    let ox0 = (nbi % p.xblocks) * NB;
    let row = nbi / p.xblocks;
    let oy = row % p.ho;
    let b = row / p.ho;
    ctx_m0 = m0;
    ctx_b = b;
    ctx_oy = oy;
    ctx_ox0 = ox0;
    set_rows(m0, p.gm, p.k);
    let ix0 = i32(ox0 * STRIDE) - i32(p.pad);
    let iy0 = i32(oy * STRIDE) - i32(p.pad);
    let plane = p.h * p.w;
    var xc = (b * p.cin + p.kb) * plane;
    var kk = p.kb * KSZ;
    for (var ci = p.kb; ci < p.ke; ci = ci + 1u) {
        for (var ky = 0u; ky < KH; ky = ky + 1u) {
            let iy = iy0 + i32(ky);
            if (u32(iy) < p.h) {
                let xr = xc + u32(iy) * p.w;
                if (STRIDE == 1u) {
                    row_stride1(xr, ix0, kk + ky * KW);
                } else {
                    row_strided(xr, ix0, kk + ky * KW);
                }
            }
        }
        xc = xc + plane;
        kk = kk + KSZ;
    }
    store_block();
}
