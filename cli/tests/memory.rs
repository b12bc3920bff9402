//! `--max-gpu-memory`: an inversion whose plan passes the budget is refused before it runs (no
//! output written, the error naming the stage, its planned peak and what would fit); with room
//! it runs. The built-in tiny cascade, stage I only, a few steps.

mod common;

use common::{assert_fails_with, assert_succeeded, fixture, iterinv};

fn invert(out: &std::path::Path, budget: &str) -> std::process::Output {
    let stage1 = fixture("trained_cascade/stage1");
    iterinv(&[
        "invert",
        fixture("photos/chelsea.png").to_str().unwrap(),
        "--prompt",
        "a photo of a cat",
        "--stage1",
        stage1.to_str().unwrap(),
        "--steps",
        "3",
        "--stage1-inner-steps",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--max-gpu-memory",
        budget,
    ])
}

#[test]
fn an_inversion_over_the_memory_budget_is_refused_before_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("over");
    // Stage I with NTI plans at about 3 MiB (tests/memory_plan.rs); NPI needs about 1.3 MiB.
    let run = invert(&out, "2MiB");
    assert_fails_with(&run, "stage 1 of the inversion would need");
    assert_fails_with(&run, "over the budget of 2.00 MiB");
    assert_fails_with(&run, "--stage1-method npi");
    assert!(!out.exists(), "nothing is written for a refused run");

    let out = tmp.path().join("fits");
    let run = invert(&out, "64MiB");
    assert_succeeded(&run);
    assert!(out.join("stage1.png").is_file());
}

#[test]
fn the_budget_flag_is_documented() {
    common::assert_help_mentions(&["invert"], &["--max-gpu-memory"]);
}
