//! `iterinv edit` end to end on the trained tiny IF stages (tests/fixtures/trained_cascade) and a
//! held-out photo: editing a saved inversion and editing the photo directly (which inverts it
//! first with the same flags) write the same files byte for byte; the mask and every stage's
//! edit are written with a record of the settings; bad inputs are clear errors. (The DiffEdit
//! loop's numbers against PyTorch are tests/diffedit.rs's.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn iterinv(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("the iterinv binary runs")
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "iterinv failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn fails_with(o: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "succeeded: {stderr}");
    assert!(
        stderr.contains(expected) && !stderr.contains("panicked"),
        "expected {expected:?} in: {stderr}"
    );
}

/// The inversion flags (fast: DDIM at stage I, 2 fixed-point passes at stage II, 4 steps) and
/// a short DiffEdit (10 steps, 3 maps), shared by every run so that they must agree.
fn flags() -> Vec<String> {
    [
        "--stage1",
        &fixture("trained_cascade/stage1"),
        "--stage2",
        &fixture("trained_cascade/stage2"),
        "--steps",
        "4",
        "--stage1-method",
        "ddim",
        "--sr-method",
        "fixed-point",
        "--passes",
        "2",
        "--seed",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn edit_flags() -> Vec<String> {
    ["--edit-steps", "10", "--mask-maps", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn run(cache: &Path, args: &[&str], extra: &[String]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(extra.iter().map(String::as_str));
    iterinv(cache, &all)
}

#[test]
fn editing_a_saved_inversion_equals_editing_the_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let photo = fixture("photos/chelsea.png");
    let dir = |name: &str| -> PathBuf { tmp.path().join(name) };
    let inversion = dir("inversion");
    ok(&run(
        cache,
        &[
            "invert",
            &photo,
            "--prompt",
            "a photo of a cat",
            "--out",
            inversion.to_str().unwrap(),
        ],
        &flags(),
    ));

    // From the saved inversion: its stage flags only relocate models, so none are given.
    let mut from_saved_flags = edit_flags();
    from_saved_flags.extend(["--seed".to_string(), "3".to_string()]);
    let from_saved = dir("from-saved");
    ok(&run(
        cache,
        &[
            "edit",
            inversion.to_str().unwrap(),
            "--edit-prompt",
            "a photo of a dog",
            "--out",
            from_saved.to_str().unwrap(),
        ],
        &from_saved_flags,
    ));
    let from_photo = dir("from-photo");
    let mut photo_flags = flags();
    photo_flags.extend(edit_flags());
    ok(&run(
        cache,
        &[
            "edit",
            &photo,
            "--prompt",
            "a photo of a cat",
            "--edit-prompt",
            "a photo of a dog",
            "--out",
            from_photo.to_str().unwrap(),
        ],
        &photo_flags,
    ));

    for file in ["mask.png", "stage1.png", "stage2.png", "input-stage1.png"] {
        let a = std::fs::read(from_saved.join(file)).unwrap();
        let b = std::fs::read(from_photo.join(file)).unwrap();
        assert_eq!(a, b, "{file} differs");
    }
    // The photo's own inversion, written beside the edit, is the saved one.
    assert_eq!(
        std::fs::read(inversion.join("inversion.safetensors")).unwrap(),
        std::fs::read(from_photo.join("inversion/inversion.safetensors")).unwrap()
    );
    // The edit changed stage I: it differs from the photo as stage I sees it.
    assert_ne!(
        std::fs::read(from_saved.join("stage1.png")).unwrap(),
        std::fs::read(from_saved.join("input-stage1.png")).unwrap()
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(from_saved.join("edit.json")).unwrap()).unwrap();
    assert_eq!(record["edit_prompt"], "a photo of a dog");
    assert_eq!(record["prompt"], "a photo of a cat");
    assert_eq!(record["diffedit"]["steps"], 10);
    assert_eq!(record["diffedit"]["maps"], 3);
    assert_eq!(record["seed"], 3);
    let fraction = record["edited_fraction"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&fraction), "{fraction}");

    // A saved inversion has its prompt.
    fails_with(
        &iterinv(
            cache,
            &[
                "edit",
                inversion.to_str().unwrap(),
                "--prompt",
                "a cat",
                "--edit-prompt",
                "a dog",
                "--out",
                dir("x").to_str().unwrap(),
            ],
        ),
        "drop --prompt",
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let photo = fixture("photos/chelsea.png");
    let empty = tmp.path().to_str().unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["edit", &photo, "--edit-prompt", "a dog", "--out", out],
            "needs --prompt",
        ),
        (
            vec!["edit", empty, "--edit-prompt", "a dog", "--out", out],
            "without inversion.json",
        ),
        (
            vec![
                "edit",
                &photo,
                "--prompt",
                "a cat",
                "--edit-prompt",
                "a dog",
                "--out",
                out,
                "--inpaint-strength",
                "0",
            ],
            "inpaint strength",
        ),
        (
            vec![
                "edit",
                &photo,
                "--prompt",
                "a cat",
                "--edit-prompt",
                "a dog",
                "--out",
                out,
                "--edit-steps",
                "0",
            ],
            "--edit-steps is 0",
        ),
    ];
    for (args, expected) in cases {
        fails_with(&iterinv(cache, &args), expected);
    }
}
