// Shared helpers, prepended to every kernel.

// The index of this workgroup in a grid laid out over x then y (grids wider than 65535 groups).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// erfc for x >= 0 with fractional error below 1.2e-7 (Chebyshev fit, Numerical Recipes `erfcc`).
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
}

// GELU, erf form: x·Φ(x) = x·(1 − erfc(x/√2)/2), written so no cancellation hurts either tail.
fn gelu(x: f32) -> f32 {
    let e = erfc_pos(abs(x) * 0.70710678118654752);
    if (x >= 0.0) {
        return x * (1.0 - 0.5 * e);
    }
    return 0.5 * x * e;
}

// GELU, tanh form. The tanh argument is clamped: tanh(±10) is ±1 in f32, and some backends return
// NaN for tanh of large arguments.
fn gelu_tanh(x: f32) -> f32 {
    let inner = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -10.0, 10.0);
    return 0.5 * x * (1.0 + tanh(inner));
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

// OpenAI CLIP's quick_gelu, x·σ(1.702x). For x → −∞, exp overflows to inf and the quotient is −0.
fn quick_gelu(x: f32) -> f32 {
    return x / (1.0 + exp(-1.702 * x));
}

const ACT_NONE: u32 = 0u;
const ACT_GELU: u32 = 1u;
const ACT_GELU_TANH: u32 = 2u;
const ACT_SILU: u32 = 3u;
const ACT_RELU: u32 = 4u;
const ACT_QUICK_GELU: u32 = 5u;

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return gelu(x); }
        case 2u: { return gelu_tanh(x); }
        case 3u: { return silu(x); }
        case 4u: { return max(x, 0.0); }
        case 5u: { return quick_gelu(x); }
        default: { return x; }
    }
}

// The derivatives of the activations, shared by the unary and the norm gradients.

// d/dx x·Φ(x) = Φ(x) + x·φ(x)
fn gelu_grad(x: f32) -> f32 {
    let cdf = select(0.5 * erfc_pos(-x * 0.70710678118654752),
                     1.0 - 0.5 * erfc_pos(x * 0.70710678118654752), x >= 0.0);
    return cdf + x * 0.3989422804014327 * exp(-0.5 * x * x);
}

fn gelu_tanh_grad(x: f32) -> f32 {
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    let t = tanh(clamp(u, -10.0, 10.0));
    // The clamp's own derivative is zero outside [-10, 10], where 1 − t² is below 1e-8.
    let du = select(0.0, 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x), abs(u) <= 10.0);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
}

fn silu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 + x * (1.0 - s));
}

fn quick_gelu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-1.702 * x));
    return s * (1.0 + 1.702 * x * (1.0 - s));
}

// d activate(x, act)/dx.
fn activate_grad(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return gelu_grad(x); }
        case 2u: { return gelu_tanh_grad(x); }
        case 3u: { return silu_grad(x); }
        case 4u: { return select(0.0, 1.0, x > 0.0); }
        case 5u: { return quick_gelu_grad(x); }
        default: { return 1.0; }
    }
}

// x rounded to the nearest IEEE half (ties to even), returned as f32: the value an f16 operand
// keeps. Integer ops (no SHADER_F16); past f16's range it is an infinity, NaN stays NaN.
fn round_to_half(x: f32) -> f32 {
    if (x != x) {
        return x;
    }
    if (abs(x) < 6.103515625e-5) {
        // Below the smallest normal half: a multiple of 2^-24 (round() ties to even).
        return round(x * 16777216.0) * 5.9604644775390625e-8;
    }
    let bits = bitcast<u32>(x);
    let r = (bits + 0xfffu + ((bits >> 13u) & 1u)) & 0xffffe000u;
    if ((r & 0x7fffffffu) >= 0x47800000u) {
        return bitcast<f32>((r & 0x80000000u) | 0x7f800000u);
    }
    return bitcast<f32>(r);
}

// IEEE half (low 16 bits of h) to f32, exactly, with integer ops only.
fn half_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        // Zero or subnormal: m · 2^-24, exact in f32.
        let v = f32(m) * 5.9604644775390625e-8;
        return select(v, -v, sign != 0u);
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}
