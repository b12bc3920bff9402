//! MSE, PSNR and SSIM against torchmetrics on real photos (tools/reference/make_metrics_fixtures.py):
//! three pairs of 8-bit PNGs (noise, blur, a shift at reduced contrast), scored in [0, 1] as the
//! paper did, float64 goldens.
//!
//! Tolerances: 1e-6 relative. Every sum runs in f64; the difference is the input, k/255 rounded
//! to f32 here (relative error ≤ 6e-8 per value, seen in the MSE as 5e-8) against float64 in the
//! golden. A wrong window, σ, constant or border moves SSIM by 1e-3 or more.

use std::path::{Path, PathBuf};

use iterinv::image_io::load_rgb;
use iterinv::metrics::{pixel_scores, ssim, ssim_with_range};

fn dir() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics"
    ))
    .to_path_buf()
}

fn close(what: &str, got: f64, want: f64, rel: f64) {
    eprintln!(
        "{what}: {got} vs {want} (difference {:.1e})",
        (got - want).abs()
    );
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn mse_psnr_and_ssim_match_torchmetrics_on_photos() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap())
            .unwrap();
    for name in ["chelsea", "coffee", "camera"] {
        let a = load_rgb(&dir().join(format!("{name}_a.png"))).unwrap();
        let b = load_rgb(&dir().join(format!("{name}_b.png"))).unwrap();
        let s = pixel_scores(&a.data, &b.data, 3, a.height, a.width);
        let e = &expected[name];
        close(
            &format!("{name} mse"),
            s.mse,
            e["mse"].as_f64().unwrap(),
            1e-6,
        );
        close(
            &format!("{name} psnr"),
            s.psnr,
            e["psnr"].as_f64().unwrap(),
            1e-6,
        );
        let want = e["ssim"].as_f64().unwrap();
        close(&format!("{name} ssim"), s.ssim.unwrap(), want, 1e-6);
        // The [−1, 1] entry point the inversion report uses gives the same number.
        let m = |x: &[f32]| -> Vec<f32> { x.iter().map(|v| v * 2.0 - 1.0).collect() };
        let s2 = ssim(&m(&a.data), &m(&b.data), 3, a.height, a.width).unwrap();
        close(&format!("{name} ssim from [-1, 1]"), s2, want, 1e-6);
    }
}

#[test]
fn ssim_is_one_for_equal_images_and_none_below_the_padding() {
    let x: Vec<f32> = (0..3 * 12 * 13).map(|i| (i % 7) as f32 / 7.0).collect();
    let s = ssim_with_range(&x, &x, 3, 12, 13, 1.0).unwrap();
    assert!((s - 1.0).abs() < 1e-12, "{s}");
    // PyTorch's reflection padding by 5 needs sides of 6 or more.
    assert!(ssim_with_range(&x[..3 * 5 * 13], &x[..3 * 5 * 13], 3, 5, 13, 1.0).is_none());
    assert!(ssim_with_range(&x[..3 * 6 * 13], &x[..3 * 6 * 13], 3, 6, 13, 1.0).is_some());
    assert!(
        ssim_with_range(&x, &x[1..], 3, 12, 13, 1.0).is_none(),
        "lengths differ"
    );
}
