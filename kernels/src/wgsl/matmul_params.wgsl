// Element (m, k) of A is at a_off + batch·a_bs + m·a_rs + k·a_cs; (k, n) of B at
// b_off + batch·b_bs + k·b_rs + n·b_cs; (m, n) of C at c_off + batch·c_bs + m·ldc + n·c_cs
// (c_cs = 1, or ldc = 1 and c_cs = M when C is written transposed).
// accumulate: C += result (split-K over weight chunks); epilogue: add bias[bias_off + n], apply
// ACT and add the residual (same layout as C; only on the last split).
struct Params {
    m: u32, n: u32, k: u32, c_cs: u32,
    a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_bs: u32, ldc: u32, bias_off: u32,
    accumulate: u32, epilogue: u32,
}

fn finish(acc: f32, row: u32, col: u32, batch: u32) {
    let ci = p.c_off + batch * p.c_bs + row * p.ldc + col * p.c_cs;
    var v = acc;
    if (p.accumulate != 0u) {
        v = v + c[ci];
    }
    if (p.epilogue != 0u) {
        if (HAS_BIAS) {
            v = v + ld_bias(p.bias_off + col);
        }
        v = activate(v, ACT);
        if (HAS_RESIDUAL) {
            v = v + ld_residual(ci);
        }
    }
    c[ci] = v;
}
