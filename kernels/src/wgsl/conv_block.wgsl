// Register block shared by the CPU-adapter conv kernels (conv2d_direct and the backward ones): MB
// (4 or 8) rows of the GEMM's A operand times NB (8 or 16) columns, all in registers, no workgroup
// memory, no barriers.
//
// Written for llvmpipe, which runs 8 invocations as one SIMD program and performs every buffer load
// as a loop over the 8 lanes: loads, not FMAs, set the speed, so the kernels are shaped to minimise
// loads per FMA (A rows come from the workgroup id, so all lanes load the same A values). The block
// is unrolled by hand into private scalars because llvmpipe keeps small arrays indexed in loops in
// memory (measured 5× slower); `MB == 8u`/`NB == 16u` branches fold away.
//
// The including kernel defines `ld_a(i)` (its A operand), fills the window v{j} (the B value of
// column j) before each `taps(kk)`, and defines `store_column(ca, cb, j)` for `store_block`.

// Accumulators: c{j}a / c{j}b hold rows m0..m0+3 / m0+4..m0+7 at column j.
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
// The window: v{j} is the B value of column j at the current k.
var<private> v0: f32; var<private> v1: f32; var<private> v2: f32; var<private> v3: f32;
var<private> v4: f32; var<private> v5: f32; var<private> v6: f32; var<private> v7: f32;
var<private> v8: f32; var<private> v9: f32; var<private> v10: f32; var<private> v11: f32;
var<private> v12: f32; var<private> v13: f32; var<private> v14: f32; var<private> v15: f32;
// Offsets of the A rows m0..m0+7.
var<private> a0: u32; var<private> a1: u32; var<private> a2: u32; var<private> a3: u32;
var<private> a4: u32; var<private> a5: u32; var<private> a6: u32; var<private> a7: u32;

// A rows m0.. at `stride` apart; rows past `rows` repeat the last one (valid memory, never stored).
fn set_rows(m0: u32, rows: u32, stride: u32) {
    let last = rows - 1u;
    a0 = min(m0 + 0u, last) * stride;
    a1 = min(m0 + 1u, last) * stride;
    a2 = min(m0 + 2u, last) * stride;
    a3 = min(m0 + 3u, last) * stride;
    a4 = min(m0 + 4u, last) * stride;
    a5 = min(m0 + 5u, last) * stride;
    a6 = min(m0 + 6u, last) * stride;
    a7 = min(m0 + 7u, last) * stride;
}

// One k: the A values at offset kk times the window.
fn taps(kk: u32) {
    let a = vec4(ld_a(a0 + kk), ld_a(a1 + kk), ld_a(a2 + kk), ld_a(a3 + kk));
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
        let b = vec4(ld_a(a4 + kk), ld_a(a5 + kk), ld_a(a6 + kk), ld_a(a7 + kk));
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

// Shift the window one column left (v{j} takes v{j+1}); `last` enters at the right.
fn slide_left(last: f32) {
    v0 = v1; v1 = v2; v2 = v3; v3 = v4; v4 = v5; v5 = v6; v6 = v7;
    if (NB == 16u) {
        v7 = v8; v8 = v9; v9 = v10; v10 = v11; v11 = v12; v12 = v13; v13 = v14; v14 = v15;
        v15 = last;
    } else {
        v7 = last;
    }
}

// Shift the window one column right (v{j} takes v{j-1}); `first` enters at the left.
fn slide_right(first: f32) {
    if (NB == 16u) {
        v15 = v14; v14 = v13; v13 = v12; v12 = v11; v11 = v10; v10 = v9; v9 = v8; v8 = v7;
    }
    v7 = v6; v6 = v5; v5 = v4; v4 = v3; v3 = v2; v2 = v1; v1 = v0;
    v0 = first;
}

fn store_block() {
    store_column(c0a, c0b, 0u);
    store_column(c1a, c1b, 1u);
    store_column(c2a, c2b, 2u);
    store_column(c3a, c3b, 3u);
    store_column(c4a, c4b, 4u);
    store_column(c5a, c5b, 5u);
    store_column(c6a, c6b, 6u);
    store_column(c7a, c7b, 7u);
    if (NB == 16u) {
        store_column(c8a, c8b, 8u);
        store_column(c9a, c9b, 9u);
        store_column(c10a, c10b, 10u);
        store_column(c11a, c11b, 11u);
        store_column(c12a, c12b, 12u);
        store_column(c13a, c13b, 13u);
        store_column(c14a, c14b, 14u);
        store_column(c15a, c15b, 15u);
    }
}
