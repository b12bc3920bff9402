//! `iterinv module t5` end to end: the binary on the T5 fixture (given as a pipeline folder),
//! its output compared with transformers' float64 golden (1e-3 of the largest magnitude).

mod common;

use std::path::Path;
use std::process::Command;

use common::floats;
use safetensors::SafeTensors;

#[test]
fn last_hidden_state_matches_transformers() {
    let t5 = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/t5"));
    let io = t5.join("encoder_io.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let run = Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .args(["module", "t5", "--model"])
        .arg(t5)
        .arg("--inputs")
        .arg(&io)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (got, want) = (std::fs::read(&out).unwrap(), std::fs::read(&io).unwrap());
    let (_, got) = floats(
        &SafeTensors::deserialize(&got).unwrap(),
        "last_hidden_state",
    );
    let (_, want) = floats(
        &SafeTensors::deserialize(&want).unwrap(),
        "last_hidden_state",
    );
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-3 * scale, "error {err:.3e}, scale {scale:.3}");
}

#[test]
fn missing_ids_are_named() {
    let t5 = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/t5"));
    // The UNet fixture's inputs have no input_ids at all.
    let io = t5.join("../if_unet/stage1_io.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .args(["module", "t5", "--model"])
        .arg(t5)
        .arg("--inputs")
        .arg(&io)
        .arg("--out")
        .arg(tmp.path().join("o.safetensors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("has no array `input_ids`"), "{stderr}");
}
