// CPU-adapter variant: no workgroup memory, no barriers. A workgroup of WX × WY invocations (64 in
// all) owns WY·TM rows × WX·8 columns of C; invocation (x, y) holds rows row0 + WY·i (i < TM) and
// columns col0 + WX·j (j < 8), interleaved so the 8 lanes of a SIMD program share their rows of A
// and read 8 neighbouring columns of B. TM is 4, 8 or 16 and WX × WY = 64: the host picks the block
// that wastes least on the problem's M and N.
//
// Written for llvmpipe, which performs every buffer load as a loop over the 8 lanes, so loads per
// FMA set the speed (TM + 8 loads feed 8·TM FMAs per k), which keeps small arrays indexed in loops
// in memory (so the block is unrolled by hand into private vectors; `TM > 8u` blocks fold away),
// and whose loop bookkeeping costs enough per iteration that two k steps per iteration pay. The k
// loop is the only loop, one iteration per two k: the host relies on that to keep each dispatch
// under llvmpipe's cap on loop iterations per invocation (`Caps::max_loop_iterations`).
// Measured on lavapipe, 1024³ f32: 12 GFLOP/s, against 2.7 for 4×4 blocks held in arrays.

// Row i of the block: r{i}l holds its columns j = 0..3 (col0 + WX·j), r{i}h j = 4..7.
var<private> r0l: vec4<f32>; var<private> r0h: vec4<f32>;
var<private> r1l: vec4<f32>; var<private> r1h: vec4<f32>;
var<private> r2l: vec4<f32>; var<private> r2h: vec4<f32>;
var<private> r3l: vec4<f32>; var<private> r3h: vec4<f32>;
var<private> r4l: vec4<f32>; var<private> r4h: vec4<f32>;
var<private> r5l: vec4<f32>; var<private> r5h: vec4<f32>;
var<private> r6l: vec4<f32>; var<private> r6h: vec4<f32>;
var<private> r7l: vec4<f32>; var<private> r7h: vec4<f32>;
var<private> r8l: vec4<f32>; var<private> r8h: vec4<f32>;
var<private> r9l: vec4<f32>; var<private> r9h: vec4<f32>;
var<private> r10l: vec4<f32>; var<private> r10h: vec4<f32>;
var<private> r11l: vec4<f32>; var<private> r11h: vec4<f32>;
var<private> r12l: vec4<f32>; var<private> r12h: vec4<f32>;
var<private> r13l: vec4<f32>; var<private> r13h: vec4<f32>;
var<private> r14l: vec4<f32>; var<private> r14h: vec4<f32>;
var<private> r15l: vec4<f32>; var<private> r15h: vec4<f32>;
// Offsets of the block's rows of A and columns of B (at k = 0).
var<private> a0: u32; var<private> a1: u32; var<private> a2: u32; var<private> a3: u32;
var<private> a4: u32; var<private> a5: u32; var<private> a6: u32; var<private> a7: u32;
var<private> a8: u32; var<private> a9: u32; var<private> a10: u32; var<private> a11: u32;
var<private> a12: u32; var<private> a13: u32; var<private> a14: u32; var<private> a15: u32;
var<private> b0: u32; var<private> b1: u32; var<private> b2: u32; var<private> b3: u32;
var<private> b4: u32; var<private> b5: u32; var<private> b6: u32; var<private> b7: u32;

// Offset of row `row` of A, clamped: rows past M read row M − 1 and are never stored.
fn a_row(base: u32, row: u32) -> u32 {
    return base + min(row, p.m - 1u) * p.a_rs;
}

fn b_col(base: u32, col: u32) -> u32 {
    return base + min(col, p.n - 1u) * p.b_cs;
}

// One k step: the block += A[rows, kk] ⊗ B[kk, columns].
fn step(kk: u32) {
    let ka = kk * p.a_cs;
    let kb = kk * p.b_rs;
    let bl = vec4(operand(ld_b(b0 + kb)), operand(ld_b(b1 + kb)), operand(ld_b(b2 + kb)), operand(ld_b(b3 + kb)));
    let bh = vec4(operand(ld_b(b4 + kb)), operand(ld_b(b5 + kb)), operand(ld_b(b6 + kb)), operand(ld_b(b7 + kb)));
    var v = vec4(operand(ld_a(a0 + ka))); r0l = fma(v, bl, r0l); r0h = fma(v, bh, r0h);
    v = vec4(operand(ld_a(a1 + ka))); r1l = fma(v, bl, r1l); r1h = fma(v, bh, r1h);
    v = vec4(operand(ld_a(a2 + ka))); r2l = fma(v, bl, r2l); r2h = fma(v, bh, r2h);
    v = vec4(operand(ld_a(a3 + ka))); r3l = fma(v, bl, r3l); r3h = fma(v, bh, r3h);
    if (TM > 4u) {
        v = vec4(operand(ld_a(a4 + ka))); r4l = fma(v, bl, r4l); r4h = fma(v, bh, r4h);
        v = vec4(operand(ld_a(a5 + ka))); r5l = fma(v, bl, r5l); r5h = fma(v, bh, r5h);
        v = vec4(operand(ld_a(a6 + ka))); r6l = fma(v, bl, r6l); r6h = fma(v, bh, r6h);
        v = vec4(operand(ld_a(a7 + ka))); r7l = fma(v, bl, r7l); r7h = fma(v, bh, r7h);
    }
    if (TM > 8u) {
        v = vec4(operand(ld_a(a8 + ka))); r8l = fma(v, bl, r8l); r8h = fma(v, bh, r8h);
        v = vec4(operand(ld_a(a9 + ka))); r9l = fma(v, bl, r9l); r9h = fma(v, bh, r9h);
        v = vec4(operand(ld_a(a10 + ka))); r10l = fma(v, bl, r10l); r10h = fma(v, bh, r10h);
        v = vec4(operand(ld_a(a11 + ka))); r11l = fma(v, bl, r11l); r11h = fma(v, bh, r11h);
        v = vec4(operand(ld_a(a12 + ka))); r12l = fma(v, bl, r12l); r12h = fma(v, bh, r12h);
        v = vec4(operand(ld_a(a13 + ka))); r13l = fma(v, bl, r13l); r13h = fma(v, bh, r13h);
        v = vec4(operand(ld_a(a14 + ka))); r14l = fma(v, bl, r14l); r14h = fma(v, bh, r14h);
        v = vec4(operand(ld_a(a15 + ka))); r15l = fma(v, bl, r15l); r15h = fma(v, bh, r15h);
    }
}

// One row of the block through the epilogue; rows past M and columns past N are skipped.
fn store_row(l: vec4<f32>, h: vec4<f32>, row: u32, col0: u32, batch: u32) {
    if (row >= p.m) {
        return;
    }
    if (col0 < p.n) { finish(l.x, row, col0, batch); }
    if (col0 + WX < p.n) { finish(l.y, row, col0 + WX, batch); }
    if (col0 + 2u * WX < p.n) { finish(l.z, row, col0 + 2u * WX, batch); }
    if (col0 + 3u * WX < p.n) { finish(l.w, row, col0 + 3u * WX, batch); }
    if (col0 + 4u * WX < p.n) { finish(h.x, row, col0 + 4u * WX, batch); }
    if (col0 + 5u * WX < p.n) { finish(h.y, row, col0 + 5u * WX, batch); }
    if (col0 + 6u * WX < p.n) { finish(h.z, row, col0 + 6u * WX, batch); }
    if (col0 + 7u * WX < p.n) { finish(h.w, row, col0 + 7u * WX, batch); }
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * (WY * TM) + lid.y;
    let col0 = wid.x * (WX * 8u) + lid.x;
    let ab = p.a_off + batch * p.a_bs;
    a0 = a_row(ab, row0); a1 = a_row(ab, row0 + WY);
    a2 = a_row(ab, row0 + 2u * WY); a3 = a_row(ab, row0 + 3u * WY);
    if (TM > 4u) {
        a4 = a_row(ab, row0 + 4u * WY); a5 = a_row(ab, row0 + 5u * WY);
        a6 = a_row(ab, row0 + 6u * WY); a7 = a_row(ab, row0 + 7u * WY);
    }
    if (TM > 8u) {
        a8 = a_row(ab, row0 + 8u * WY); a9 = a_row(ab, row0 + 9u * WY);
        a10 = a_row(ab, row0 + 10u * WY); a11 = a_row(ab, row0 + 11u * WY);
        a12 = a_row(ab, row0 + 12u * WY); a13 = a_row(ab, row0 + 13u * WY);
        a14 = a_row(ab, row0 + 14u * WY); a15 = a_row(ab, row0 + 15u * WY);
    }
    let bb = p.b_off + batch * p.b_bs;
    b0 = b_col(bb, col0); b1 = b_col(bb, col0 + WX);
    b2 = b_col(bb, col0 + 2u * WX); b3 = b_col(bb, col0 + 3u * WX);
    b4 = b_col(bb, col0 + 4u * WX); b5 = b_col(bb, col0 + 5u * WX);
    b6 = b_col(bb, col0 + 6u * WX); b7 = b_col(bb, col0 + 7u * WX);
    // One iteration per two k: the host counts on this (see the header).
    for (var kk = 0u; kk + 1u < p.k; kk = kk + 2u) {
        step(kk);
        step(kk + 1u);
    }
    if ((p.k & 1u) != 0u) {
        step(p.k - 1u);
    }
    store_row(r0l, r0h, row0, col0, batch);
    store_row(r1l, r1h, row0 + WY, col0, batch);
    store_row(r2l, r2h, row0 + 2u * WY, col0, batch);
    store_row(r3l, r3h, row0 + 3u * WY, col0, batch);
    if (TM > 4u) {
        store_row(r4l, r4h, row0 + 4u * WY, col0, batch);
        store_row(r5l, r5h, row0 + 5u * WY, col0, batch);
        store_row(r6l, r6h, row0 + 6u * WY, col0, batch);
        store_row(r7l, r7h, row0 + 7u * WY, col0, batch);
    }
    if (TM > 8u) {
        store_row(r8l, r8h, row0 + 8u * WY, col0, batch);
        store_row(r9l, r9h, row0 + 9u * WY, col0, batch);
        store_row(r10l, r10h, row0 + 10u * WY, col0, batch);
        store_row(r11l, r11h, row0 + 11u * WY, col0, batch);
        store_row(r12l, r12h, row0 + 12u * WY, col0, batch);
        store_row(r13l, r13h, row0 + 13u * WY, col0, batch);
        store_row(r14l, r14h, row0 + 14u * WY, col0, batch);
        store_row(r15l, r15h, row0 + 15u * WY, col0, batch);
    }
}
