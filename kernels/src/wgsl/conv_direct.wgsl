// CPU-adapter variant: no workgroup memory, no barriers. A workgroup owns MB (4 or 8) output
// channels, each invocation NB (8 or 16) neighbouring columns of one output row, all in registers;
// k is walked as (ci, ky, kx), so a padded-out input row is skipped whole and k is never divided.
//
// Written for llvmpipe, which runs 8 invocations as one SIMD program and performs every buffer
// load as a loop over the 8 lanes: loads, not FMAs, set the speed, so the kernel is shaped to
// minimise loads per FMA. Per tap it loads MB weights and (stride 1) one new input: column j at
// tap kx reads what column j + 1 read at tap kx − 1, so the input window slides through registers.
// The blocks are unrolled by hand into private scalars because llvmpipe keeps small arrays
// indexed in loops in memory (measured 5× slower); `MB == 8u`/`NB == 16u` blocks fold away.
const WG: u32 = 64u;

// Accumulators: c{j}a / c{j}b hold channels m0..m0+3 / m0+4..m0+7 at column ox0 + j.
var<private> c0a: vec4<f32>; var<private> c0b: vec4<f32>;
var<private> c1a: vec4<f32>; var<private> c1b: vec4<f32>;
var<private> c2a: vec4<f32>; var<private> c2b: vec4<f32>;
var<private> c3a: vec4<f32>; var<private> c3b: vec4<f32>;
var<private> c4a: vec4<f32>; var<private> c4b: vec4<f32>;
var<private> c5a: vec4<f32>; var<private> c5b: vec4<f32>;
var<private> c6a: vec4<f32>; var<private> c6b: vec4<f32>;
var<private> c7a: vec4<f32>; var<private> c7b: vec4<f32>;
var<private> c8a: vec4<f32>; var<private> c8b: vec4<f32>;
var<private> c9a: vec4<f32>; var<private> c9b: vec4<f32>;
var<private> c10a: vec4<f32>; var<private> c10b: vec4<f32>;
var<private> c11a: vec4<f32>; var<private> c11b: vec4<f32>;
var<private> c12a: vec4<f32>; var<private> c12b: vec4<f32>;
var<private> c13a: vec4<f32>; var<private> c13b: vec4<f32>;
var<private> c14a: vec4<f32>; var<private> c14b: vec4<f32>;
var<private> c15a: vec4<f32>; var<private> c15b: vec4<f32>;
// The input window: v{j} is the input under column j at the current tap.
var<private> v0: f32; var<private> v1: f32; var<private> v2: f32; var<private> v3: f32;
var<private> v4: f32; var<private> v5: f32; var<private> v6: f32; var<private> v7: f32;
var<private> v8: f32; var<private> v9: f32; var<private> v10: f32; var<private> v11: f32;
var<private> v12: f32; var<private> v13: f32; var<private> v14: f32; var<private> v15: f32;
// Offsets of the weight rows of channels m0..m0+7.
var<private> w0: u32; var<private> w1: u32; var<private> w2: u32; var<private> w3: u32;
var<private> w4: u32; var<private> w5: u32; var<private> w6: u32; var<private> w7: u32;

// x[xr + ix] of the current input row, zero in the padding. A negative ix wraps to a large u32 and
// fails the same test as too large ones; what the wrapped index loads is discarded.
fn ldx(xr: u32, ix: i32) -> f32 {
    return select(0.0, ld_x(xr + u32(ix)), u32(ix) < p.w);
}

// One tap: the weights at k offset kk times the input window.
fn taps(kk: u32) {
    let a = vec4(ld_w(w0 + kk), ld_w(w1 + kk), ld_w(w2 + kk), ld_w(w3 + kk));
    c0a = fma(a, vec4(v0), c0a); c1a = fma(a, vec4(v1), c1a);
    c2a = fma(a, vec4(v2), c2a); c3a = fma(a, vec4(v3), c3a);
    c4a = fma(a, vec4(v4), c4a); c5a = fma(a, vec4(v5), c5a);
    c6a = fma(a, vec4(v6), c6a); c7a = fma(a, vec4(v7), c7a);
    if (NB == 16u) {
        c8a = fma(a, vec4(v8), c8a); c9a = fma(a, vec4(v9), c9a);
        c10a = fma(a, vec4(v10), c10a); c11a = fma(a, vec4(v11), c11a);
        c12a = fma(a, vec4(v12), c12a); c13a = fma(a, vec4(v13), c13a);
        c14a = fma(a, vec4(v14), c14a); c15a = fma(a, vec4(v15), c15a);
    }
    if (MB == 8u) {
        let b = vec4(ld_w(w4 + kk), ld_w(w5 + kk), ld_w(w6 + kk), ld_w(w7 + kk));
        c0b = fma(b, vec4(v0), c0b); c1b = fma(b, vec4(v1), c1b);
        c2b = fma(b, vec4(v2), c2b); c3b = fma(b, vec4(v3), c3b);
        c4b = fma(b, vec4(v4), c4b); c5b = fma(b, vec4(v5), c5b);
        c6b = fma(b, vec4(v6), c6b); c7b = fma(b, vec4(v7), c7b);
        if (NB == 16u) {
            c8b = fma(b, vec4(v8), c8b); c9b = fma(b, vec4(v9), c9b);
            c10b = fma(b, vec4(v10), c10b); c11b = fma(b, vec4(v11), c11b);
            c12b = fma(b, vec4(v12), c12b); c13b = fma(b, vec4(v13), c13b);
            c14b = fma(b, vec4(v14), c14b); c15b = fma(b, vec4(v15), c15b);
        }
    }
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
        let last = ldx(xr, ix0 + i32(kx + NB) - 1);
        v0 = v1; v1 = v2; v2 = v3; v3 = v4; v4 = v5; v5 = v6; v6 = v7;
        if (NB == 16u) {
            v7 = v8; v8 = v9; v9 = v10; v10 = v11; v11 = v12; v12 = v13; v13 = v14; v14 = v15;
            v15 = last;
        } else {
            v7 = last;
        }
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
fn store_column(ca: vec4<f32>, cb: vec4<f32>, m0: u32, b: u32, oy: u32, ox: u32) {
    if (ox >= p.wo) {
        return;
    }
    let s = oy * p.wo + ox;
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (m0 + i < p.cout) {
            finish(ca[i], m0 + i, b, s);
        }
        if (MB == 8u && m0 + 4u + i < p.cout) {
            finish(cb[i], m0 + 4u + i, b, s);
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
    // Channels past Cout read the last channel's weights (valid memory); they are never stored.
    let last = p.cout - 1u;
    w0 = min(m0 + 0u, last) * p.k;
    w1 = min(m0 + 1u, last) * p.k;
    w2 = min(m0 + 2u, last) * p.k;
    w3 = min(m0 + 3u, last) * p.k;
    w4 = min(m0 + 4u, last) * p.k;
    w5 = min(m0 + 5u, last) * p.k;
    w6 = min(m0 + 6u, last) * p.k;
    w7 = min(m0 + 7u, last) * p.k;
    let ix0 = i32(ox0 * STRIDE) - i32(p.pad);
    let iy0 = i32(oy * STRIDE) - i32(p.pad);
    let plane = p.h * p.w;
    var xc = b * p.cin * plane;
    var kk = 0u;
    for (var ci = 0u; ci < p.cin; ci = ci + 1u) {
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

    store_column(c0a, c0b, m0, b, oy, ox0 + 0u);
    store_column(c1a, c1b, m0, b, oy, ox0 + 1u);
    store_column(c2a, c2b, m0, b, oy, ox0 + 2u);
    store_column(c3a, c3b, m0, b, oy, ox0 + 3u);
    store_column(c4a, c4b, m0, b, oy, ox0 + 4u);
    store_column(c5a, c5b, m0, b, oy, ox0 + 5u);
    store_column(c6a, c6b, m0, b, oy, ox0 + 6u);
    store_column(c7a, c7b, m0, b, oy, ox0 + 7u);
    if (NB == 16u) {
        store_column(c8a, c8b, m0, b, oy, ox0 + 8u);
        store_column(c9a, c9b, m0, b, oy, ox0 + 9u);
        store_column(c10a, c10b, m0, b, oy, ox0 + 10u);
        store_column(c11a, c11b, m0, b, oy, ox0 + 11u);
        store_column(c12a, c12b, m0, b, oy, ox0 + 12u);
        store_column(c13a, c13b, m0, b, oy, ox0 + 13u);
        store_column(c14a, c14b, m0, b, oy, ox0 + 14u);
        store_column(c15a, c15b, m0, b, oy, ox0 + 15u);
    }
}
