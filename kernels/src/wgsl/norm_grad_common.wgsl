// Shared by the backward kernels (appended after norm_common.wgsl, whose Params, workgroup_sum and
// chunk_stats they use). Element i of row `row` belongs to channel c = (row % groups)·cpg + i/spatial
// of sample b = row / groups. The forward computed x̂ = ((x − shift) − (mean − shift))·rstd,
// z = x̂·a + o with a = γ_c(1 + s_bc) and o = β_c(1 + s_bc) + h_bc, and y = act(z).


// (shift, mean − shift, rstd) of `row` from its splits' partial statistics, `stride` floats per
// split in `stats` (the first three as norm_stats writes them). Merged serially in every invocation:
// at most 64 splits (64 loop iterations), and no barrier, so it may run in non-uniform control flow.
fn row_stats(row: u32, stride: u32) -> vec3<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < p.splits; k = k + 1u) {
        let start = k * p.chunk;
        let j = stride * (row * p.splits + k);
        v = merge(v, vec4<f32>(f32(min(start + p.chunk, p.n) - start), ld_stats(j),
                               ld_stats(j + 1u), ld_stats(j + 2u)));
    }
    return vec3<f32>(v.y, v.z, inverseSqrt(v.w / f32(p.n) + p.eps));
}

// (x̂, ∂L/∂z, ∂L/∂x̂) of element i of `row`, given the row's (shift, mean − shift, rstd).
fn elem(row: u32, i: u32, st: vec3<f32>) -> vec3<f32> {
    let k = row * p.n + i;
    let xhat = ((ld_x(k) - st.x) - st.y) * st.z;
    var a = 1.0;
    var o = 0.0;
    if (HAS_GAMMA || HAS_BETA || HAS_SS) {
        let c = (row % p.groups) * p.cpg + i / p.spatial;
        if (HAS_GAMMA) {
            a = ld_gamma(c);
        }
        if (HAS_BETA) {
            o = ld_beta(c);
        }
        if (HAS_SS) {
            let bc = (row / p.groups) * p.ss_stride + c;
            let s1 = 1.0 + ld_scale(bc);
            a = a * s1;
            o = o * s1 + ld_shift(bc + p.shift_at);
        }
    }
    var gz = ld_g(k);
    if (ACT != 0u) {
        gz = gz * activate_grad(xhat * a + o, ACT);
    }
    return vec3<f32>(xhat, gz, gz * a);
}

// This invocation's share of (Σ ∂L/∂x̂, Σ ∂L/∂x̂·x̂) over elements [start, end) of `row`:
// ⌈(end − start)/WG⌉ iterations, bounded as chunk_stats' loops are (norm_common.wgsl).
fn partial_sums(row: u32, st: vec3<f32>, start: u32, end: u32, lid: u32) -> vec2<f32> {
    var s = vec2<f32>(0.0);
    for (var i = start + lid; i < end; i = i + WG) {
        let e = elem(row, i, st);
        s = s + vec2<f32>(e.z, e.z * e.x);
    }
    return s;
}
