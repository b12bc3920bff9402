// Matmul's operands and epilogue for gemm_coop.wgsl: a grid of (N tiles, M tiles, batch), A and
// B read through their strides (matmul_params.wgsl), `finish` as the epilogue.
var<private> batch: u32;

struct Col {
    n: u32,
}

fn gemm_tile(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    batch = wid.z;
    return vec2(wid.y * BM, wid.x * BN);
}

fn gemm_size() -> vec4<u32> {
    return vec4(p.m, p.n, 0u, p.k);
}

fn a_at(m: u32, k: u32) -> f32 {
    return ld_a(p.a_off + batch * p.a_bs + m * p.a_rs + k * p.a_cs);
}

fn col_of(n: u32) -> Col {
    return Col(n);
}

fn b_at(c: Col, k: u32) -> f32 {
    return ld_b(p.b_off + batch * p.b_bs + k * p.b_rs + c.n * p.b_cs);
}

fn epilogue(m: u32, n: u32, v: f32) {
    finish(v, m, n, batch);
}
