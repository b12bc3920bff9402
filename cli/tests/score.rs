//! `iterinv score` end to end against tests/fixtures/metrics/expected.json
//! (make_metrics_fixtures.py): torchmetrics' MSE, PSNR and SSIM, the lpips package's distance with
//! the reduced VGG fixture and the CLIP score (torchmetrics' formula, transformers' model and
//! processor) with the tiny CLIP fixture, for one photo pair; and its errors.
//!
//! Tolerances: MSE/PSNR/SSIM 1e-6 relative (f64 sums; see tests/metrics.rs); LPIPS 1e-5
//! relative (f32 network, see models/tests/lpips.rs); CLIP score 0.25 points: resized pixels may
//! be one level apart from torch's uint8 resize (tests/clip_image.rs), and this noisy image has
//! more of them than the clean photos: 0.10 points measured on lavapipe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).to_path_buf()
}

fn score(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .arg("score")
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &str) -> String {
    fixtures().join(p).display().to_string()
}

#[test]
fn scores_match_the_python_references() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("metrics/expected.json")).unwrap(),
    )
    .unwrap();
    let e = &expected["chelsea"];
    let out = score(&[
        &path("metrics/chelsea_a.png"),
        &path("metrics/chelsea_b.png"),
        "--lpips",
        &path("lpips/reduced.safetensors"),
        "--clip",
        &path("clip_score/model"),
        "--prompt",
        expected["prompt"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{got}");
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    for k in ["mse", "psnr", "ssim"] {
        assert!(
            (f(&got, k) - f(e, k)).abs() <= 1e-6 * f(e, k).abs(),
            "{k}: {got}"
        );
    }
    assert!(
        (f(&got, "lpips") - f(e, "lpips")).abs() <= 1e-5 * f(e, "lpips"),
        "{got}"
    );
    assert!(
        (f(&got, "clip_score") - f(e, "clip_score")).abs() < 0.25,
        "{got}"
    );

    // Without --lpips and --clip: the pixel metrics only.
    let out = score(&[&path("metrics/camera_a.png"), &path("metrics/camera_b.png")]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(got.get("lpips").is_none() && got.get("clip_score").is_none());
    assert!((f(&got, "psnr") - f(&expected["camera"], "psnr")).abs() < 1e-5);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let err = |args: &[&str]| {
        let out = score(args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let a = path("metrics/chelsea_a.png");
    let e = err(&[&a, &path("metrics/camera_b.png")]);
    assert!(e.contains("same size"), "{e}");
    let e = err(&[&a, &path("metrics/missing.png")]);
    assert!(e.contains("missing.png"), "{e}");
    let e = err(&[&a, &a, "--prompt", "a cat"]);
    assert!(e.contains("--clip"), "{e}");
    // A file without LPIPS' keys names the missing key.
    let e = err(&[&a, &a, "--lpips", &path("lpips/real_heads.safetensors")]);
    assert!(e.contains("net.slice1.0.weight"), "{e}");
}
