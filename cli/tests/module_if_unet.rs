//! `iterinv module if-unet` end to end: the binary on the diffusers fixtures, its output file
//! compared with the float64 goldens (same tolerance as the model tests: 1e-3 of the largest
//! magnitude), and its errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::{Dtype, SafeTensors};

fn fixtures() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/if_unet"
    ))
    .to_path_buf()
}

fn iterinv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .args(args)
        .output()
        .expect("the iterinv binary runs")
}

fn floats(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let v = st.tensor(name).unwrap_or_else(|_| panic!("no `{name}`"));
    let data = match v.dtype() {
        Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => v
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{name}: {d:?}"),
    };
    (v.shape().to_vec(), data)
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
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

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
        let (gs, g) = floats(&got, name);
        let (ws, w) = floats(&want, &format!("{golden}{suffix}"));
        assert_eq!(gs, ws, "{name}");
        let scale = w.iter().fold(0f64, |m, x| m.max(x.abs()));
        let err = g
            .iter()
            .zip(&w)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-3 * scale,
            "{name}: error {err:.3e}, scale {scale:.3}"
        );
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
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn help_documents_the_file_format() {
    let run = iterinv(&["module", "if-unet", "--help"]);
    let help = String::from_utf8_lossy(&run.stdout);
    for word in [
        "timestep",
        "class_labels",
        "cotangent",
        "grad_encoder_hidden_states",
        "--variant",
    ] {
        assert!(help.contains(word), "`{word}` missing from:\n{help}");
    }
}
