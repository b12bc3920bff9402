// out[i] = scale · x[Σ coord_d · xs_d]: a general permutation of up to 8 dimensions. `shape` is the
// output's shape and `xs` the input's stride for each output dimension (the host merges dimensions
// that stay adjacent, so most permutations reach here with rank 2 or 3). A zero stride broadcasts:
// the backward of sum and mean uses this kernel to spread (and scale) a gradient. Permutations pass
// scale = 1, which is exact.
struct Params {
    n: u32,
    ndim: u32,
    scale: f32,
    _pad1: u32,
    shape: array<vec4<u32>, 2>,
    xs: array<vec4<u32>, 2>,
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i >= p.n) {
        return;
    }
    var rem = i;
    var xi = 0u;
    // At most 8 iterations (the rank limit): far below lavapipe's per-invocation loop cap.
    for (var d = i32(p.ndim) - 1; d >= 0; d = d - 1) {
        let du = u32(d);
        let extent = p.shape[du / 4u][du % 4u];
        xi = xi + (rem % extent) * p.xs[du / 4u][du % 4u];
        rem = rem / extent;
    }
    out[i] = ld_x(xi) * p.scale;
}
