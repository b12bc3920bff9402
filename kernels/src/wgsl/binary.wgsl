// out = x ∘ y with NumPy broadcasting over up to 8 dimensions. The output is contiguous; `xs` and
// `ys` are the inputs' strides per output dimension (0 where an input is broadcast).
struct Params {
    n: u32,
    ndim: u32,
    _pad0: u32,
    _pad1: u32,
    shape: array<vec4<u32>, 2>,
    xs: array<vec4<u32>, 2>,
    ys: array<vec4<u32>, 2>,
}

const OP_ADD: u32 = 0u;
const OP_SUB: u32 = 1u;
const OP_MUL: u32 = 2u;
const OP_DIV: u32 = 3u;
const OP_MAX: u32 = 4u;
const OP_MIN: u32 = 5u;

fn combine(a: f32, b: f32) -> f32 {
    switch OP {
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return max(a, b); }
        case 5u: { return min(a, b); }
        default: { return a + b; }
    }
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
    var yi = 0u;
    // At most 8 iterations (the rank limit): far below lavapipe's per-invocation loop cap.
    for (var d = i32(p.ndim) - 1; d >= 0; d = d - 1) {
        let du = u32(d);
        let extent = p.shape[du / 4u][du % 4u];
        let coord = rem % extent;
        rem = rem / extent;
        xi = xi + coord * p.xs[du / 4u][du % 4u];
        yi = yi + coord * p.ys[du / 4u][du % 4u];
    }
    out[i] = combine(ld_x(xi), ld_y(yi));
}
