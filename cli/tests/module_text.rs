//! `iterinv module t5` and `iterinv module clip-text` end to end: the binary on the text-encoder
//! fixtures (given as pipeline folders), its outputs compared with transformers' float64 goldens
//! (1e-3 of the largest magnitude; the library tests hold the tighter bounds).

mod common;

use std::path::Path;

use common::{assert_fails_with, assert_matches, assert_succeeded, fixture, iterinv};
use safetensors::SafeTensors;

/// `iterinv module <network> --model <model> --inputs <io> --out <out>`.
fn module(network: &str, model: &Path, io: &Path, out: &Path) -> std::process::Output {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (model, io, out) = (s(model), s(io), s(out));
    iterinv(&[
        "module", network, "--model", &model, "--inputs", &io, "--out", &out,
    ])
}

/// Runs `network` on `io` and compares each of `outputs` with the array of that name in `io`.
fn check(network: &str, model: &Path, io: &Path, outputs: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    assert_succeeded(&module(network, model, io, &out));
    let (got, want) = (std::fs::read(&out).unwrap(), std::fs::read(io).unwrap());
    let (got, want) = (
        SafeTensors::deserialize(&got).unwrap(),
        SafeTensors::deserialize(&want).unwrap(),
    );
    for name in outputs {
        assert_matches(&got, name, &want, name);
    }
}

#[test]
fn t5_last_hidden_state_matches_transformers() {
    let t5 = fixture("t5");
    check(
        "t5",
        &t5,
        &t5.join("encoder_io.safetensors"),
        &["last_hidden_state"],
    );
}

#[test]
fn clip_text_outputs_match_transformers() {
    let clip = fixture("clip_text");
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
    let io = fixture("if_unet/stage1_io.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    for (network, model) in [("t5", "t5"), ("clip-text", "clip_text/quick_gelu")] {
        let out = tmp.path().join("o.safetensors");
        let run = module(network, &fixture(model), &io, &out);
        assert_fails_with(&run, "has no array `input_ids`");
    }
}

#[test]
fn t5_needs_an_attention_mask() {
    let io = fixture("clip_text/gelu_legacy_io.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let run = module("t5", &fixture("t5"), &io, &tmp.path().join("o.safetensors"));
    assert_fails_with(&run, "no array `attention_mask`");
}
