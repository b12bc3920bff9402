//! Image input and metrics against PIL and NumPy (tools/reference/make_image_fixtures.py):
//! decoding of PNG (RGB, RGBA, grey, 16-bit) and JPEG, centre-crop + antialiased bicubic resize
//! (on the GPU), MSE and PSNR. (The fixture's SSIM values are scikit-image's, which iterinv no longer follows:
//! SSIM is checked against torchmetrics in tests/metrics.rs.)

use std::path::{Path, PathBuf};

use iterinv::image_io::{
    load_for_stage, load_rgb, photo_rows, resize_for_stage, stage_tensor, Fit, ImageLimits,
    PixelFormat, PixelLayout, Rgb,
};
use iterinv::metrics::{mse, psnr};
use iterinv::{Gpu, GpuOptions};

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

fn poisoned(max_binding_size: Option<u64>) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn decoding_and_resizing_match_pil() {
    let gpu = poisoned(None);
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
        // The stage tensor is in [−1, 1]: back to [0, 1] (exactly, in f64) to compare. PIL's
        // float mode sums in f64, the GPU in f32: the 1e-5 leaves room for the f32 sums (about
        // 1e-6 at these sizes, see engine/tests/ops/resample.rs) and the fixture's JSON digits.
        let t = stage_tensor(&gpu, &pil_decoded, name, size, Fit::CropCenter).unwrap();
        assert_eq!(t.shape(), &[1, 3, size, size]);
        let r: Vec<f32> = t
            .to_vec()
            .unwrap()
            .iter()
            .map(|&v| ((v as f64 + 1.0) / 2.0) as f32)
            .collect();
        let pil = floats(&want["resized"]);
        assert!(r.iter().all(|v| v.is_finite()), "{name}: {r:?}");
        let d = max_diff(&r, &pil);
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

/// A photo larger than one storage binding is uploaded split over buffers by rows and resized
/// one buffer at a time: the same stage tensors, bit for bit, as from one buffer (and both fits).
#[test]
fn photos_larger_than_a_binding_resize_as_in_one_buffer() {
    // 41×27: 13,284 bytes, in buffers of 12 rows; the crop window starts mid-row.
    let img = load_rgb(&dir().join("rgb.png")).unwrap();
    let (gpu, small) = (poisoned(None), poisoned(Some(6 * 1024)));
    let rows = photo_rows(&small, &img).unwrap();
    assert!(rows.is_chunked(), "{}×{} over 6 KiB", img.width, img.height);
    assert_eq!(rows.shape(), &[img.height, 3, img.width]);
    let whole = photo_rows(&gpu, &img).unwrap();
    assert!(!whole.is_chunked());
    for fit in [Fit::CropCenter, Fit::Stretch] {
        for size in [8, 16] {
            let a = resize_for_stage(&rows, "rgb.png", size, fit).unwrap();
            let b = resize_for_stage(&whole, "rgb.png", size, fit).unwrap();
            let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
            assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)), "{a:?}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{fit:?} at {size}");
        }
    }
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
