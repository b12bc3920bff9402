// out[i] = f(x[i]); the map is chosen by the constant OP. `a` and `b` parametrise clamp and affine.
struct Params { n: u32, a: f32, b: f32 }

const OP_IDENTITY: u32 = 0u;
const OP_GELU: u32 = 1u;
const OP_GELU_TANH: u32 = 2u;
const OP_SILU: u32 = 3u;
const OP_RELU: u32 = 4u;
const OP_EXP: u32 = 5u;
const OP_SQRT: u32 = 6u;
const OP_RSQRT: u32 = 7u;
const OP_ABS: u32 = 8u;
const OP_SQUARE: u32 = 9u;
const OP_SIGMOID: u32 = 10u;
const OP_TANH: u32 = 11u;
const OP_LOG: u32 = 12u;
const OP_CLAMP: u32 = 13u;   // clamp(x, a, b)
const OP_AFFINE: u32 = 14u;  // x·a + b
const OP_RECIP: u32 = 15u;   // a / x
const OP_SIGN: u32 = 16u;
const OP_QUICK_GELU: u32 = 17u; // x·σ(1.702x)

fn apply(x: f32) -> f32 {
    switch OP {
        case 1u: { return gelu(x); }
        case 2u: { return gelu_tanh(x); }
        case 3u: { return silu(x); }
        case 4u: { return max(x, 0.0); }
        case 5u: { return exp(x); }
        case 6u: { return sqrt(x); }
        case 7u: { return inverseSqrt(x); }
        case 8u: { return abs(x); }
        case 9u: { return x * x; }
        case 10u: { return 1.0 / (1.0 + exp(-x)); }
        case 11u: { return tanh(clamp(x, -10.0, 10.0)); }
        case 12u: { return log(x); }
        case 13u: { return clamp(x, p.a, p.b); }
        case 14u: { return x * p.a + p.b; }
        case 15u: { return p.a / x; }
        case 16u: { return sign(x); }
        case 17u: { return quick_gelu(x); }
        default: { return x; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < p.n) {
        out[i] = apply(ld_x(i));
    }
}
