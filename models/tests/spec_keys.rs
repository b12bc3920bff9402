//! The real-size checkpoints' parameter lists (from `shared/spec/checkpoints/*.json`) in a
//! [`KeyIndex`], without any weights: the structure the UNet's "asks for exactly these keys" check
//! will run on. Also cross-checks the parsed configs against those keys.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{spec, spec_path};
use iterinv_models::config::UNetConfig;
use iterinv_models::weights::{FileDType, KeyIndex};
use iterinv_models::Error;

/// A spec's `keys` (key → shape) as a key index of F16 entries (the published files are fp16).
fn spec_index(name: &str) -> (KeyIndex, serde_json::Value) {
    let s = spec(name);
    let keys = s["keys"].as_object().expect("a `keys` object");
    let entries = keys.iter().map(|(k, shape)| {
        let shape: Vec<usize> = serde_json::from_value(shape.clone()).expect("a shape list");
        (k.clone(), shape, FileDType::F16)
    });
    (KeyIndex::from_entries(spec_path(name), entries), s)
}

#[test]
fn if_i_xl_parameter_list() {
    let (index, s) = spec_index("IF-I-XL-v1.0.unet.json");
    let keys = s["keys"].as_object().unwrap();
    assert_eq!(index.len(), keys.len());
    assert_eq!(index.len(), 775);
    assert_eq!(index.total_numel() as u64, s["params"].as_u64().unwrap());
    assert_eq!(index.total_numel(), 4_304_695_110);
    assert_eq!(index.shape("conv_in.weight"), Some(&[704, 3, 3, 3][..]));
    assert_eq!(
        index.shape("encoder_hid_proj.weight"),
        Some(&[2816, 4096][..])
    );

    // Asking for every key with its shape succeeds and leaves nothing unused.
    for (k, shape) in keys {
        let shape: Vec<usize> = serde_json::from_value(shape.clone()).unwrap();
        index.lookup(k, &shape).unwrap();
    }
    assert!(index.unused_keys().is_empty());
    assert_eq!(index.used_count(), 775);

    // A wrong shape and a missing key are reported as the loader would.
    let e = index.lookup("conv_in.weight", &[704, 6, 3, 3]).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = index
        .lookup("down_blocks.1.attentions.0.to_out.weight", &[1408, 1408])
        .unwrap_err();
    let Error::MissingKey { near, .. } = &e else {
        panic!("{e}")
    };
    assert!(near.contains(&"down_blocks.1.attentions.0.to_out.0.weight".to_string()));
    assert!(e.to_string().contains("IF-I-XL-v1.0.unet.json"), "{e}");
}

/// The parsed config and the key list agree on what the config's fields mean.
fn check_config_against_keys(name: &str) {
    let (index, s) = spec_index(name);
    let c = UNetConfig::from_value(s["config"].clone(), Path::new(name)).unwrap();
    c.validate().unwrap();
    let c0 = c.block_out_channels[0];
    let t = c.time_embed_dim();
    let shape = |k: &str| {
        index
            .shape(k)
            .unwrap_or_else(|| panic!("{name}: no {k}"))
            .to_vec()
    };
    assert_eq!(shape("conv_in.weight"), [c0, c.in_channels, 3, 3]);
    assert_eq!(shape("conv_out.weight"), [c.out_channels, c0, 3, 3]);
    assert_eq!(shape("time_embedding.linear_1.weight"), [t, c0]);
    let text = c.text_dim().unwrap();
    let cross = *c.cross_attention_dims().unwrap().last().unwrap();
    assert_eq!(shape("encoder_hid_proj.weight"), [cross, text]);
    assert_eq!(shape("add_embedding.pool.positional_embedding"), [1, text]);
    assert_eq!(
        index.contains("class_embedding.linear_1.weight"),
        c.class_embedding() != iterinv_models::config::ClassEmbedding::None
    );

    // layers_per_block (int or list): down block i has that many resnets, up block n-1-i one more.
    let layers = c.layers_per_block().unwrap();
    let n = c.num_blocks();
    let resnets = |prefix: &str| -> usize {
        index
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|r| r.split('.').next())
            .collect::<BTreeSet<_>>()
            .len()
    };
    for (i, &l) in layers.iter().enumerate() {
        assert_eq!(resnets(&format!("down_blocks.{i}.resnets.")), l, "{name}");
        assert_eq!(
            resnets(&format!("up_blocks.{}.resnets.", n - 1 - i)),
            l + 1,
            "{name}"
        );
        let attn = c.down_blocks().unwrap()[i].has_attention();
        assert_eq!(
            resnets(&format!("down_blocks.{i}.attentions.")),
            if attn { l } else { 0 },
            "{name}"
        );
    }
}

#[test]
fn configs_agree_with_key_lists() {
    check_config_against_keys("IF-I-XL-v1.0.unet.json");
    check_config_against_keys("IF-II-L-v1.0.unet.json");
}

/// The UNet built from a real checkpoint's config asks for exactly its published keys and
/// shapes: every request is checked against the list, nothing is left over. No weights are
/// allocated (each request gets the same 1-element placeholder).
fn unet_asks_for_exactly(name: &str) {
    use iterinv_models::engine::Tensor;
    use iterinv_models::weights::{ShapeCheck, Weights};
    use iterinv_models::UNet;

    let (index, s) = spec_index(name);
    let c = UNetConfig::from_value(s["config"].clone(), Path::new(name)).unwrap();
    let gpu = common::gpu();
    let source = ShapeCheck {
        index: &index,
        placeholder: Tensor::zeros(gpu, &[1]).unwrap(),
    };
    UNet::from_weights(gpu, c, &Weights::new(&source)).unwrap();
    assert_eq!(
        index.unused_keys(),
        Vec::<String>::new(),
        "{name}: keys never asked for"
    );
    assert_eq!(index.used_count(), index.len());
}

#[test]
fn if_i_xl_unet_asks_for_exactly_its_checkpoint_keys() {
    unet_asks_for_exactly("IF-I-XL-v1.0.unet.json");
}

#[test]
fn if_ii_l_unet_asks_for_exactly_its_checkpoint_keys() {
    unet_asks_for_exactly("IF-II-L-v1.0.unet.json");
}

/// SD's blocks: transformer layers with linear projections, only_cross_attention on three levels,
/// convolution resamplers, the 1000-row class-embedding table of noise levels.
#[test]
fn sd_x4_upscaler_unet_asks_for_exactly_its_checkpoint_keys() {
    let name = "stable-diffusion-x4-upscaler.unet.json";
    unet_asks_for_exactly(name);
    assert_eq!(spec_index(name).0.len(), 687);
}

/// T5-v1.1-XXL built from its real config asks for exactly its published keys: the embedding once
/// (`shared.weight`; its tied copy `encoder.embed_tokens.weight` is counted, not loaded).
#[test]
fn t5_xxl_encoder_asks_for_exactly_its_checkpoint_keys() {
    use iterinv_models::config::T5Config;
    use iterinv_models::engine::Tensor;
    use iterinv_models::weights::{ShapeCheck, Weights};
    use iterinv_models::T5Encoder;

    let name = "t5-v1_1-xxl.encoder.json";
    let (index, s) = spec_index(name);
    let c: T5Config = serde_json::from_value(s["config"].clone()).unwrap();
    assert_eq!(c.inner_dim(), 4096);
    let gpu = common::gpu();
    let source = ShapeCheck {
        index: &index,
        placeholder: Tensor::zeros(gpu, &[1]).unwrap(),
    };
    T5Encoder::from_weights(gpu, c, &Weights::new(&source)).unwrap();
    assert_eq!(
        index.unused_keys(),
        Vec::<String>::new(),
        "{name}: keys never asked for"
    );
    assert_eq!(index.len(), 220);
}

/// The SD x4 upscaler's CLIP text encoder (OpenCLIP ViT-H's text tower: 1024 wide, 23 layers, exact
/// GELU) built from its real config asks for exactly its published keys.
#[test]
fn sd_upscaler_clip_text_encoder_asks_for_exactly_its_checkpoint_keys() {
    use iterinv_models::config::ClipTextConfig;
    use iterinv_models::engine::{Activation, Tensor};
    use iterinv_models::weights::{ShapeCheck, Weights};
    use iterinv_models::ClipTextEncoder;

    let name = "stable-diffusion-x4-upscaler.text_encoder.json";
    let (index, s) = spec_index(name);
    let c: ClipTextConfig = serde_json::from_value(s["config"].clone()).unwrap();
    assert_eq!(
        (c.head_dim(), c.activation().unwrap()),
        (64, Activation::Gelu)
    );
    let gpu = common::gpu();
    let source = ShapeCheck {
        index: &index,
        placeholder: Tensor::zeros(gpu, &[1]).unwrap(),
    };
    ClipTextEncoder::from_weights(gpu, c, &Weights::new(&source)).unwrap();
    assert_eq!(
        index.unused_keys(),
        Vec::<String>::new(),
        "{name}: keys never asked for"
    );
    assert_eq!(index.len(), 372);
    assert_eq!(index.total_numel() as u64, s["params"].as_u64().unwrap());
}

/// The SD x4 upscaler's VAE built from its real config asks for exactly its published keys; and
/// for the same keys under the old attention names (`query`, `key`, `value`, `proj_attn`), which
/// the 2022 checkpoint may use.
#[test]
fn upscaler_vae_asks_for_exactly_its_checkpoint_keys() {
    use iterinv_models::config::VaeConfig;
    use iterinv_models::engine::Tensor;
    use iterinv_models::weights::{ShapeCheck, Weights};
    use iterinv_models::Vae;

    let name = "stable-diffusion-x4-upscaler.vae.json";
    let (index, s) = spec_index(name);
    assert_eq!(index.len(), 204);
    assert_eq!(index.total_numel() as u64, s["params"].as_u64().unwrap());
    let config = VaeConfig::from_value(s["config"].clone(), Path::new(name)).unwrap();
    assert_eq!(config.downsamplers(), 2);
    let gpu = common::gpu();
    let placeholder = Tensor::zeros(gpu, &[1]).unwrap();
    let source = ShapeCheck {
        index: &index,
        placeholder: placeholder.clone(),
    };
    Vae::from_weights(config.clone(), &Weights::new(&source)).unwrap();
    assert_eq!(
        index.unused_keys(),
        Vec::<String>::new(),
        "{name}: keys never asked for"
    );

    let old_names = [
        ("to_q", "query"),
        ("to_k", "key"),
        ("to_v", "value"),
        ("to_out.0", "proj_attn"),
    ];
    let entries = index.keys().map(|k| {
        let shape = index.shape(k).unwrap().to_vec();
        let renamed = old_names.iter().fold(k.to_string(), |k, (new, old)| {
            k.replace(
                &format!("attentions.0.{new}."),
                &format!("attentions.0.{old}."),
            )
        });
        (renamed, shape, FileDType::F16)
    });
    let old = KeyIndex::from_entries(spec_path(name), entries.collect::<Vec<_>>());
    assert!(old.contains("encoder.mid_block.attentions.0.proj_attn.weight"));
    let source = ShapeCheck {
        index: &old,
        placeholder,
    };
    Vae::from_weights(config, &Weights::new(&source)).unwrap();
    assert_eq!(
        old.unused_keys(),
        Vec::<String>::new(),
        "old names never asked for"
    );
    assert_eq!(old.used_count(), 204);
}
