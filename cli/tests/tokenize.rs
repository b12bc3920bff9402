//! `iterinv tokenize` end to end: the binary's JSON against transformers' ids in
//! tests/fixtures/t5/tokens.json (make_t5_fixtures.py), from the pipeline-folder form of the
//! fixture (tokenizer/spiece.model) and from tokenizer.json.

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

fn golden() -> Value {
    let text = std::fs::read_to_string(t5().join("tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn prints_the_ids_transformers_gives() {
    let golden = golden();
    // Plain, accents, special-token strings, and the prompt past 77 tokens.
    let picks = [0usize, 8, 22, 27];
    let prompts: Vec<&Value> = picks.iter().map(|&i| &golden["prompts"][i]).collect();
    let texts: Vec<&str> = prompts
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    for folder in [t5(), t5().join("tokenizer_json")] {
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
