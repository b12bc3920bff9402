//! Fuzzing the safetensors loader (models/src/weights): real fixture files with their bytes
//! mutated, or their JSON header edited and re-framed with a correct length (so the edits reach
//! the offset, shape and dtype checks), opened and every tensor's bytes asked for. Each case
//! must give `Ok` or an error naming the file, never panic or hang, and allocate no more heap
//! than a small multiple of the file (the data is memory-mapped, never copied).
//! Named regression tests for lying headers follow the fuzz tests.
//! Cases: see tests/fuzz_support (ITERINV_FUZZ_CASES for a long run).

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::{Path, PathBuf};

use fuzz_support::{assert_names_file, budget, fixture_bytes, fixtures, guarded, json, mutate};
use iterinv_models::weights::Checkpoint;
use proptest::prelude::*;
use serde_json::{json, Value};

/// The real files the mutations start from: a T5 shard and an IF UNet shard.
const SEEDS: [&str; 2] = [
    "t5/text_encoder_sharded/model-00004-of-00004.safetensors",
    "if_unet/stage1_sharded/diffusion_pytorch_model-00004-of-00004.safetensors",
];

/// Open `path` and ask for every tensor it lists with the shape it lists (as a model would).
fn open_and_read(path: PathBuf, file_len: usize) -> Result<usize, String> {
    guarded("safetensors", budget(file_len, 16), move || {
        let ck = Checkpoint::open_file(&path).map_err(|e| e.to_string())?;
        let keys: Vec<String> = ck.keys().map(String::from).collect();
        let mut total = 0;
        for key in keys {
            let shape = ck.shape(&key).expect("a listed key has a shape").to_vec();
            match ck.bytes(&key, &shape) {
                Ok((bytes, _)) => total += bytes.len(),
                // A dtype iterinv does not load: an error naming the file, checked by the caller.
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(total)
    })
}

fn check(dir: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join("model.safetensors");
    std::fs::write(&path, bytes).unwrap();
    if let Err(msg) = open_and_read(path.clone(), bytes.len()) {
        assert_names_file(&msg, &path);
    }
    Ok(())
}

/// A safetensors file's header (as JSON) and data section.
fn split(file: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&file[8..8 + n]).unwrap();
    (header, file[8 + n..].to_vec())
}

/// A file from a header (any bytes) and a data section, with a correct length field.
fn frame(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

fn seed_strategy(rel: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let file = fixture_bytes(rel);
    let (header, data) = split(&file);
    prop_oneof![
        mutate::mutated(file),
        json::edited(header).prop_map(move |h| frame(&h, &data)),
    ]
}

proptest! {
    #![proptest_config(fuzz_support::config(3000))]

    #[test]
    fn mutated_safetensors_files_load_or_name_the_file(
        bytes in prop_oneof![seed_strategy(SEEDS[0]), seed_strategy(SEEDS[1])]
    ) {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), &bytes)?;
    }
}

/// The sharded index: `weight_map` edited (missing, extra, renamed, non-string, path-like shard
/// names), the shards themselves real.
/// Each case rewrites only the index in one copy of the sharded fixture (cases run one at a time).
fn sharded_case(dir: &Path, index: &[u8]) {
    let path = dir.join("model.safetensors.index.json");
    std::fs::write(&path, index).unwrap();
    let p = path.clone();
    let result = guarded("shard index", budget(index.len(), 64), move || {
        Checkpoint::open_file(&p)
            .map(|ck| ck.len())
            .map_err(|e| e.to_string())
    });
    match result {
        // Every error names the index or, for a corrupt shard, the shard.
        Err(msg) => assert!(
            msg.contains(&path.display().to_string()) || msg.contains(".safetensors"),
            "the error names neither the index nor a shard: {msg}"
        ),
        Ok(n) => assert!(n > 0, "an opened checkpoint lists its tensors"),
    }
}

fn index_strategy() -> impl Strategy<Value = Vec<u8>> {
    let index = fixture_bytes("t5/text_encoder_sharded/model.safetensors.index.json");
    let value: Value = serde_json::from_slice(&index).unwrap();
    prop_oneof![mutate::mutated(index), json::edited(value)]
}

proptest! {
    #![proptest_config(fuzz_support::config(1500))]

    #[test]
    fn mutated_shard_indexes_load_or_name_the_index(index in index_strategy()) {
        static COPY: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let dir = COPY.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let src = fixtures().join("t5/text_encoder_sharded");
            for entry in std::fs::read_dir(&src).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
            dir
        });
        sharded_case(dir.path(), &index);
    }
}

// Regression tests: lying headers, each refused quickly with an error naming the file, and
// without allocating what the header claims (the watchdog's allocation limit).

fn refused(bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let msg = open_and_read(path.clone(), bytes.len()).expect_err("a lying header is refused");
    assert_names_file(&msg, &path);
    assert!(msg.contains(expect), "expected {expect:?} in: {msg}");
}

fn header(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn a_header_length_of_2_pow_62_is_refused_without_allocating_it() {
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    refused(&bytes, "header length");
}

#[test]
fn a_header_length_past_the_end_of_the_file_is_refused() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#);
    refused(&bytes, "past the end");
}

#[test]
fn offsets_that_overflow_are_refused() {
    let h = header(json!({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, u64::MAX]}}));
    refused(&frame(&h, &[0; 4]), "valid safetensors");
}

#[test]
fn overlapping_offsets_are_refused() {
    let h = header(json!({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }));
    refused(&frame(&h, &[0; 12]), "offsets");
}

#[test]
fn a_shape_whose_size_overflows_is_refused() {
    let big = 1u64 << 62;
    let h = header(json!({"a": {"dtype": "F32", "shape": [big, big], "data_offsets": [0, 4]}}));
    refused(&frame(&h, &[0; 4]), "valid safetensors");
}

#[test]
fn a_shape_that_disagrees_with_the_byte_range_is_refused() {
    let h = header(json!({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}));
    refused(&frame(&h, &[0; 8]), "shape and dtype");
}

#[test]
fn a_dtype_iterinv_does_not_load_is_named_with_the_file() {
    let h = header(json!({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}));
    refused(&frame(&h, &[0; 8]), "I64");
}

#[test]
fn data_beyond_the_tensors_is_refused() {
    let h = header(json!({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}));
    refused(&frame(&h, &[0; 4096]), "data section");
}
