//! Fuzzing T5's tokenizer files (models/src/text/tokenizer): `spiece.model` (SentencePiece's
//! protobuf: varints, lengths and field numbers mutated), `tokenizer.json` (edited and mutated)
//! and the `tokenizer_config.json` beside a spiece.model. Each must load or fail with an error
//! naming the file; a loaded tokenizer must then encode texts (special tokens, emoji, empty) or
//! fail naming the file, never panic. (iterinv has no CLIP vocab.json + merges.txt reader yet:
//! the SD upscaler's text encoder is not implemented, so there is nothing of that kind to fuzz.)

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::Path;

use fuzz_support::{assert_names_file, budget, fixture_bytes, guarded, json, mutate};
use iterinv_models::text::T5Tokenizer;
use proptest::prelude::*;

const TEXTS: [&str; 3] = [
    "a photo of a cat on a mat",
    "</s><pad><extra_id_0> <unk> \u{1F600} \u{00C5}\u{0301} \t\n",
    "",
];

/// Load `file` and encode [`TEXTS`]; every error must name `file` (or, for `names`, that file).
fn load_and_encode(file: &Path, names: &Path, input_len: usize, factor: usize) {
    let f = file.to_path_buf();
    let result = guarded("tokenizer", budget(input_len, factor), move || {
        let tok = T5Tokenizer::load(&f).map_err(|e| e.to_string())?;
        let enc = tok.encode(&TEXTS, 16).map_err(|e| e.to_string())?;
        for ids in &enc.input_ids {
            assert_eq!(ids.len(), 16, "encode pads and truncates to max_length");
        }
        Ok::<_, String>(())
    });
    if let Err(msg) = result {
        assert_names_file(&msg, names);
    }
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
        load_and_encode(&path, &path, bytes.len(), 64);
    }

    #[test]
    fn mutated_tokenizer_jsons_load_or_name_the_file(bytes in tokenizer_json_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, &bytes).unwrap();
        load_and_encode(&path, &path, bytes.len(), 64);
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
        load_and_encode(&model, &path, len + config.len(), 64);
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
