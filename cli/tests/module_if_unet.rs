//! `iterinv module if-unet` end to end: the binary on the diffusers fixtures, its output file
//! compared with the float64 goldens (same tolerance as the model tests: 1e-3 of the largest
//! magnitude), and its errors.

mod common;

use std::path::PathBuf;

use common::{assert_fails_with, assert_help_mentions, assert_matches, assert_succeeded, iterinv};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    common::fixture("if_unet")
}

fn run_and_compare(model: &str, variant: Option<&str>, io: &str, suffix: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let (model, io) = (fixtures().join(model), fixtures().join(io));
    let mut args = vec!["module", "if-unet", "--model", model.to_str().unwrap()];
    if let Some(v) = variant {
        args.extend(["--variant", v]);
    }
    args.extend([
        "--inputs",
        io.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let run = iterinv(&args);
    assert_succeeded(&run);

    let (got, want) = (std::fs::read(&out).unwrap(), std::fs::read(&io).unwrap());
    let (got, want) = (
        SafeTensors::deserialize(&got).unwrap(),
        SafeTensors::deserialize(&want).unwrap(),
    );
    for (name, golden) in [
        ("sample", "out_sample"),
        ("grad_sample", "grad_sample"),
        ("grad_encoder_hidden_states", "grad_encoder_hidden_states"),
    ] {
        assert_matches(&got, name, &want, &format!("{golden}{suffix}"));
    }
}

#[test]
fn stage1_outputs_and_vjps_match_diffusers() {
    run_and_compare("stage1", None, "stage1_io.safetensors", "");
}

#[test]
fn stage2_fp16_variant_outputs_and_vjps_match_diffusers() {
    run_and_compare("stage2", Some("fp16"), "stage2_io.safetensors", "_fp16w");
}

#[test]
fn errors_name_the_problem_and_exit_nonzero() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let out = out.to_str().unwrap();
    let stage2 = fixtures().join("stage2");
    let stage1_io = fixtures().join("stage1_io.safetensors");
    let cases = [
        // A stage-1 input (3 channels) to the stage-2 UNet (6).
        (
            stage2.clone(),
            stage1_io.clone(),
            "has 3 channels; this UNet takes 6",
        ),
        (
            fixtures().join("nowhere"),
            stage1_io.clone(),
            "does not exist",
        ),
        (
            stage2.clone(),
            fixtures().join("missing.safetensors"),
            "missing.safetensors",
        ),
    ];
    for (model, io, expected) in cases {
        let run = iterinv(&[
            "module",
            "if-unet",
            "--model",
            model.to_str().unwrap(),
            "--inputs",
            io.to_str().unwrap(),
            "--out",
            out,
        ]);
        assert_fails_with(&run, expected);
    }
}

#[test]
fn help_documents_the_file_format() {
    let words = [
        "timestep",
        "class_labels",
        "cotangent",
        "grad_encoder_hidden_states",
        "--variant",
    ];
    assert_help_mentions(&["module", "if-unet"], &words);
}
