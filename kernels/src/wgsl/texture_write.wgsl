// An image in [−1, 1] ([1, 3, H, W]) packed as texels for copy_buffer_to_texture: `band` rows from
// row `row0`, each `row_words` words apart in `texels`; alpha is 1 (opaque). n = width·band.
// 8-bit texels hold what image_io::to_rgb8 (and so save_png) computes, bit for bit:
// round(clamp(x/2 + 0.5, 0, 1)·255), halves rounded away from zero as Rust's f32::round, NaN to 0
// as Rust's `as u8`. The float formats hold linear light: clamp(x/2 + 0.5, 0, 1) sRGB-decoded,
// NaN as 0; rgba16float rounds it to the nearest half (ties to even) with integer ops, so no
// f16 support (nor the pack2x16float downlevel flag) is needed.
struct Params { n: u32, width: u32, height: u32, row_words: u32, row0: u32 }

// x/2 + 0.5 in [0, 1]; x·0.5 is exact, so a fused multiply-add rounds as the host's x/2 + 0.5.
fn unit(x: f32) -> f32 {
    if (is_nan_bits(bitcast<u32>(x))) {
        return 0.0;
    }
    return clamp(x * 0.5 + 0.5, 0.0, 1.0);
}

// round(unit(x)·255) with halves away from zero. WGSL's round() takes halves to even, and
// floor(y + 0.5) can round y + 0.5 up first; comparing y with floor(y) + 0.5 (exact) cannot.
fn level(x: f32) -> u32 {
    let y = unit(x) * 255.0;
    let f = floor(y);
    return u32(f) + select(0u, 1u, y >= f + 0.5);
}

// f32 in [0, 1] to IEEE half bits, rounded to nearest even (no overflow or NaN in that range).
fn half_bits(v: f32) -> u32 {
    let a = bitcast<u32>(v) & 0x7fffffffu;
    if (a < 0x38800000u) {
        // Below the smallest normal half (2^-14): adding 0.5 puts the value's half-subnormal
        // steps (2^-24) in the sum's last mantissa bits, rounded to nearest even by the addition.
        return bitcast<u32>(bitcast<f32>(a) + 0.5) - 0x3f000000u;
    }
    // Rebias the exponent (−112 << 23, wrapping) and round the 13 dropped bits to nearest even.
    return (a + 0xc8000fffu + ((a >> 13u) & 1u)) >> 13u;
}

fn linear(x: f32) -> f32 {
    return srgb_decode(unit(x));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let x = i % p.width;
    let y = i / p.width;
    let plane = p.height * p.width;
    let src = (p.row0 + y) * p.width + x;
    let r = ld_x(src);
    let g = ld_x(src + plane);
    let b = ld_x(src + 2u * plane);
    let row = y * p.row_words;
    if (FORMAT == 0u) {
        texels[row + x] = level(r) | (level(g) << 8u) | (level(b) << 16u) | 0xff000000u;
    } else if (FORMAT == 1u) {
        texels[row + 2u * x] = half_bits(linear(r)) | (half_bits(linear(g)) << 16u);
        texels[row + 2u * x + 1u] = half_bits(linear(b)) | 0x3c000000u;
    } else {
        let base = row + 4u * x;
        texels[base] = bitcast<u32>(linear(r));
        texels[base + 1u] = bitcast<u32>(linear(g));
        texels[base + 2u] = bitcast<u32>(linear(b));
        texels[base + 3u] = 0x3f800000u;
    }
}
