// Shared by texture_read.wgsl and texture_write.wgsl: what a texel holds. FORMAT is 0 for the 8-bit
// formats (rgba8unorm, rgba8unorm-srgb: the bytes of a PNG, sRGB-encoded), 1 for rgba16float and 2
// for rgba32float (linear light, so that sampling any of them shows the same colour).

// True for the bit pattern of a NaN (tested on the bits: a shader compiler may assume floats are
// never NaN and fold `x != x` away).
fn is_nan_bits(bits: u32) -> bool {
    return (bits & 0x7fffffffu) > 0x7f800000u;
}

// The sRGB transfer function (IEC 61966-2-1) of a linear value clamped to [0, 1].
fn srgb_encode(linear: f32) -> f32 {
    let l = clamp(linear, 0.0, 1.0);
    if (l <= 0.0031308) {
        return 12.92 * l;
    }
    return 1.055 * pow(l, 1.0 / 2.4) - 0.055;
}

// Its inverse, for an encoded value in [0, 1].
fn srgb_decode(v: f32) -> f32 {
    if (v <= 0.04045) {
        return v / 12.92;
    }
    return pow((v + 0.055) / 1.055, 2.4);
}
