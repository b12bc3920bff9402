//! Image input and metrics against PIL and NumPy (tools/reference/make_image_fixtures.py):
//! decoding of PNG (RGB, RGBA, grey, 16-bit) and JPEG, centre-crop + antialiased bicubic resize,
//! MSE and PSNR. (The fixture's SSIM values are scikit-image's, which iterinv no longer follows:
//! SSIM is checked against torchmetrics in tests/metrics.rs.)

use std::path::{Path, PathBuf};

use iterinv::image_io::{
    load_for_stage, load_rgb, resize_square, Fit, ImageLimits, PixelFormat, PixelLayout, Rgb,
};
use iterinv::metrics::{mse, psnr};
use iterinv::Gpu;

fn dir() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/images"
    ))
    .to_path_buf()
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn decoding_and_resizing_match_pil() {
    let e = expected();
    let size = e["size"].as_u64().unwrap() as usize;
    for (name, want) in e["files"].as_object().unwrap() {
        let img = load_rgb(&dir().join(name)).unwrap();
        assert_eq!(
            img.height,
            want["height"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(
            img.width,
            want["width"].as_u64().unwrap() as usize,
            "{name}"
        );
        // PNG decoding is exact; JPEG decoders may differ by a few levels (IDCT, upsampling).
        let decode_tol = if name.ends_with(".jpg") {
            6.0 / 255.0
        } else {
            1e-6
        };
        let d = max_diff(&img.data, &floats(&want["rgb"]));
        assert!(d <= decode_tol, "{name}: decoded values differ by {d}");
        // Resizing PIL's own decoded values must match PIL's float resize closely.
        let pil_decoded = iterinv::image_io::Rgb {
            height: img.height,
            width: img.width,
            data: floats(&want["rgb"]),
        };
        let r = resize_square(&pil_decoded, size, Fit::CropCenter);
        let d = max_diff(&r, &floats(&want["resized"]));
        eprintln!("{name}: resize max difference {d:.2e}");
        assert!(d <= 1e-5, "{name}: resized values differ by {d}");
    }
}

#[test]
fn mse_and_psnr_match_numpy() {
    let e = expected();
    for pair in e["pairs"].as_array().unwrap() {
        let (a, b) = (floats(&pair["a"]), floats(&pair["b"]));
        let want_mse = pair["mse"].as_f64().unwrap();
        assert!(
            (mse(&a, &b) - want_mse).abs() <= 1e-6 * want_mse.max(1e-6),
            "mse"
        );
        let p = psnr(&a, &b);
        match pair["psnr"].as_f64() {
            Some(w) => assert!((p - w).abs() < 1e-3, "psnr {p} vs {w}"),
            None => assert!(p.is_infinite()),
        }
    }
}

#[test]
fn stage_inputs_are_in_model_range_and_bad_files_are_errors() {
    let gpu = Gpu::new().unwrap();
    let t = load_for_stage(&gpu, &dir().join("rgb.png"), 16, Fit::CropCenter).unwrap();
    assert_eq!(t.shape(), &[1, 3, 16, 16]);
    let v = t.to_vec().unwrap();
    assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
    let e = load_for_stage(&gpu, &dir().join("rgb.png"), 64, Fit::CropCenter).unwrap_err();
    assert!(e.to_string().contains("at least 64"), "{e}");
    let e = load_rgb(&dir().join("expected.json")).err().unwrap();
    assert!(e.to_string().contains("cannot be read"), "{e}");
    let e = load_rgb(&dir().join("missing.png")).err().unwrap();
    assert!(e.to_string().contains("missing.png"), "{e}");
}

/// Pixels handed over in memory (the C API's way in) read exactly as their file does: RGB8
/// rows packed, RGBA8 rows padded with junk between them (alpha dropped as for an RGBA file).
#[test]
fn pixels_in_memory_read_as_their_file() {
    for name in ["rgb.png", "rgba.png"] {
        let path = dir().join(name);
        let file = load_rgb(&path).unwrap();
        let decoded = image::open(&path).unwrap();
        let (w, h) = (file.width, file.height);
        let rgb = decoded.to_rgb8().into_raw();
        let layout = |stride, format| PixelLayout {
            width: w,
            height: h,
            stride,
            format,
        };
        let packed =
            Rgb::from_pixels(&rgb, layout(3 * w, PixelFormat::Rgb8), name, limits()).unwrap();
        let rgba = decoded.to_rgba8().into_raw();
        let stride = 4 * w + 7;
        let mut padded = vec![0xAB; stride * h];
        for y in 0..h {
            padded[y * stride..y * stride + 4 * w].copy_from_slice(&rgba[y * 4 * w..][..4 * w]);
        }
        let strided =
            Rgb::from_pixels(&padded, layout(stride, PixelFormat::Rgba8), name, limits()).unwrap();
        if name == "rgb.png" {
            // An RGB file's 8-bit values, whatever the layout in memory.
            assert_eq!(packed.data, file.data, "{name} as RGB8");
            assert_eq!(strided.data, file.data, "{name} as padded RGBA8");
        } else {
            // RGBA in memory drops alpha as decoding the RGBA file does.
            assert_eq!(strided.data, file.data, "{name} as padded RGBA8");
        }
        assert_eq!((packed.width, packed.height), (w, h));
    }
}

/// Pixel buffers that do not hold what they claim are errors naming the image, never a panic
/// or an out-of-bounds read.
#[test]
fn bad_pixel_buffers_are_errors() {
    let px = vec![0u8; 4 * 4 * 4];
    let cases: [(usize, usize, usize, &str); 5] = [
        (0, 4, 16, "must not be empty"),
        (4, 4, 15, "fewer than a row"),
        (4, 5, 16, "need 80"),
        (4, usize::MAX / 8, usize::MAX / 4, "up to"),
        (4, 3, usize::MAX / 2, "more than memory"),
    ];
    for (width, height, stride, expected) in cases {
        let layout = PixelLayout {
            width,
            height,
            stride,
            format: PixelFormat::Rgba8,
        };
        let e = Rgb::from_pixels(&px, layout, "buf", limits())
            .err()
            .unwrap();
        let e = e.to_string();
        assert!(e.contains("image buf") && e.contains(expected), "{e}");
    }
}

fn limits() -> ImageLimits {
    ImageLimits::default()
}
