// out[i] = g[i] · f'(x[i]) for the map OP of unary.wgsl (same codes, same `a`, `b`).
struct Params { n: u32, a: f32, b: f32 }

fn derivative(x: f32) -> f32 {
    switch OP {
        case 1u: { return gelu_grad(x); }
        case 2u: { return gelu_tanh_grad(x); }
        case 3u: { return silu_grad(x); }
        case 4u: { return select(0.0, 1.0, x > 0.0); }
        case 5u: { return exp(x); }
        case 6u: { return 0.5 * inverseSqrt(x); }
        case 7u: { return -0.5 * inverseSqrt(x) / x; }
        case 8u: { return sign(x); }
        case 9u: { return 2.0 * x; }
        case 10u: {
            let s = 1.0 / (1.0 + exp(-x));
            return s * (1.0 - s);
        }
        case 11u: {
            let t = tanh(clamp(x, -10.0, 10.0));
            return 1.0 - t * t;
        }
        case 12u: { return 1.0 / x; }
        // PyTorch passes the gradient where min <= x <= max.
        case 13u: { return select(0.0, 1.0, x >= p.a && x <= p.b); }
        case 14u: { return p.a; }
        case 15u: { return -p.a / (x * x); }
        case 16u: { return 0.0; }
        case 17u: { return quick_gelu_grad(x); }
        default: { return 1.0; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < p.n) {
        out[i] = ld_g(i) * derivative(ld_x(i));
    }
}
