//! Fuzzing the tokenizer files (models/src/text/tokenizer). T5's: `spiece.model` (SentencePiece's
//! protobuf: varints, lengths and field numbers mutated), `tokenizer.json` (edited and mutated)
//! and the `tokenizer_config.json` beside a spiece.model. CLIP's, from the real 49,408-token
//! fixture: `vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json` and
//! transformers' `tokenizer.json` (its pipeline edited, or its bytes mutated). Each must load or
//! fail with an error naming the file; a loaded tokenizer must then encode texts (special
//! tokens, emoji, empty) or fail naming the file, never panic.

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::Path;

use fuzz_support::{assert_names_file, budget, fixture_bytes, guarded, json, mutate};
use iterinv_models::text::tokenizer::Pipeline;
use iterinv_models::text::{ClipTokenizer, T5Tokenizer};
use proptest::prelude::*;

const TEXTS: [&str; 3] = [
    "a photo of a cat on a mat",
    "</s><pad><extra_id_0> <unk> \u{1F600} \u{00C5}\u{0301} \t\n",
    "",
];

const CLIP_TEXTS: [&str; 4] = [
    "a photo of a cat!!! it's <|endoftext|> <|STARTOFTEXT|>",
    "caf\u{00E9} \u{65E5}\u{672C} \u{1F600}\u{200D}\u{1F431} \t\n &amp;",
    "",
    "   ",
];

/// Load `file` with `load` and encode `texts`; every error must name `file` (or, for `names`,
/// that file).
fn load_and_encode<T: std::ops::Deref<Target = Pipeline> + 'static>(
    load: fn(&Path) -> iterinv_models::Result<T>,
    texts: &'static [&'static str],
    file: &Path,
    names: &Path,
    input_len: usize,
    factor: usize,
) {
    let f = file.to_path_buf();
    let result = guarded("tokenizer", budget(input_len, factor), move || {
        let tok = load(&f).map_err(|e| e.to_string())?;
        let enc = tok.encode(texts, 16).map_err(|e| e.to_string())?;
        for ids in &enc.input_ids {
            assert_eq!(ids.len(), 16, "encode pads and truncates to max_length");
        }
        Ok::<_, String>(())
    });
    if let Err(msg) = result {
        assert_names_file(&msg, names);
    }
}

fn load_t5(file: &Path, names: &Path, input_len: usize, factor: usize) {
    load_and_encode(T5Tokenizer::load, &TEXTS, file, names, input_len, factor);
}

fn load_clip(path: &Path, names: &Path, input_len: usize) {
    // The BPE model's tables: a few times the 1.5 MB of vocab.json + merges.txt.
    load_and_encode(ClipTokenizer::load, &CLIP_TEXTS, path, names, input_len, 64);
}

const CLIP: &str = "clip_tokenizer/tokenizer";

/// A CLIP tokenizer folder: the fixture's files, `name` replaced by `bytes`.
fn clip_folder(name: &str, bytes: &[u8]) -> (tempfile::TempDir, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut len = 0;
    for f in [
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        let data = if f == name {
            bytes.to_vec()
        } else {
            fixture_bytes(&format!("{CLIP}/{f}"))
        };
        len += data.len();
        std::fs::write(dir.path().join(f), data).unwrap();
    }
    (dir, len)
}

fn file_strategy(rel: &str) -> impl Strategy<Value = Vec<u8>> {
    let bytes = fixture_bytes(rel);
    let value = serde_json::from_slice(&bytes).unwrap();
    prop_oneof![mutate::mutated(bytes), json::edited(value)]
}

/// transformers' CLIP tokenizer.json: the fixture's template (its pipeline: normalizer,
/// pre-tokenizer, added tokens, post-processor) edited, then vocab.json and merges.txt put in.
fn clip_tokenizer_json(template: &[u8]) -> Vec<u8> {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(template) else {
        return template.to_vec();
    };
    if let Some(model) = json.get_mut("model").and_then(|m| m.as_object_mut()) {
        if model
            .get("vocab")
            .is_some_and(|v| v == &serde_json::json!({}))
        {
            let vocab = fixture_bytes(&format!("{CLIP}/vocab.json"));
            model.insert("vocab".into(), serde_json::from_slice(&vocab).unwrap());
        }
        if model
            .get("merges")
            .is_some_and(|v| v == &serde_json::json!([]))
        {
            let merges = String::from_utf8(fixture_bytes(&format!("{CLIP}/merges.txt"))).unwrap();
            let merges: Vec<&str> = merges.lines().skip(1).collect();
            model.insert("merges".into(), merges.into());
        }
    }
    serde_json::to_vec(&json).unwrap()
}

fn clip_tokenizer_json_strategy() -> impl Strategy<Value = Vec<u8>> {
    let template = fixture_bytes("clip_tokenizer/tokenizer_json/tokenizer.template.json");
    let value = serde_json::from_slice(&template).unwrap();
    let whole = clip_tokenizer_json(&template);
    prop_oneof![
        json::edited(value).prop_map(|t| clip_tokenizer_json(&t)),
        mutate::mutated(whole),
    ]
}

fn spiece_strategy() -> impl Strategy<Value = Vec<u8>> {
    mutate::mutated(fixture_bytes("t5/tokenizer/spiece.model"))
}

fn tokenizer_json_strategy() -> impl Strategy<Value = Vec<u8>> {
    let bytes = fixture_bytes("t5/tokenizer_json/tokenizer.json");
    let value = serde_json::from_slice(&bytes).unwrap();
    prop_oneof![mutate::mutated(bytes), json::edited(value)]
}

fn tokenizer_config_strategy() -> impl Strategy<Value = Vec<u8>> {
    let bytes = fixture_bytes("t5/tokenizer_json/tokenizer_config.json");
    let value = serde_json::from_slice(&bytes).unwrap();
    prop_oneof![mutate::mutated(bytes), json::edited(value)]
}

proptest! {
    #![proptest_config(fuzz_support::config(1000))]

    #[test]
    fn mutated_spiece_models_load_or_name_the_file(bytes in spiece_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spiece.model");
        std::fs::write(&path, &bytes).unwrap();
        load_t5(&path, &path, bytes.len(), 64);
    }

    #[test]
    fn mutated_tokenizer_jsons_load_or_name_the_file(bytes in tokenizer_json_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, &bytes).unwrap();
        load_t5(&path, &path, bytes.len(), 64);
    }

    #[test]
    fn mutated_tokenizer_configs_beside_a_spiece_model_load_or_name_the_file(
        config in tokenizer_config_strategy()
    ) {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("spiece.model");
        std::fs::write(&model, fixture_bytes("t5/tokenizer/spiece.model")).unwrap();
        let path = dir.path().join("tokenizer_config.json");
        std::fs::write(&path, &config).unwrap();
        let len = std::fs::metadata(&model).unwrap().len() as usize;
        load_t5(&model, &path, len + config.len(), 64);
    }
}

// Each CLIP case loads the 49,408-token vocabulary (about 0.1 s in a debug build): fewer cases.
proptest! {
    #![proptest_config(fuzz_support::config(48))]

    #[test]
    fn mutated_clip_vocab_jsons_load_or_name_the_file(
        bytes in file_strategy("clip_tokenizer/tokenizer/vocab.json")
    ) {
        let (dir, len) = clip_folder("vocab.json", &bytes);
        load_clip(dir.path(), &dir.path().join("vocab.json"), len);
    }

    #[test]
    fn mutated_clip_merges_load_or_name_the_file(
        bytes in mutate::mutated(fixture_bytes("clip_tokenizer/tokenizer/merges.txt"))
    ) {
        let (dir, len) = clip_folder("merges.txt", &bytes);
        load_clip(dir.path(), &dir.path().join("merges.txt"), len);
    }

    #[test]
    fn mutated_clip_configs_load_or_name_the_file(
        config in file_strategy("clip_tokenizer/tokenizer/tokenizer_config.json"),
        map in file_strategy("clip_tokenizer/tokenizer/special_tokens_map.json"),
        mutate_map: bool,
    ) {
        // One of the two files mutated, the other as SD 2 ships it.
        let (name, bytes) = if mutate_map {
            ("special_tokens_map.json", map)
        } else {
            ("tokenizer_config.json", config)
        };
        let (dir, len) = clip_folder(name, &bytes);
        load_clip(dir.path(), &dir.path().join(name), len);
    }

    #[test]
    fn mutated_clip_tokenizer_jsons_load_or_name_the_file(bytes in clip_tokenizer_json_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, &bytes).unwrap();
        load_clip(&path, &path, bytes.len());
    }
}

#[test]
fn a_huge_max_length_is_refused_before_padding_allocates_it() {
    let tok = T5Tokenizer::load(&fuzz_support::fixtures().join("t5/tokenizer")).unwrap();
    let msg = guarded("encode", budget(0, 0), move || {
        tok.encode(&["a cat"], usize::MAX >> 4)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    });
    assert!(msg.contains("max_length"), "{msg}");
}

/// Load a tokenizer.json holding `json` with `load`; the error, which must name the file.
fn tokenizer_json_error<T: std::fmt::Debug>(
    load: fn(&Path) -> iterinv_models::Result<T>,
    json: &serde_json::Value,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(
        &path,
        clip_tokenizer_json(&serde_json::to_vec(json).unwrap()),
    )
    .unwrap();
    let msg = load(&path).unwrap_err().to_string();
    assert_names_file(&msg, &path);
    msg
}

#[test]
fn a_replace_pattern_matching_nothing_is_refused() {
    // Found by mutated_clip_tokenizer_jsons: with the pattern {"Regex": ""} the tokenizers crate
    // indexed past its alignments while encoding (a panic, caught, but not a clear error).
    let template = fixture_bytes("clip_tokenizer/tokenizer_json/tokenizer.template.json");
    let mut v: serde_json::Value = serde_json::from_slice(&template).unwrap();
    v["normalizer"]["normalizers"][1]["pattern"] = serde_json::json!({"Regex": ""});
    let msg = tokenizer_json_error(ClipTokenizer::load, &v);
    assert!(msg.contains("Replace"), "{msg}");
}

#[test]
fn a_precompiled_normalizer_without_its_charsmap_is_refused() {
    // Found by mutated_tokenizer_jsons: the tokenizers crate panics (`expect`) reading it.
    let bytes = fixture_bytes("t5/tokenizer_json/tokenizer.json");
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for bad in [serde_json::json!(3), serde_json::json!("AAF=")] {
        v["normalizer"]["precompiled_charsmap"] = bad;
        let msg = tokenizer_json_error(T5Tokenizer::load, &v);
        assert!(msg.contains("precompiled_charsmap"), "{msg}");
    }
}

#[test]
fn an_empty_special_token_is_refused_naming_its_file() {
    // Found by mutated_clip_configs: an empty `content` got as far as building the post-processor,
    // whose error named vocab.json.
    let mut map: serde_json::Value =
        serde_json::from_slice(&fixture_bytes(&format!("{CLIP}/special_tokens_map.json"))).unwrap();
    map["eos_token"] = serde_json::json!({"content": "", "normalized": true});
    let (dir, _) = clip_folder(
        "special_tokens_map.json",
        &serde_json::to_vec(&map).unwrap(),
    );
    let msg = ClipTokenizer::load(dir.path()).unwrap_err().to_string();
    assert_names_file(&msg, &dir.path().join("special_tokens_map.json"));
    assert!(msg.contains("`eos_token` is an empty token"), "{msg}");
}

#[test]
fn a_template_adding_an_unknown_special_token_is_refused() {
    // Found by mutated_tokenizer_jsons: the tokenizers crate panics mid-encode ("no entry found
    // for key"), and the panic's backtrace overran the fuzz test's allocation budget.
    let bytes = fixture_bytes("t5/tokenizer_json/tokenizer.json");
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let removed = v["post_processor"]["special_tokens"]
        .as_object_mut()
        .unwrap()
        .remove("</s>");
    assert!(removed.is_some(), "the fixture's template adds </s>");
    let msg = tokenizer_json_error(T5Tokenizer::load, &v);
    assert!(msg.contains("\"</s>\""), "{msg}");
}
