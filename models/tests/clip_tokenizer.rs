//! CLIP's tokenizer against transformers 5.24: tests/fixtures/clip_tokenizer/tokens.json holds,
//! for ~50 hard prompts (punctuation runs, contractions, accents, CJK, emoji, tabs and newlines,
//! Unicode spaces, HTML entities, typed special tokens, past 77 tokens, empty), the ids and masks
//! transformers' CLIPTokenizer gives with the real 49,408-token vocabulary
//! (make_clip_tokenizer_fixtures.py): with SD 2's config (pad "!"), OpenAI's (pad EOS) and none.
//! The same ids must come from vocab.json + merges.txt and from transformers' tokenizer.json.

mod common;

use std::path::{Path, PathBuf};

use common::{read_json, strings, tokens_json, u32s};
use iterinv_models::text::tokenizer::{
    AnyTokenizer, ClipTokenizer, Pipeline, T5Tokenizer, MAX_TOKENS,
};
use iterinv_models::Error;
use serde_json::Value;

fn fixture() -> PathBuf {
    common::fixture("clip_tokenizer")
}

struct Prompt {
    text: String,
    /// Per config: ids and mask at max_length 77.
    padded: [(Vec<u32>, Vec<u32>); 3],
    ids_unpadded: Vec<u32>,
    tokens: Vec<String>,
}

/// Which transformers golden a tokenizer must give.
#[derive(Clone, Copy, Debug)]
enum Config {
    /// SD 2's tokenizer_config.json + special_tokens_map.json: pad "!".
    Sd2 = 0,
    /// OpenAI CLIP's: pad `<|endoftext|>`.
    OpenAi = 1,
    /// vocab.json + merges.txt alone.
    None = 2,
}

fn golden() -> (Vec<Prompt>, usize, usize) {
    let (prompts, max_length, vocab) = tokens_json(&fixture().join("tokens.json"));
    let pair = |p: &Value, suffix: &str| {
        (
            u32s(&p[format!("input_ids{suffix}")]),
            u32s(&p[format!("attention_mask{suffix}")]),
        )
    };
    let prompts = prompts
        .iter()
        .map(|p| Prompt {
            text: p["text"].as_str().unwrap().to_string(),
            padded: [pair(p, ""), pair(p, "_eos_pad"), pair(p, "_no_config")],
            ids_unpadded: u32s(&p["ids_unpadded"]),
            tokens: strings(&p["tokens"]),
        })
        .collect();
    (prompts, max_length, vocab)
}

/// Every prompt, batched and one at a time, padded and unpadded.
fn check_against_transformers(tok: &Pipeline, config: Config) {
    let (prompts, max_length, vocab) = golden();
    assert_eq!(tok.vocab_size(), vocab, "{}", tok.source().display());
    let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    let batch = tok.encode(&texts, max_length).unwrap();
    assert_eq!(batch.input_ids.len(), prompts.len());
    let from = tok.source().display();
    for (i, p) in prompts.iter().enumerate() {
        let (ids, mask) = &p.padded[config as usize];
        assert_eq!(
            &batch.input_ids[i], ids,
            "{:?} from {from} ({config:?})",
            p.text
        );
        assert_eq!(&batch.attention_mask[i], mask, "{:?} ({config:?})", p.text);
        let one = tok.encode(&[&p.text], max_length).unwrap();
        assert_eq!(&one.input_ids[0], ids, "{:?} alone", p.text);
    }
    // The fixture does hold prompts past max_length (cut, EOS kept last) and empty ones.
    assert!(prompts.iter().any(|p| p.ids_unpadded.len() > max_length));
    assert!(prompts.iter().any(|p| p.ids_unpadded.len() == 2));
}

/// Unpadded ids and their tokens (SD 2's config).
fn check_unpadded(tok: &Pipeline) {
    for p in golden().0 {
        let ids = tok.encode_unpadded(&p.text).unwrap();
        assert_eq!(ids, p.ids_unpadded, "{:?} unpadded", p.text);
        let tokens: Vec<String> = ids.iter().map(|&id| tok.id_to_token(id).unwrap()).collect();
        assert_eq!(tokens, p.tokens, "{:?}", p.text);
    }
}

/// A folder with the fixture's vocab.json + merges.txt and the named config files.
fn folder_with(configs: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["vocab.json", "merges.txt"] {
        std::fs::copy(
            fixture().join("tokenizer").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    for (from, name) in configs {
        std::fs::copy(fixture().join(from), dir.path().join(name)).unwrap();
    }
    dir
}

/// transformers' tokenizer.json: the committed template with vocab.json and merges.txt put back
/// (the generator checked that they are exactly what transformers saved).
fn tokenizer_json_folder() -> tempfile::TempDir {
    let read = |name: &str| std::fs::read_to_string(fixture().join(name)).unwrap();
    let mut json: Value =
        serde_json::from_str(&read("tokenizer_json/tokenizer.template.json")).unwrap();
    json["model"]["vocab"] = serde_json::from_str(&read("tokenizer/vocab.json")).unwrap();
    let merges: Vec<Value> = read("tokenizer/merges.txt")
        .lines()
        .filter(|l| !l.starts_with("#version"))
        .map(|l| Value::from(l.split(' ').collect::<Vec<_>>()))
        .collect();
    json["model"]["merges"] = Value::from(merges);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
    std::fs::copy(
        fixture().join("tokenizer_json/tokenizer_config.json"),
        dir.path().join("tokenizer_config.json"),
    )
    .unwrap();
    dir
}

#[test]
fn vocab_and_merges_match_transformers() {
    let tok = ClipTokenizer::load(&fixture().join("tokenizer")).unwrap();
    assert!(tok.source().ends_with("tokenizer/vocab.json"));
    // SD 2's special_tokens_map.json wins over its tokenizer_config.json: pad "!", id 0.
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.model_max_length(), Some(77));
    check_against_transformers(&tok, Config::Sd2);
    check_unpadded(&tok);
}

#[test]
fn tokenizer_json_matches_transformers() {
    let dir = tokenizer_json_folder();
    let tok = ClipTokenizer::load(dir.path()).unwrap();
    assert!(tok.source().ends_with("tokenizer.json"));
    assert_eq!(tok.pad_id(), 0);
    check_against_transformers(&tok, Config::Sd2);
    check_unpadded(&tok);
}

#[test]
fn openai_config_pads_with_eos() {
    let dir = folder_with(&[
        (
            "openai_config/tokenizer_config.json",
            "tokenizer_config.json",
        ),
        (
            "openai_config/special_tokens_map.json",
            "special_tokens_map.json",
        ),
    ]);
    let tok = ClipTokenizer::load(dir.path()).unwrap();
    assert_eq!(tok.pad_id(), 49407);
    check_against_transformers(&tok, Config::OpenAi);
}

#[test]
fn without_config_files_the_defaults_match_transformers() {
    let dir = folder_with(&[]);
    let tok = ClipTokenizer::load(dir.path()).unwrap();
    assert_eq!(tok.model_max_length(), None);
    check_against_transformers(&tok, Config::None);
}

/// The pad id transformers gave for a config case of tokens.json's `pad_ids`.
fn golden_pad_id(case: &str) -> u32 {
    let v = read_json(&fixture().join("tokens.json"));
    v["pad_ids"][case].as_u64().unwrap() as u32
}

#[test]
fn special_tokens_map_wins_only_over_a_legacy_config() {
    // transformers 5's own tokenizer_config.json (pad "!") beside OpenAI's map (pad EOS): the
    // map wins, as the config has no added_tokens_decoder; with one, the config wins.
    let dir = folder_with(&[
        (
            "tokenizer_json/tokenizer_config.json",
            "tokenizer_config.json",
        ),
        (
            "openai_config/special_tokens_map.json",
            "special_tokens_map.json",
        ),
    ]);
    let pad = ClipTokenizer::load(dir.path()).unwrap().pad_id();
    assert_eq!(pad, golden_pad_id("saved config + OpenAI map"));
    let config = dir.path().join("tokenizer_config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["added_tokens_decoder"] = serde_json::json!({});
    std::fs::write(&config, json.to_string()).unwrap();
    let pad = ClipTokenizer::load(dir.path()).unwrap().pad_id();
    assert_eq!(
        pad,
        golden_pad_id("saved config with added_tokens_decoder + OpenAI map")
    );
    // A pad token the vocabulary lacks is added after it.
    std::fs::write(&config, "{\"pad_token\": \"<pad>\"}").unwrap();
    std::fs::remove_file(dir.path().join("special_tokens_map.json")).unwrap();
    let pad = ClipTokenizer::load(dir.path()).unwrap().pad_id();
    assert_eq!(pad, golden_pad_id("config pad <pad>"));
}

#[test]
fn pipeline_folder_and_file_paths_load() {
    // tests/fixtures/clip_tokenizer is laid out like a pipeline folder: tokenizer/.
    let tok = ClipTokenizer::load(&fixture()).unwrap();
    assert!(tok.source().ends_with("tokenizer/vocab.json"));
    let texts = ["a photo of a cat", "it's a café!"];
    let want = tok.encode(&texts, 16).unwrap();
    for file in ["vocab.json", "merges.txt"] {
        let t = ClipTokenizer::load(&fixture().join("tokenizer").join(file)).unwrap();
        assert_eq!(t.encode(&texts, 16).unwrap(), want, "{file}");
    }
    let json = tokenizer_json_folder();
    let t = ClipTokenizer::load(&json.path().join("tokenizer.json")).unwrap();
    assert_eq!(t.encode(&texts, 16).unwrap(), want);
}

#[test]
fn any_tokenizer_tells_clip_from_t5() {
    let t5 = common::fixture("t5");
    for path in [t5.clone(), t5.join("tokenizer_json")] {
        let tok = AnyTokenizer::load(&path).unwrap();
        assert!(matches!(tok, AnyTokenizer::T5(_)), "{}", path.display());
    }
    let json = tokenizer_json_folder();
    for path in [
        fixture(),
        fixture().join("tokenizer/merges.txt"),
        json.path().to_path_buf(),
    ] {
        let tok = AnyTokenizer::load(&path).unwrap();
        assert!(matches!(tok, AnyTokenizer::Clip(_)), "{}", path.display());
        assert_eq!(tok.pipeline().pad_id(), 0);
    }
    let e = AnyTokenizer::load(&t5.join("text_encoder"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vocab.json") && e.contains("spiece.model"),
        "{e}"
    );
}

#[test]
fn short_max_lengths_truncate_and_keep_bos_and_eos() {
    let tok = ClipTokenizer::load(&fixture().join("tokenizer")).unwrap();
    let (prompts, _, _) = golden();
    let p = &prompts[0]; // "a photo of a cat": BOS, 5 tokens, EOS
    assert_eq!(p.ids_unpadded.len(), 7);
    common::check_truncation(&tok, &p.text, &p.ids_unpadded, &[2, 3, 6, 7, 9]);
    // Room for BOS and EOS at least, and no more than MAX_TOKENS.
    for bad in [1, MAX_TOKENS + 1] {
        let e = tok.encode(&[&p.text], bad).unwrap_err();
        assert!(
            matches!(e, Error::Input { .. }) && e.to_string().contains("max_length"),
            "{e}"
        );
    }
}

/// The error of loading `dir`, which must name `file`.
fn load_err(dir: &Path, file: &str) -> String {
    let e = ClipTokenizer::load(dir).unwrap_err().to_string();
    assert!(e.contains(file), "{e}");
    e
}

#[test]
fn a_folder_missing_merges_is_one_clear_error() {
    let dir = folder_with(&[]);
    std::fs::remove_file(dir.path().join("merges.txt")).unwrap();
    let msg = load_err(dir.path(), "merges.txt");
    assert!(
        msg.contains("does not exist") && msg.contains("vocab.json"),
        "{msg}"
    );
    let dir = folder_with(&[]);
    std::fs::remove_file(dir.path().join("vocab.json")).unwrap();
    load_err(dir.path(), "vocab.json");
}

#[test]
fn corrupt_vocab_json_is_an_error() {
    let dir = folder_with(&[]);
    let file = dir.path().join("vocab.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    assert!(load_err(dir.path(), "vocab.json").contains("corrupt"));
    std::fs::write(&file, "[1, 2]").unwrap();
    load_err(dir.path(), "vocab.json");
    std::fs::write(&file, text.replacen("\"!\": 0", "\"!\": 1", 1)).unwrap();
    assert!(load_err(dir.path(), "vocab.json").contains("twice"));
    std::fs::write(&file, text.replacen("\"!\": 0", "\"!\": -1", 1)).unwrap();
    load_err(dir.path(), "vocab.json");
}

#[test]
fn corrupt_merges_txt_is_an_error_naming_the_line() {
    let dir = folder_with(&[]);
    let file = dir.path().join("merges.txt");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "three parts here";
    std::fs::write(&file, lines.join("\n")).unwrap();
    let msg = load_err(dir.path(), "merges.txt");
    assert!(msg.contains("line 4"), "{msg}");
    lines[3] = "zz\u{1F600} q";
    std::fs::write(&file, lines.join("\n")).unwrap();
    let msg = load_err(dir.path(), "merges.txt");
    assert!(
        msg.contains("line 4") && msg.contains("vocab.json lacks"),
        "{msg}"
    );
}

#[test]
fn corrupt_config_files_are_errors() {
    let dir = folder_with(&[(
        "tokenizer/special_tokens_map.json",
        "special_tokens_map.json",
    )]);
    let config = dir.path().join("tokenizer_config.json");
    for (text, says) in [
        ("{\"model_max_length\": 0}", "model_max_length"),
        ("{\"model_max_length\": \"77\"}", "model_max_length"),
        ("{\"pad_token\": 3}", "pad_token"),
        ("{\"pad_token\": {\"lstrip\": false}}", "pad_token"),
        ("{\"added_tokens_decoder\": []}", "added_tokens_decoder"),
        ("[]", "not a JSON object"),
        ("{", "not valid JSON"),
    ] {
        std::fs::write(&config, text).unwrap();
        let msg = load_err(dir.path(), "tokenizer_config.json");
        assert!(msg.contains(says), "{text}: {msg}");
    }
    // A huge model_max_length is transformers' "no limit".
    std::fs::write(&config, "{\"model_max_length\": 1e30}").unwrap();
    assert_eq!(
        ClipTokenizer::load(dir.path()).unwrap().model_max_length(),
        None
    );
}

#[test]
fn a_tokenizer_json_of_the_other_model_is_refused() {
    let t5 = common::fixture("t5").join("tokenizer_json/tokenizer.json");
    let e = ClipTokenizer::load(&t5).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json") && e.contains("BPE"), "{e}");
    let json = tokenizer_json_folder();
    let e = T5Tokenizer::load(json.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json") && e.contains("Unigram"), "{e}");
    let file = json.path().join("tokenizer.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 3]).unwrap();
    let e = ClipTokenizer::load(json.path()).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[test]
fn a_folder_without_a_tokenizer_says_what_it_holds() {
    let msg = load_err(&common::fixture("t5").join("text_encoder"), "text_encoder");
    assert!(
        msg.contains("merges.txt") && msg.contains("config.json"),
        "{msg}"
    );
    let missing = fixture().join("no-such-tokenizer");
    let msg = load_err(&missing, "no-such-tokenizer");
    assert!(msg.contains("does not exist"), "{msg}");
}
