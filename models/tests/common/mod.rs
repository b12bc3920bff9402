//! Helpers shared by the models crate's tests: one GPU, the spec files, safetensors writers.
#![allow(dead_code)]

pub mod golden;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use iterinv_models::engine::{Gpu, GpuOptions};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().expect("a GPU adapter (lavapipe in CI)"))
}

/// A GPU that fills every op output with NaN before the kernel writes it and checks guard words
/// after each buffer: a kernel that skips an element or writes out of bounds fails the test.
pub fn poisoned_gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            ..Default::default()
        })
        .expect("a GPU adapter (lavapipe in CI)")
    })
}

/// The folder of a tools/reference fixture set (`if_unet`, ...).
pub fn fixture(set: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).join(set)
}

/// A GPU whose storage-binding limit is 256 bytes, so uploads of larger tensors are chunked.
pub fn small_binding_gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            max_binding_size: Some(256),
            ..Default::default()
        })
        .expect("a GPU adapter (lavapipe in CI)")
    })
}

/// A copy of a file of `shared/spec/checkpoints/`, kept in tests/fixtures/checkpoints/.
pub fn spec_path(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/checkpoints/"
    ))
    .join(name)
}

/// A spec file: `{"note", "config": {...}, "params": n, "keys": {key: shape}}`.
pub fn spec(name: &str) -> serde_json::Value {
    let path = spec_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// One tensor to write: key, dtype, shape, raw little-endian bytes.
pub struct Raw {
    pub key: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Deterministic varied values (signs, magnitudes, a subnormal-ish tail), never all equal.
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let u = (s >> 8) as f32 / (1u32 << 24) as f32;
            (u - 0.5) * 10f32.powi((i % 7) as i32 - 3)
        })
        .collect()
}

pub fn f32_raw(key: &str, shape: &[usize], seed: u32) -> Raw {
    let n = shape.iter().product();
    Raw {
        key: key.into(),
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: values(n, seed)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

pub fn f16_raw(key: &str, shape: &[usize], seed: u32) -> Raw {
    let n = shape.iter().product();
    Raw {
        key: key.into(),
        dtype: Dtype::F16,
        shape: shape.to_vec(),
        bytes: values(n, seed)
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

pub fn bf16_raw(key: &str, shape: &[usize], seed: u32) -> Raw {
    let n = shape.iter().product();
    Raw {
        key: key.into(),
        dtype: Dtype::BF16,
        shape: shape.to_vec(),
        bytes: values(n, seed)
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

pub fn i64_raw(key: &str, shape: &[usize]) -> Raw {
    let n: usize = shape.iter().product();
    Raw {
        key: key.into(),
        dtype: Dtype::I64,
        shape: shape.to_vec(),
        bytes: (0..n as i64).flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Write `tensors` as one safetensors file with the `safetensors` crate's serializer.
pub fn write(path: &Path, tensors: &[&Raw]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|t| {
            (
                t.key.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Write a shard index naming, for each shard file, the keys it holds.
pub fn write_index(path: &Path, shards: &[(&str, &[&Raw])]) {
    let mut map = serde_json::Map::new();
    for (file, tensors) in shards {
        for t in *tensors {
            map.insert(t.key.clone(), serde_json::Value::String(file.to_string()));
        }
    }
    let index = serde_json::json!({
        "metadata": { "total_size": 0 },
        "weight_map": map,
    });
    std::fs::write(path, serde_json::to_string_pretty(&index).unwrap()).unwrap();
}

/// A JSON fixture file (a tokens.json of make_*_fixtures.py), parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A JSON array of token ids or mask values.
pub fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("an id")).expect("a u32 id"))
        .collect()
}

/// A JSON array of strings (tokens, pieces).
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("an array of strings")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// `text` encoded at each of `max_lengths` must be its (golden) `unpadded` ids cut to fit with
/// the last one (EOS) kept, then padded with the pad id (mask 0); max_length 0 is an input error.
pub fn check_truncation(
    tok: &iterinv_models::text::tokenizer::Pipeline,
    text: &str,
    unpadded: &[u32],
    max_lengths: &[usize],
) {
    let eos = *unpadded.last().expect("at least EOS");
    for &max_length in max_lengths {
        let e = tok.encode(&[text], max_length).unwrap();
        let n = unpadded.len().min(max_length);
        let mut want = unpadded[..n - 1].to_vec();
        want.push(eos);
        let mut mask = vec![1; n];
        want.resize(max_length, tok.pad_id());
        mask.resize(max_length, 0);
        assert_eq!(e.input_ids[0], want, "max_length {max_length}");
        assert_eq!(e.attention_mask[0], mask, "max_length {max_length}");
        let cut = unpadded.len().saturating_sub(max_length);
        assert_eq!(e.truncated, [cut], "max_length {max_length}");
    }
    let e = tok.encode(&[text], 0).unwrap_err();
    assert!(
        matches!(e, iterinv_models::Error::Input { .. }) && e.to_string().contains("max_length"),
        "{e}"
    );
}

/// A tokenizer fixture's tokens.json (make_t5_fixtures.py, make_clip_tokenizer_fixtures.py):
/// its prompts, `max_length` and `vocab_size`.
pub fn tokens_json(path: &Path) -> (Vec<serde_json::Value>, usize, usize) {
    let v = read_json(path);
    let count = |key: &str| v[key].as_u64().expect(key) as usize;
    let prompts = v["prompts"].as_array().expect("prompts").clone();
    (prompts, count("max_length"), count("vocab_size"))
}
