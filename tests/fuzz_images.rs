//! Fuzzing the image reader (src/image_io.rs): the fixture PNGs (RGB, RGBA, grey, 16-bit) and
//! JPEG with their bytes mutated, and with their header's width and height set to lies (the
//! PNG's IHDR re-checksummed so that the lie is believed). Each must decode or fail with an
//! error naming the file, never panic or hang, and never allocate more than the image limits
//! allow, whatever size the header claims. The fuzz runs under small limits (1 megapixel) so that
//! the allocation bound is tight; the default limits are checked by the regression tests below.

mod fuzz_support;

use std::path::Path;

use fuzz_support::{assert_names_file, budget, fixture_bytes, guarded, mutate};
use iterinv::image_io::{decode_rgb, ImageLimits};
use proptest::prelude::*;

const SEEDS: [&str; 5] = [
    "images/rgb.png",
    "images/rgba.png",
    "images/grey.png",
    "images/grey16.png",
    "images/photo.jpg",
];

const FUZZ_LIMITS: ImageLimits = ImageLimits {
    max_side: 4096,
    max_pixels: 1 << 20,
};

/// Heap a decode may use: the input, plus ~32 bytes per allowed pixel (decoded, then f32).
fn allowed(input_len: usize, limits: ImageLimits) -> usize {
    budget(input_len, 16) + 40 * limits.max_pixels as usize
}

fn decode(bytes: Vec<u8>, limits: ImageLimits) -> Result<(usize, usize), String> {
    let len = bytes.len();
    let origin = Path::new("fuzzed/photo.png");
    let result = guarded("image", allowed(len, limits), move || {
        decode_rgb(&bytes, Path::new("fuzzed/photo.png"), limits)
            .map(|img| {
                assert_eq!(img.data.len(), 3 * img.width * img.height);
                (img.width, img.height)
            })
            .map_err(|e| e.to_string())
    });
    if let Err(msg) = &result {
        assert_names_file(msg, origin);
    }
    result
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `png` with its IHDR width and height replaced and the chunk's CRC fixed.
fn png_with_size(png: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = png.to_vec();
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    assert_eq!(&out[12..16], b"IHDR");
    out[16..20].copy_from_slice(&w.to_be_bytes());
    out[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

/// `jpeg` with its frame header's (SOF0..SOF2) height and width replaced.
fn jpeg_with_size(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let at = (0..out.len() - 1)
        .find(|&i| out[i] == 0xff && (0xc0..=0xc2).contains(&out[i + 1]))
        .expect("a SOF marker");
    out[at + 5..at + 7].copy_from_slice(&h.to_be_bytes());
    out[at + 7..at + 9].copy_from_slice(&w.to_be_bytes());
    out
}

fn side() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..70_000,
        Just(0),
        Just(1),
        Just(u32::MAX),
        Just(1 << 31)
    ]
}

fn strategy() -> impl Strategy<Value = Vec<u8>> {
    let mutated: Vec<_> = SEEDS
        .iter()
        .map(|s| mutate::mutated(fixture_bytes(s)).boxed())
        .collect();
    let png = fixture_bytes("images/rgb.png");
    let jpeg = fixture_bytes("images/photo.jpg");
    prop_oneof![
        3 => proptest::strategy::Union::new(mutated),
        1 => (side(), side()).prop_map(move |(w, h)| png_with_size(&png, w, h)),
        1 => (side(), side()).prop_map(move |(w, h)| jpeg_with_size(&jpeg, w as u16, h as u16)),
    ]
}

proptest! {
    #![proptest_config(fuzz_support::config(5000))]

    #[test]
    fn mutated_images_decode_or_name_the_file(bytes in strategy()) {
        if let Ok((w, h)) = decode(bytes, FUZZ_LIMITS) {
            prop_assert!(w as u64 * h as u64 <= FUZZ_LIMITS.max_pixels);
        }
    }
}

// Regression tests: decompression bombs under the default limits, refused from the header.

#[test]
fn a_png_claiming_65535_squared_pixels_is_refused_from_its_header() {
    let png = png_with_size(&fixture_bytes("images/rgb.png"), 65535, 65535);
    let msg = guarded("bomb", budget(png.len(), 16), move || {
        decode_rgb(&png, Path::new("bomb.png"), ImageLimits::default())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    });
    assert!(msg.contains("bomb.png") && msg.contains("16384"), "{msg}");
}

#[test]
fn a_png_over_the_pixel_limit_but_within_the_side_limit_is_refused() {
    // 16000 × 16000: each side allowed, 256 megapixels in all are not.
    let png = png_with_size(&fixture_bytes("images/rgb.png"), 16000, 16000);
    let msg = guarded("bomb", budget(png.len(), 16), move || {
        decode_rgb(&png, Path::new("bomb.png"), ImageLimits::default())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    });
    assert!(
        msg.contains("bomb.png")
            && (msg.contains("16000×16000") || msg.contains("larger than iterinv decodes")),
        "{msg}"
    );
}

#[test]
fn a_truncated_jpeg_claiming_a_large_frame_is_refused() {
    let jpeg = jpeg_with_size(&fixture_bytes("images/photo.jpg"), 65535, 65535);
    let msg = guarded("bomb", budget(jpeg.len(), 16), move || {
        decode_rgb(&jpeg, Path::new("bomb.jpg"), ImageLimits::default())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    });
    assert!(msg.contains("bomb.jpg"), "{msg}");
}

#[test]
fn the_fixtures_decode_unchanged_under_the_default_limits() {
    for seed in SEEDS {
        let (w, h) = decode(fixture_bytes(seed), ImageLimits::default()).unwrap();
        assert!(w > 0 && h > 0, "{seed}");
    }
}
