//! The VAE (diffusers `AutoencoderKL`) against diffusers: the latent distribution (mean, std) of
//! an image and the decoding of a latent, on the tiny random VAE of
//! tools/reference/make_vae_fixtures.py (3 blocks of widths 8/16/24, one resnet per encoder
//! block and two per decoder block, 4 groups, a 24×16 image), goldens in float64.
//!
//! Tolerance: 1e-3 of the golden's largest magnitude, as for the UNets: the engine computes in f32
//! with f32 accumulation through ~30 layers (observed errors are printed, ~1e-6 relative on
//! lavapipe), while any wrong layer (the downsampler's padding on the wrong side, a missing
//! residual, groups off by one) moves the outputs by 1e-2 or more.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::golden::{assert_close, load_io, max_diff, upload, Array};
use common::{fixture, poisoned_gpu};
use iterinv_models::engine::Tensor;
use iterinv_models::weights::DIFFUSERS_STEM;
use iterinv_models::{Checkpoint, Error, Vae};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const TOLERANCE: f64 = 1e-3;

fn io() -> HashMap<String, Array> {
    load_io(&fixture("vae").join("vae_io.safetensors"))
}

fn vae_dir() -> PathBuf {
    fixture("vae").join("vae")
}

/// Encodes the golden image and decodes the golden latent; checks both against the goldens with
/// the name suffix `suffix`, and returns (mean, std, decoded).
fn check(vae: &Vae, suffix: &str) -> [Vec<f32>; 3] {
    let gpu = poisoned_gpu();
    let io = io();
    let dist = vae.encode(&upload(gpu, &io["image"])).unwrap();
    let decoded = vae.decode(&upload(gpu, &io["latent"])).unwrap();
    for t in [&dist.mean, &dist.std, &decoded] {
        assert!(t.guards_intact().unwrap(), "an op wrote past its output");
    }
    [
        assert_close("mean", &dist.mean, &io[&format!("mean{suffix}")], TOLERANCE),
        assert_close("std", &dist.std, &io[&format!("std{suffix}")], TOLERANCE),
        assert_close(
            "decoded",
            &decoded,
            &io[&format!("decoded{suffix}")],
            TOLERANCE,
        ),
    ]
}

#[test]
fn encode_and_decode_match_diffusers() {
    let vae = Vae::load(poisoned_gpu(), &vae_dir(), None).unwrap();
    assert_eq!(vae.downscale(), 4);
    check(&vae, "");
}

/// A checkpoint with the pre-0.14 attention names (`query`, `key`, `value`, `proj_attn`) is the
/// same model: the same outputs, bit for bit.
#[test]
fn old_attention_key_names_load_the_same_model() {
    let gpu = poisoned_gpu();
    let old_dir = fixture("vae").join("vae_old_keys");
    let checkpoint = Checkpoint::open(&old_dir, None, None, DIFFUSERS_STEM).unwrap();
    assert!(checkpoint.contains("decoder.mid_block.attentions.0.proj_attn.weight"));
    assert!(!checkpoint.contains("decoder.mid_block.attentions.0.to_out.0.weight"));
    let old = check(&Vae::load(gpu, &old_dir, None).unwrap(), "");
    let new = check(&Vae::load(gpu, &vae_dir(), None).unwrap(), "");
    assert_eq!(old, new);
}

/// A pipeline folder (no config.json of its own) is read through its `vae/` subfolder.
#[test]
fn a_pipeline_folder_is_found_through_vae() {
    let vae = Vae::load(poisoned_gpu(), &fixture("vae"), None).unwrap();
    assert_eq!(vae.config().block_out_channels, [8, 16, 24]);
}

/// Writes `dir` as a copy of the fixture whose weights are all rounded to fp16 and stored as the
/// `fp16` variant (as diffusers' `variant="fp16"` files are).
fn write_fp16_variant(dir: &Path) {
    std::fs::copy(vae_dir().join("config.json"), dir.join("config.json")).unwrap();
    let checkpoint = Checkpoint::open(&vae_dir(), None, None, DIFFUSERS_STEM).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = checkpoint
        .keys()
        .map(|k| {
            let shape = checkpoint.shape(k).unwrap().to_vec();
            let (bytes, _) = checkpoint.bytes(k, &shape).unwrap();
            let half: Vec<u8> = bytes
                .chunks_exact(4)
                .flat_map(|c| {
                    let x = f32::from_le_bytes(c.try_into().unwrap());
                    half::f16::from_f32(x).to_le_bytes()
                })
                .collect();
            (k.to_string(), shape, half)
        })
        .collect();
    let views = tensors.iter().map(|(k, shape, bytes)| {
        (
            k.clone(),
            TensorView::new(Dtype::F16, shape.clone(), bytes).unwrap(),
        )
    });
    let path = dir.join(format!("{DIFFUSERS_STEM}.fp16.safetensors"));
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

/// fp16 weights (kept as f16 on the GPU) against diffusers run with the same rounded weights;
/// the outputs are much closer to that golden than to the f32-weight one, so the f16 weights
/// were really used.
#[test]
fn fp16_weights_match_diffusers_with_fp16_weights() {
    let tmp = tempfile::tempdir().unwrap();
    write_fp16_variant(tmp.path());
    let vae = Vae::load(poisoned_gpu(), tmp.path(), Some("fp16")).unwrap();
    let [_, _, decoded] = check(&vae, "_fp16w");
    let io = io();
    let to_fp16w = max_diff(&decoded, &io["decoded_fp16w"].data);
    let to_f32w = max_diff(&decoded, &io["decoded"].data);
    assert!(to_fp16w * 4.0 < to_f32w, "{to_fp16w:.3e} vs {to_f32w:.3e}");
}

fn input_error(result: Result<impl Sized, Error>) -> String {
    match result {
        Err(e @ Error::Input { .. }) => e.to_string(),
        Err(e) => panic!("expected an input error, got {e}"),
        Ok(_) => panic!("expected an input error, got a result"),
    }
}

/// An image whose sides are not multiples of 2^(blocks − 1) cannot be encoded: the error says
/// which multiple and what to crop to.
#[test]
fn an_image_size_the_vae_cannot_take_is_refused() {
    let gpu = poisoned_gpu();
    let vae = Vae::load(gpu, &vae_dir(), None).unwrap();
    let image = Tensor::zeros(gpu, &[1, 3, 24, 18]).unwrap();
    let e = input_error(vae.encode(&image).map(|d| d.mean));
    for part in ["image", "24×18", "multiples of 4", "24×16"] {
        assert!(e.contains(part), "{e} lacks {part}");
    }
}

#[test]
fn wrong_channel_counts_are_refused() {
    let gpu = poisoned_gpu();
    let vae = Vae::load(gpu, &vae_dir(), None).unwrap();
    let rgba = Tensor::zeros(gpu, &[1, 4, 24, 16]).unwrap();
    let e = input_error(vae.encode(&rgba).map(|d| d.mean));
    assert!(e.contains("4 channels") && e.contains("takes 3"), "{e}");
    let latent = Tensor::zeros(gpu, &[1, 3, 6, 4]).unwrap();
    let e = input_error(vae.decode(&latent));
    assert!(e.contains("latent") && e.contains("takes 4"), "{e}");
    let flat = Tensor::zeros(gpu, &[4, 6, 4]).unwrap();
    let e = input_error(vae.decode(&flat));
    assert!(e.contains("[B, 4, H, W]"), "{e}");
}

/// A folder holding another diffusers model (here the IF UNet) is refused by its config's
/// `_class_name`, before any weight is read.
#[test]
fn a_folder_holding_another_model_class_is_refused() {
    let dir = fixture("if_unet").join("stage1");
    let Err(e) = Vae::load(poisoned_gpu(), &dir, None) else {
        panic!("the IF UNet folder loaded as a VAE")
    };
    let e = e.to_string();
    for part in [
        "_class_name",
        "UNet2DConditionModel",
        "AutoencoderKL",
        "config.json",
    ] {
        assert!(e.contains(part), "{e} lacks {part}");
    }
}

/// The config's validation names the field and value of what the VAE cannot run.
#[test]
fn unsupported_configs_name_the_field() {
    use iterinv_models::config::VaeConfig;

    let text = std::fs::read_to_string(vae_dir().join("config.json")).unwrap();
    let base: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases: [(&str, serde_json::Value, &[&str]); 6] = [
        (
            "up_block_types",
            serde_json::json!(["UpDecoderBlock2D", "UpDecoderBlock2D"]),
            &[
                "up_block_types",
                "one entry per block_out_channels entry (3)",
            ],
        ),
        (
            "down_block_types",
            serde_json::json!(["DownEncoderBlock2D", "DownBlock2D", "DownEncoderBlock2D"]),
            &[
                "down_block_types[1]",
                "\"DownBlock2D\"",
                "DownEncoderBlock2D",
            ],
        ),
        (
            "norm_num_groups",
            serde_json::json!(3),
            &["block_out_channels[0]", "8", "norm_num_groups (3)"],
        ),
        (
            "layers_per_block",
            serde_json::json!(0),
            &["layers_per_block", "positive"],
        ),
        (
            "act_fn",
            serde_json::json!("mish"),
            &["act_fn", "mish", "silu"],
        ),
        (
            "shift_factor",
            serde_json::json!(0.1159),
            &["shift_factor", "null"],
        ),
    ];
    for (field, value, parts) in cases {
        let mut v = base.clone();
        v[field] = value;
        let e = VaeConfig::from_value(v, Path::new("config.json"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        for part in parts {
            assert!(e.contains(part), "{e} lacks {part}");
        }
    }
    // The real config's defaults fill what the fixture's omits.
    let c = VaeConfig::from_value(serde_json::json!({}), Path::new("config.json")).unwrap();
    c.validate().unwrap();
    assert_eq!(
        (c.scaling_factor, c.layers_per_block, c.latent_channels),
        (0.18215, 1, 4)
    );
}

/// `mid_block_add_attention: false` and `use_quant_conv` / `use_post_quant_conv: false` leave out
/// exactly those layers: on the fixture's keys, the model asks for all the others.
#[test]
fn optional_layers_follow_the_config() {
    use iterinv_models::config::VaeConfig;
    use iterinv_models::weights::{ShapeCheck, Weights};

    let checkpoint = Checkpoint::open(&vae_dir(), None, None, DIFFUSERS_STEM).unwrap();
    let text = std::fs::read_to_string(vae_dir().join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "mid_block_add_attention",
        "use_quant_conv",
        "use_post_quant_conv",
    ] {
        v[field] = false.into();
    }
    let config = VaeConfig::from_value(v, Path::new("config.json")).unwrap();
    let source = ShapeCheck {
        index: checkpoint.index(),
        placeholder: Tensor::zeros(poisoned_gpu(), &[1]).unwrap(),
    };
    Vae::from_weights(config, &Weights::new(&source)).unwrap();
    let unused = checkpoint.unused_keys();
    assert_eq!(unused.len(), 2 * 10 + 4, "{unused:?}");
    assert!(
        unused
            .iter()
            .all(|k| k.contains(".attentions.0.") || k.contains("quant_conv.")),
        "{unused:?}"
    );
}
