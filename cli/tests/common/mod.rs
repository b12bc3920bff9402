//! Helpers shared by the CLI's end-to-end tests: running the binary, reading its output files and
//! comparing them with the float64 goldens of tools/reference.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::{Dtype, SafeTensors};

/// A folder of tests/fixtures.
pub fn fixture(set: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).join(set)
}

/// Runs the `iterinv` binary with `args`.
pub fn iterinv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .args(args)
        .output()
        .expect("the iterinv binary runs")
}

/// The shape and values (widened to f64) of the F32 or F64 array `name`.
pub fn floats(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
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

/// `got`'s array `name` has the shape of `want`'s `golden` and matches it within 1e-3 of its
/// largest magnitude (the models' tests' tolerance).
pub fn assert_matches(got: &SafeTensors, name: &str, want: &SafeTensors, golden: &str) {
    let (gs, g) = floats(got, name);
    let (ws, w) = floats(want, golden);
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

/// The run succeeded (its stderr shown otherwise).
pub fn assert_succeeded(run: &Output) {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The run failed, without a panic, and its stderr contains `expected`.
pub fn assert_fails_with(run: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "succeeded; expected {expected}");
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `iterinv <args> --help` mentions every word of `words`.
pub fn assert_help_mentions(args: &[&str], words: &[&str]) {
    let mut all = args.to_vec();
    all.push("--help");
    let run = iterinv(&all);
    let help = String::from_utf8_lossy(&run.stdout);
    for word in words {
        assert!(help.contains(word), "`{word}` missing from:\n{help}");
    }
}
