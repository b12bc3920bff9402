// Texels copied from a texture (copy_texture_to_buffer: `band` rows of `width` texels, rows
// `row_words` words apart) into an image in [−1, 1] as the pipeline holds it: channel c of texel
// (x, y) of the band goes to out[c·plane_stride + (row0 + y)·row_stride + x], which is [1, 3, H, W]
// or the rows layout [H, 3, W] (a photo split over buffers by rows). Alpha is ignored.
// 8-bit texels read as a PNG's bytes do (image_io): b/255·2 − 1, with b/255 correctly rounded; the
// float formats' linear values are clamped to [0, 1] and sRGB-encoded, a NaN read as 0.
// n = width·band.
struct Params { n: u32, width: u32, row_words: u32, row0: u32, plane_stride: u32, row_stride: u32 }

// b/255 for a byte b, correctly rounded to f32 (what `b as f32 / 255.0` gives on the host), built
// from integer ops: WGSL's division is only accurate to 2.5 ULP and a compiler may replace it by a
// multiplication with 1/255, either of which can miss by one ULP. In binary, b/255 is the byte b
// repeated forever (0.bbbbbbbb bbbbbbbb…), so its first 32 bits are b·0x01010101. The 24 bits from
// the leading one are the mantissa; the bit after them rounds up when set, since the endless
// repetition of a non-zero byte below it is never zero (so never a tie). A carry out of the
// mantissa (b = 255) moves into the exponent and gives exactly 1.
fn unorm8(b: u32) -> f32 {
    if (b == 0u) {
        return 0.0;
    }
    let word = b * 0x01010101u;
    let lz = countLeadingZeros(word);
    let top = word << lz;
    // The leading one sits at 2^-(lz+1): exponent field 126 − lz, written as (125 − lz) plus the
    // mantissa's own leading one at bit 23.
    return bitcast<f32>(((125u - lz) << 23u) + (top >> 8u) + ((top >> 7u) & 1u));
}

fn half_linear(h: u32) -> f32 {
    if ((h & 0x7fffu) > 0x7c00u) {
        return 0.0;
    }
    return half_to_f32(h);
}

fn float_linear(bits: u32) -> f32 {
    if (is_nan_bits(bits)) {
        return 0.0;
    }
    return bitcast<f32>(bits);
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
    let row = y * p.row_words;
    var rgb: vec3<f32>;
    if (FORMAT == 0u) {
        let w = ld_texels(row + x);
        rgb = vec3<f32>(unorm8(w & 0xffu), unorm8((w >> 8u) & 0xffu), unorm8((w >> 16u) & 0xffu));
    } else if (FORMAT == 1u) {
        // Two halves per word, red in the low 16 bits (little-endian texels).
        let rg = ld_texels(row + 2u * x);
        let ba = ld_texels(row + 2u * x + 1u);
        rgb = vec3<f32>(srgb_encode(half_linear(rg & 0xffffu)), srgb_encode(half_linear(rg >> 16u)),
                        srgb_encode(half_linear(ba & 0xffffu)));
    } else {
        let base = row + 4u * x;
        rgb = vec3<f32>(srgb_encode(float_linear(ld_texels(base))),
                        srgb_encode(float_linear(ld_texels(base + 1u))),
                        srgb_encode(float_linear(ld_texels(base + 2u))));
    }
    let o = (p.row0 + y) * p.row_stride + x;
    out[o] = 2.0 * rgb.x - 1.0;
    out[o + p.plane_stride] = 2.0 * rgb.y - 1.0;
    out[o + 2u * p.plane_stride] = 2.0 * rgb.z - 1.0;
}
