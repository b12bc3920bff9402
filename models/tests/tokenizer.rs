//! T5's tokenizer against transformers 5.24: tests/fixtures/t5/tokens.json holds, for 30 prompts
//! (accents, ligatures, full-width letters, CJK, emoji, special-token strings, runs of spaces, a
//! prompt past 77 tokens), the ids transformers' T5Tokenizer gives (make_t5_fixtures.py). The
//! same ids must come from spiece.model (converted here) and from tokenizer.json.

mod common;

use std::path::{Path, PathBuf};

use common::{strings, tokens_json, u32s};
use iterinv_models::text::tokenizer::{T5Tokenizer, DEFAULT_MAX_LENGTH};
use iterinv_models::Error;
use serde_json::Value;

fn t5_fixture() -> PathBuf {
    common::fixture("t5")
}

struct Prompt {
    text: String,
    input_ids: Vec<u32>,
    attention_mask: Vec<u32>,
    ids_unpadded: Vec<u32>,
    pieces: Vec<String>,
}

fn golden() -> (Vec<Prompt>, usize, usize) {
    let (prompts, max_length, vocab) = tokens_json(&t5_fixture().join("tokens.json"));
    let prompts = prompts
        .iter()
        .map(|p| Prompt {
            text: p["text"].as_str().unwrap().to_string(),
            input_ids: u32s(&p["input_ids"]),
            attention_mask: u32s(&p["attention_mask"]),
            ids_unpadded: u32s(&p["ids_unpadded"]),
            pieces: strings(&p["pieces"]),
        })
        .collect();
    (prompts, max_length, vocab)
}

/// Every prompt, batched and one at a time, padded and unpadded.
fn check_against_transformers(tok: &T5Tokenizer) {
    let (prompts, max_length, vocab) = golden();
    assert_eq!(max_length, DEFAULT_MAX_LENGTH);
    assert_eq!(tok.vocab_size(), vocab, "{}", tok.source().display());
    assert_eq!(tok.pad_id(), 0);
    let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    let batch = tok.encode(&texts, max_length).unwrap();
    assert_eq!(batch.input_ids.len(), prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let from = tok.source().display();
        assert_eq!(batch.input_ids[i], p.input_ids, "{:?} from {from}", p.text);
        assert_eq!(batch.attention_mask[i], p.attention_mask, "{:?}", p.text);
        let one = tok.encode(&[&p.text], max_length).unwrap();
        assert_eq!(one.input_ids[0], p.input_ids, "{:?} alone", p.text);
        let unpadded = tok.encode_unpadded(&p.text).unwrap();
        assert_eq!(
            unpadded, p.ids_unpadded,
            "{:?} unpadded from {from}",
            p.text
        );
        let pieces: Vec<String> = unpadded
            .iter()
            .map(|&id| tok.id_to_token(id).unwrap())
            .collect();
        assert_eq!(pieces, p.pieces, "{:?}", p.text);
    }
    // The fixture does hold a prompt past max_length, cut with </s> kept last.
    assert!(prompts.iter().any(|p| p.ids_unpadded.len() > max_length));
}

#[test]
fn spiece_model_matches_transformers() {
    let tok = T5Tokenizer::load(&t5_fixture().join("tokenizer")).unwrap();
    assert!(tok.source().ends_with("tokenizer/spiece.model"));
    check_against_transformers(&tok);
}

#[test]
fn tokenizer_json_matches_transformers() {
    let tok = T5Tokenizer::load(&t5_fixture().join("tokenizer_json")).unwrap();
    assert!(tok.source().ends_with("tokenizer.json"));
    check_against_transformers(&tok);
}

#[test]
fn pipeline_folder_and_file_paths_load() {
    // tests/fixtures/t5 is laid out like an IF pipeline folder: text_encoder/, tokenizer/.
    let tok = T5Tokenizer::load(&t5_fixture()).unwrap();
    assert!(tok.source().ends_with("tokenizer/spiece.model"));
    let file = T5Tokenizer::load(&t5_fixture().join("tokenizer/spiece.model")).unwrap();
    let json = T5Tokenizer::load(&t5_fixture().join("tokenizer_json/tokenizer.json")).unwrap();
    let texts = ["a photo of a cat", "café"];
    let want = tok.encode(&texts, 16).unwrap();
    assert_eq!(file.encode(&texts, 16).unwrap(), want);
    assert_eq!(json.encode(&texts, 16).unwrap(), want);
}

#[test]
fn tokenizer_json_is_preferred_over_spiece_model() {
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in [
        ("tokenizer/spiece.model", "spiece.model"),
        ("tokenizer_json/tokenizer.json", "tokenizer.json"),
    ] {
        std::fs::copy(t5_fixture().join(from), dir.path().join(name)).unwrap();
    }
    let tok = T5Tokenizer::load(dir.path()).unwrap();
    assert!(tok.source().ends_with("tokenizer.json"));
}

#[test]
fn short_max_lengths_truncate_and_keep_eos() {
    let tok = T5Tokenizer::load(&t5_fixture().join("tokenizer")).unwrap();
    let (prompts, _, _) = golden();
    let p = &prompts[0]; // "a photo of a cat": 5 tokens and </s>
    common::check_truncation(&tok, &p.text, &p.ids_unpadded, &[1, 2, 3, 6, 7]);
    assert_eq!(
        tok.encode(&[], 77).unwrap().input_ids,
        Vec::<Vec<u32>>::new()
    );
}

fn load_err(dir: &Path) -> String {
    let e = T5Tokenizer::load(dir).unwrap_err().to_string();
    assert!(e.contains(&dir.display().to_string()), "{e}");
    e
}

/// A tokenizer folder holding `spiece.model` with these bytes.
fn spiece_dir(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spiece.model"), bytes).unwrap();
    dir
}

fn spiece_err(bytes: &[u8]) -> String {
    let dir = spiece_dir(bytes);
    let e = T5Tokenizer::load(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Tokenizer { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("spiece.model"), "{msg}");
    msg
}

#[test]
fn truncated_spiece_model_is_an_error() {
    let bytes = std::fs::read(t5_fixture().join("tokenizer/spiece.model")).unwrap();
    let n = bytes.len();
    let mut cuts: Vec<usize> = vec![0, 1, 2, 3, 7, 100, 1000, n / 2, n - 100, n - 2, n - 1];
    cuts.extend((1..60).map(|i| i * n / 60));
    for cut in cuts {
        let msg = spiece_err(&bytes[..cut]);
        assert!(
            msg.contains("truncated or corrupt")
                || msg.contains("cut short")
                || msg.contains("no pieces"),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn random_bytes_are_an_error() {
    // xorshift64: the same "random" files on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in [1usize, 5, 17, 64, 300, 4096, 65536] {
        for _ in 0..8 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            spiece_err(&bytes);
        }
    }
}

#[test]
fn a_bpe_model_is_refused() {
    // Appending trainer_spec { model_type: BPE } merges into the file's trainer_spec (protobuf's
    // rule for a repeated embedded message), as transformers' protobuf reader would read it.
    let mut bytes = std::fs::read(t5_fixture().join("tokenizer/spiece.model")).unwrap();
    bytes.extend([0x12, 0x02, 0x18, 0x02]);
    let msg = spiece_err(&bytes);
    assert!(msg.contains("BPE") && msg.contains("UNIGRAM"), "{msg}");
}

#[test]
fn a_corrupt_charsmap_is_an_error_not_a_panic() {
    // normalizer_spec { precompiled_charsmap: a 2-unit trie whose root points outside it }.
    let map = [8u8, 0, 0, 0, 0, 0xfc, 0xff, 0x7f, 0, 0, 0, 0];
    let mut spec = vec![0x12, map.len() as u8];
    spec.extend(map);
    let mut bytes = std::fs::read(t5_fixture().join("tokenizer/spiece.model")).unwrap();
    bytes.extend([0x1a, spec.len() as u8]);
    bytes.extend(spec);
    let msg = spiece_err(&bytes);
    assert!(msg.contains("precompiled_charsmap"), "{msg}");
}

#[test]
fn corrupt_tokenizer_json_is_an_error() {
    let text = std::fs::read_to_string(t5_fixture().join("tokenizer_json/tokenizer.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenizer.json");
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("not valid JSON"), "{msg}");
    // Valid JSON, broken charsmap: the trie's root points outside it.
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["normalizer"]["precompiled_charsmap"] = "CAAAAAD8/38AAAAA".into();
    std::fs::write(&file, v.to_string()).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("charsmap"), "{msg}");
    std::fs::write(&file, "{\"model\": 3}").unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("cannot load"), "{msg}");
}

#[test]
fn missing_folders_and_files_are_named() {
    let missing = t5_fixture().join("no-such-tokenizer");
    let msg = load_err(&missing);
    assert!(msg.contains("does not exist"), "{msg}");
    // A folder without a tokenizer: says what it looked for and what is there.
    let msg = load_err(&t5_fixture().join("text_encoder"));
    assert!(
        msg.contains("spiece.model")
            && msg.contains("tokenizer.json")
            && msg.contains("config.json"),
        "{msg}"
    );
}
