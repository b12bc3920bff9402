// CPU-adapter variant of the input gradient of one phase (see conv_grad_params.wgsl), with the
// register block of conv_block.wgsl: a workgroup owns MB input channels, each invocation NB
// neighbouring columns ixq of one row iyq of the phase. Within a phase the transposed convolution
// is a stride-1 correlation of g: column j at tap tkx reads g at ox = ixq0 + dx0 − tkx + j, so per
// tap it loads MB weights and one new g value as the window slides right through registers.
const WG: u32 = 64u;

var<private> ctx_m0: u32;
var<private> ctx_b: u32;
var<private> ctx_iy: u32;
var<private> ctx_xq0: u32;

// Both GEMM operands, the weights here and g in `ldg`, pass through `operand` (rounded to f16
// under ROUND_F16).
fn ld_a(i: u32) -> f32 {
    return operand(ld_w(i));
}

// g[gr + ox] of the current output row, zero outside it (a negative ox wraps and fails the test;
// what the wrapped index loads is discarded).
fn ldg(gr: u32, ox: i32) -> f32 {
    return select(0.0, operand(ld_g(gr + u32(ox))), u32(ox) < p.wo);
}

// One row of g: the window of tap −1 (less its last column), then one slide per tap.
fn row(gr: u32, oxb: i32, kk0: u32) {
    v0 = ldg(gr, oxb + 1); v1 = ldg(gr, oxb + 2); v2 = ldg(gr, oxb + 3); v3 = ldg(gr, oxb + 4);
    v4 = ldg(gr, oxb + 5); v5 = ldg(gr, oxb + 6); v6 = ldg(gr, oxb + 7);
    if (NB == 16u) {
        v7 = ldg(gr, oxb + 8); v8 = ldg(gr, oxb + 9); v9 = ldg(gr, oxb + 10);
        v10 = ldg(gr, oxb + 11); v11 = ldg(gr, oxb + 12); v12 = ldg(gr, oxb + 13);
        v13 = ldg(gr, oxb + 14); v14 = ldg(gr, oxb + 15);
    }
    for (var tkx = 0u; tkx < NKX; tkx = tkx + 1u) {
        slide_right(ldg(gr, oxb - i32(tkx)));
        taps(kk0 + STRIDE * tkx);
    }
}

fn store_column(ca: vec4<f32>, cb: vec4<f32>, j: u32) {
    let xq = ctx_xq0 + j;
    if (xq >= p.wq) {
        return;
    }
    let plane = p.h * p.w;
    let base = ctx_b * p.cin * plane + ctx_iy * p.w + p.px + STRIDE * xq;
    let m0 = ctx_m0;
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (m0 + i < p.cin) {
            emit(base + (m0 + i) * plane, ca[i]);
        }
        if (MB == 8u && m0 + 4u + i < p.cin) {
            emit(base + (m0 + 4u + i) * plane, cb[i]);
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
    let xq0 = (nbi % p.xblocks) * NB;
    let rw = nbi / p.xblocks;
    let iyq = rw % p.hq;
    let b = rw / p.hq;
    ctx_m0 = m0;
    ctx_b = b;
    ctx_iy = p.py + STRIDE * iyq;
    ctx_xq0 = xq0;
    // A[ci, (co, tap)] = w[co, ci, tap]: rows KSZ apart, co steps Cin·KSZ.
    set_rows(m0, p.cin, KSZ);
    let oyb = i32(iyq + p.dy0);
    let oxb = i32(xq0 + p.dx0);
    let plane = p.ho * p.wo;
    var gc = (b * p.cout + p.kb) * plane;
    var kk = p.kb * p.cin * KSZ + p.ky0 * KW + p.kx0;
    for (var co = p.kb; co < p.ke; co = co + 1u) {
        for (var tky = 0u; tky < NKY; tky = tky + 1u) {
            let oy = oyb - i32(tky);
            if (u32(oy) < p.ho) {
                row(gc + u32(oy) * p.wo, oxb, kk + STRIDE * tky * KW);
            }
        }
        gc = gc + plane;
        kk = kk + p.cin * KSZ;
    }
    store_block();
}
