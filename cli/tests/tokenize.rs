//! `iterinv tokenize` end to end: the binary's JSON against transformers' ids in
//! tests/fixtures/t5/tokens.json (make_t5_fixtures.py), from the pipeline-folder form of the
//! fixture (tokenizer/spiece.model) and from tokenizer.json; and against CLIP's in
//! tests/fixtures/clip_tokenizer/tokens.json (make_clip_tokenizer_fixtures.py), from the
//! pipeline folder and from vocab.json + merges.txt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn t5() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/t5")).to_path_buf()
}

fn tokenize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .arg("tokenize")
        .args(args)
        .output()
        .unwrap()
}

fn clip() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/clip_tokenizer"
    ))
    .to_path_buf()
}

fn read_golden(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn golden() -> Value {
    read_golden(&t5())
}

/// Run `tokenize` on `folder` with the prompts `picks` of `golden`; the JSON must be their ids.
fn check_prompts(golden: &Value, picks: &[usize], folder: &Path) {
    let prompts: Vec<&Value> = picks.iter().map(|&i| &golden["prompts"][i]).collect();
    let texts: Vec<&str> = prompts
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    let mut args = vec!["--tokenizer", folder.to_str().unwrap(), "--"];
    args.extend(&texts);
    let out = tokenize(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    // stdout is the JSON object alone.
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 2);
    for (row, p) in prompts.iter().enumerate() {
        assert_eq!(json["input_ids"][row], p["input_ids"], "{}", p["text"]);
        assert_eq!(
            json["attention_mask"][row], p["attention_mask"],
            "{}",
            p["text"]
        );
    }
}

#[test]
fn prints_the_ids_transformers_gives() {
    let golden = golden();
    // Plain, accents, special-token strings, and the prompt past 77 tokens.
    for folder in [t5(), t5().join("tokenizer_json")] {
        check_prompts(&golden, &[0, 8, 22, 27], &folder);
    }
}

#[test]
fn prints_clips_ids_as_transformers_gives() {
    let golden = read_golden(&clip());
    let texts: Vec<&str> = golden["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    let pick = |t: &str| texts.iter().position(|x| *x == t).unwrap();
    // Plain, "!" (SD 2's pad token), contractions, CJK, typed special tokens, past 77 tokens.
    let picks = [
        pick("a photo of a cat"),
        pick("a cat!"),
        pick("IT'S UPPER CASE, DON'T SHOUT, WE'LL SEE"),
        pick("日本語のテキスト and 中文 mixed"),
        pick("<|startoftext|>typed special tokens<|endoftext|>"),
        pick(&["a"; 76].join(" ")),
        pick(""),
    ];
    for folder in [clip(), clip().join("tokenizer/vocab.json")] {
        check_prompts(&golden, &picks, &folder);
    }
}

#[test]
fn a_clip_folder_missing_merges_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        clip().join("tokenizer/vocab.json"),
        dir.path().join("vocab.json"),
    )
    .unwrap();
    let out = tokenize(&["--tokenizer", dir.path().to_str().unwrap(), "a cat"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("merges.txt"), "{stderr}");
}

#[test]
fn max_length_sets_the_row_length() {
    let golden = golden();
    let p = &golden["prompts"][0]; // "a photo of a cat": 5 tokens, then </s>
    let dir = t5().join("tokenizer");
    let out = tokenize(&[
        "--tokenizer",
        dir.to_str().unwrap(),
        "--max-length",
        "8",
        p["text"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = &p["ids_unpadded"];
    assert_eq!(ids.as_array().unwrap().len(), 6);
    let mut want: Vec<Value> = ids.as_array().unwrap().clone();
    want.extend([0.into(), 0.into()]);
    assert_eq!(json["input_ids"][0], Value::Array(want));
    assert_eq!(
        json["attention_mask"][0],
        serde_json::json!([1, 1, 1, 1, 1, 1, 0, 0])
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("over the limit"));

    // 5 pieces and </s> in 4: the last 2 pieces ("a cat") are cut, and the user is told so.
    let out = tokenize(&[
        "--tokenizer",
        dir.to_str().unwrap(),
        "--max-length",
        "4",
        p["text"].as_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("over the limit of 4")
            && stderr.contains("last 2 tokens")
            && stderr.contains("a cat"),
        "{stderr}"
    );
}

#[test]
fn a_missing_tokenizer_is_a_clear_error() {
    let missing = t5().join("no-such-tokenizer");
    let out = tokenize(&["--tokenizer", missing.to_str().unwrap(), "a cat"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-tokenizer") && stderr.contains("does not exist"),
        "{stderr}"
    );
}
