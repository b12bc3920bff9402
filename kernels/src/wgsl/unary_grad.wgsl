// out[i] = g[i] · f'(x[i]) for the map OP of unary.wgsl (same codes, same `a`, `b`).
struct Params { n: u32, a: f32, b: f32 }

fn derivative(x: f32) -> f32 {
    switch OP {
        case 1u: {
            // d/dx x·Φ(x) = Φ(x) + x·φ(x)
            let cdf = select(0.5 * erfc_pos(-x * 0.70710678118654752), 1.0 - 0.5 * erfc_pos(x * 0.70710678118654752), x >= 0.0);
            return cdf + x * 0.3989422804014327 * exp(-0.5 * x * x);
        }
        case 2u: {
            let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
            let t = tanh(clamp(u, -10.0, 10.0));
            // The clamp's own derivative is zero outside [-10, 10], where 1 − t² is below 1e-8.
            let du = select(0.0, 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x), abs(u) <= 10.0);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
        }
        case 3u: {
            let s = 1.0 / (1.0 + exp(-x));
            return s * (1.0 + x * (1.0 - s));
        }
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
