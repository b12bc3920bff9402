//! Fuzzing config.json (models/src/config): the UNet configs of the fixtures and of the real
//! checkpoints' specs (IF-I-XL, IF-II-L, the SD x4 upscaler), T5's, CLIP text's and the VAE's, with
//! fields removed, mistyped, added or set to absurd sizes, or their bytes mutated. Each must load
//! and validate or fail with an error naming the file; a config that passes must stay within
//! `config::limits`, so that nothing sized by it can overflow or allocate absurdly later.

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::Path;

use fuzz_support::{assert_names_file, budget, fixture_bytes, fixtures, guarded, json, mutate};
use iterinv_models::config::limits::*;
use iterinv_models::config::{clip, ClipTextConfig, T5Config, UNetConfig, VaeConfig, CONFIG_FILE};
use proptest::prelude::*;
use serde_json::Value;

fn unet_seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> = [
        "if_unet/stage1/config.json",
        "if_unet/stage2/config.json",
        "trained_cascade/stage1/unet/config.json",
    ]
    .iter()
    .map(|p| serde_json::from_slice(&fixture_bytes(p)).unwrap())
    .collect();
    for spec in [
        "IF-I-XL-v1.0.unet.json",
        "IF-II-L-v1.0.unet.json",
        "stable-diffusion-x4-upscaler.unet.json",
    ] {
        let path = fixtures().join("checkpoints").join(spec);
        let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        seeds.push(v["config"].clone());
    }
    seeds
}

fn strategy(seeds: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    let picks: Vec<BoxedStrategy<Vec<u8>>> = seeds
        .into_iter()
        .flat_map(|v| {
            let bytes = serde_json::to_vec_pretty(&v).unwrap();
            [json::edited(v).boxed(), mutate::mutated(bytes).boxed()]
        })
        .collect();
    proptest::strategy::Union::new(picks)
}

/// Write `bytes` as `dir/config.json` and load it with `load`.
fn load<T: Send + 'static>(
    dir: &Path,
    bytes: &[u8],
    loader: fn(&Path) -> iterinv_models::Result<T>,
) -> Result<T, String> {
    std::fs::write(dir.join(CONFIG_FILE), bytes).unwrap();
    let d = dir.to_path_buf();
    let result = guarded("config.json", budget(bytes.len(), 64), move || {
        loader(&d).map_err(|e| e.to_string())
    });
    if let Err(msg) = &result {
        assert_names_file(msg, &dir.join(CONFIG_FILE));
    }
    result
}

/// What an accepted UNet config promises the model builder.
fn assert_within_limits(c: &UNetConfig) {
    let n = c.num_blocks();
    assert!((1..=MAX_BLOCKS).contains(&n));
    for &ch in &c.block_out_channels {
        assert!((1..=MAX_WIDTH).contains(&ch), "{ch} channels accepted");
    }
    for l in c.layers_per_block().unwrap() {
        assert!((1..=MAX_LAYERS_PER_BLOCK).contains(&l));
    }
    if let Ok(s) = c.square_sample_size() {
        assert!((1..=MAX_SAMPLE_SIZE).contains(&s));
    }
    // The sizes the builder multiplies: no overflow.
    assert!(c.time_embed_dim() <= 4 * MAX_WIDTH);
    for d in c.cross_attention_dims().unwrap() {
        assert!(d <= MAX_WIDTH);
    }
}

proptest! {
    #![proptest_config(fuzz_support::config(2000))]

    #[test]
    fn mutated_unet_configs_validate_or_name_the_file(bytes in strategy(unet_seeds())) {
        let dir = tempfile::tempdir().unwrap();
        if let Ok(c) = load(dir.path(), &bytes, |d| UNetConfig::load(d, None)) {
            assert_within_limits(&c);
        }
    }

    #[test]
    fn mutated_t5_configs_validate_or_name_the_file(bytes in strategy(vec![
        serde_json::from_slice(&fixture_bytes("t5/text_encoder/config.json")).unwrap(),
        serde_json::from_value(
            serde_json::from_slice::<Value>(&fixture_bytes("checkpoints/t5-v1_1-xxl.encoder.json"))
                .unwrap()["config"].clone()
        ).unwrap(),
    ])) {
        let dir = tempfile::tempdir().unwrap();
        if let Ok(c) = load(dir.path(), &bytes, |d| T5Config::load(d, None)) {
            assert!(c.vocab_size <= MAX_VOCAB && c.d_model <= MAX_WIDTH && c.d_ff <= MAX_WIDTH);
            assert!(c.num_layers <= MAX_LAYERS && c.num_heads <= MAX_HEADS);
            // inner_dim multiplies two checked sizes: no overflow.
            assert!(c.inner_dim() <= MAX_HEADS * MAX_WIDTH);
        }
    }

    #[test]
    fn mutated_clip_text_configs_validate_or_name_the_file(bytes in strategy(vec![
        serde_json::from_slice(&fixture_bytes("clip_text/gelu_legacy/text_encoder/config.json"))
            .unwrap(),
        serde_json::from_slice(&fixture_bytes("clip_text/quick_gelu/config.json")).unwrap(),
        serde_json::from_slice::<Value>(
            &fixture_bytes("checkpoints/stable-diffusion-x4-upscaler.text_encoder.json"),
        ).unwrap()["config"].clone(),
    ])) {
        let dir = tempfile::tempdir().unwrap();
        if let Ok(c) = load(dir.path(), &bytes, |d| ClipTextConfig::load(d, None)) {
            assert!(c.vocab_size <= MAX_VOCAB && c.hidden_size <= MAX_WIDTH);
            assert!(c.intermediate_size <= MAX_WIDTH && c.num_hidden_layers <= MAX_LAYERS);
            // The causal mask the encoder builds per call: heads · L² floats.
            assert!(c.max_position_embeddings <= clip::MAX_POSITIONS);
            assert!(c.num_attention_heads <= c.hidden_size);
            assert!(c.head_dim() * c.num_attention_heads == c.hidden_size);
        }
    }

    #[test]
    fn mutated_vae_configs_validate_or_name_the_file(bytes in strategy(vec![
        serde_json::from_slice(&fixture_bytes("vae/vae/config.json")).unwrap(),
        serde_json::from_slice::<Value>(
            &fixture_bytes("checkpoints/stable-diffusion-x4-upscaler.vae.json")
        ).unwrap()["config"].clone(),
    ])) {
        let dir = tempfile::tempdir().unwrap();
        if let Ok(c) = load(dir.path(), &bytes, |d| VaeConfig::load(d, None)) {
            let n = c.block_out_channels.len();
            assert!((1..=MAX_BLOCKS).contains(&n));
            assert!(c.block_out_channels.iter().all(|&ch| (1..=MAX_WIDTH).contains(&ch)));
            assert!((1..=MAX_LAYERS_PER_BLOCK).contains(&c.layers_per_block));
            assert!(c.latent_channels <= MAX_WIDTH && c.in_channels <= MAX_WIDTH);
            // The image-side multiple is 2^(n − 1): no overflow.
            assert!(c.size_multiple() <= 1 << (MAX_BLOCKS - 1));
        }
    }
}

// Regression tests: sizes that would have been accepted and then allocated or overflowed.

fn unet_error(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value =
        serde_json::from_slice(&fixture_bytes("if_unet/stage1/config.json")).unwrap();
    edit(&mut v);
    let dir = tempfile::tempdir().unwrap();
    let bytes = serde_json::to_vec(&v).unwrap();
    load(dir.path(), &bytes, |d| UNetConfig::load(d, None))
        .map(|_| ())
        .expect_err("refused")
}

#[test]
fn a_huge_layers_per_block_is_refused_before_the_blocks_allocate_their_layers() {
    // UpBlock::load reserved `layers_per_block` entries before asking for any weight.
    let msg = unet_error(|v| v["layers_per_block"] = 1u64.wrapping_shl(40).into());
    assert!(msg.contains("layers_per_block"), "{msg}");
}

#[test]
fn a_huge_sample_size_is_refused_before_a_stage_allocates_its_images() {
    let msg = unet_error(|v| v["sample_size"] = (1u64 << 31).into());
    assert!(msg.contains("sample_size"), "{msg}");
}

#[test]
fn a_block_width_that_would_overflow_the_time_embedding_is_refused() {
    // time_embed_dim() is 4 × block_out_channels[0]: 2⁶² would overflow.
    let msg = unet_error(|v| v["block_out_channels"][0] = (1u64 << 62).into());
    assert!(msg.contains("block_out_channels"), "{msg}");
}

#[test]
fn a_t5_config_whose_inner_dim_overflows_is_refused() {
    let mut v: Value =
        serde_json::from_slice(&fixture_bytes("t5/text_encoder/config.json")).unwrap();
    v["num_heads"] = (1u64 << 62).into();
    let dir = tempfile::tempdir().unwrap();
    let bytes = serde_json::to_vec(&v).unwrap();
    let msg = load(dir.path(), &bytes, |d| T5Config::load(d, None))
        .map(|_| ())
        .expect_err("refused");
    assert!(msg.contains("num_heads"), "{msg}");
}
