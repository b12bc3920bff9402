//! `iterinv module t5` and `iterinv module clip-text` end to end: the binary on the text-encoder
//! fixtures (given as pipeline folders), its outputs compared with transformers' float64 goldens
//! (1e-3 of the largest magnitude; the library tests hold the tighter bounds).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).to_path_buf()
}

fn floats(st: &SafeTensors, name: &str) -> Vec<f64> {
    let v = st.tensor(name).unwrap();
    match v.dtype() {
        safetensors::Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        safetensors::Dtype::F64 => v
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{name}: {d:?}"),
    }
}

/// `iterinv module <network> --model <model> --inputs <io> --out <out>`.
fn module(network: &str, model: &Path, io: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .args(["module", network, "--model"])
        .arg(model)
        .arg("--inputs")
        .arg(io)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Runs `network` on `io` and compares each of `outputs` with the array of that name in `io`.
fn check(network: &str, model: &Path, io: &Path, outputs: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let run = module(network, model, io, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (got, want) = (std::fs::read(&out).unwrap(), std::fs::read(io).unwrap());
    let (got, want) = (
        SafeTensors::deserialize(&got).unwrap(),
        SafeTensors::deserialize(&want).unwrap(),
    );
    for name in outputs {
        let (got, want) = (floats(&got, name), floats(&want, name));
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-3 * scale,
            "{name}: error {err:.3e}, scale {scale:.3}"
        );
    }
}

#[test]
fn t5_last_hidden_state_matches_transformers() {
    let t5 = fixtures().join("t5");
    check(
        "t5",
        &t5,
        &t5.join("encoder_io.safetensors"),
        &["last_hidden_state"],
    );
}

#[test]
fn clip_text_outputs_match_transformers() {
    let clip = fixtures().join("clip_text");
    let outputs = ["last_hidden_state", "pooler_output"];
    // Without an attention mask, as Stable Diffusion runs it, from a pipeline folder.
    let io = clip.join("gelu_legacy_io.safetensors");
    check("clip-text", &clip.join("gelu_legacy"), &io, &outputs);
    // With one.
    let io = clip.join("quick_gelu_io.safetensors");
    check("clip-text", &clip.join("quick_gelu"), &io, &outputs);
}

#[test]
fn missing_ids_are_named() {
    // The UNet fixture's inputs have no input_ids at all.
    let io = fixtures().join("if_unet/stage1_io.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    for (network, model) in [("t5", "t5"), ("clip-text", "clip_text/quick_gelu")] {
        let run = module(
            network,
            &fixtures().join(model),
            &io,
            &tmp.path().join("o.safetensors"),
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(stderr.contains("has no array `input_ids`"), "{stderr}");
    }
}

#[test]
fn t5_needs_an_attention_mask() {
    let io = fixtures().join("clip_text/gelu_legacy_io.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let run = module(
        "t5",
        &fixtures().join("t5"),
        &io,
        &tmp.path().join("o.safetensors"),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("no array `attention_mask`"), "{stderr}");
}
