//! The loader on the diffusers-written fixtures of tools/reference (real key names and layouts).

use std::path::PathBuf;

use iterinv_models::weights::{Checkpoint, DIFFUSERS_STEM};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/if_unet"
    ))
    .join(name)
}

#[test]
fn sharded_and_single_file_checkpoints_hold_the_same_weights() {
    let single = Checkpoint::open(&fixture("stage1"), None, None, DIFFUSERS_STEM).unwrap();
    let sharded = Checkpoint::open(&fixture("stage1_sharded"), None, None, DIFFUSERS_STEM).unwrap();
    assert_eq!(single.len(), sharded.len());
    assert!(
        sharded.files().len() >= 2,
        "the fixture should have several shards"
    );
    for key in single.keys() {
        let shape = single.shape(key).unwrap().to_vec();
        assert_eq!(
            single.bytes(key, &shape).unwrap(),
            sharded.bytes(key, &shape).unwrap(),
            "{key}"
        );
    }
    assert!(single.unused_keys().is_empty());
}

#[test]
fn the_fp16_variant_is_chosen_by_name() {
    let full = Checkpoint::open(&fixture("stage2"), None, None, DIFFUSERS_STEM).unwrap();
    let half = Checkpoint::open(&fixture("stage2"), None, Some("fp16"), DIFFUSERS_STEM).unwrap();
    assert_eq!(full.len(), half.len());
    let shape = full.shape("conv_in.weight").unwrap().to_vec();
    let (f32_bytes, f32_type) = full.bytes("conv_in.weight", &shape).unwrap();
    let (f16_bytes, f16_type) = half.bytes("conv_in.weight", &shape).unwrap();
    assert_eq!(
        (f32_type, f16_type),
        (
            iterinv_models::engine::DType::F32,
            iterinv_models::engine::DType::F16
        )
    );
    assert_eq!(f32_bytes.len(), 2 * f16_bytes.len());
    let err = Checkpoint::open(&fixture("stage2"), None, Some("bf16"), DIFFUSERS_STEM)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bf16"), "{err}");
}
