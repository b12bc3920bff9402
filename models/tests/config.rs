//! UNet `config.json` parsing and validation: the real IF-I-XL and IF-II-L configs (and the SD x4
//! upscaler's) from the spec, diffusers' defaults and null handling, and one error per kind of
//! unsupported or inconsistent value.

mod common;

use std::path::Path;

use common::spec;
use iterinv_models::config::{
    ClassEmbedding, DownBlockType, MidBlockType, OneOrMany, UNetConfig, UpBlockType,
};
use iterinv_models::engine::Activation;
use iterinv_models::Error;
use serde_json::{json, Value};

fn spec_config(name: &str) -> Value {
    spec(name)["config"].clone()
}

fn parse(v: Value) -> UNetConfig {
    UNetConfig::from_value(v, Path::new("config.json")).unwrap()
}

/// The IF-I-XL config with `edit` applied to its JSON.
fn if_xl_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> UNetConfig {
    let mut v = spec_config("IF-I-XL-v1.0.unet.json");
    edit(v.as_object_mut().unwrap());
    parse(v)
}

fn validate_err(c: &UNetConfig) -> String {
    match c.validate() {
        Ok(()) => panic!("expected validate() to fail for {c:?}"),
        Err(e) => {
            assert!(matches!(e, Error::Config { .. }), "{e}");
            e.to_string()
        }
    }
}

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}: {msg}");
    }
}

#[test]
fn if_i_xl() {
    let c = parse(spec_config("IF-I-XL-v1.0.unet.json"));
    c.validate().unwrap();
    assert_eq!((c.in_channels, c.out_channels), (3, 6));
    assert_eq!(c.block_out_channels, [704, 1408, 2112, 2816]);
    assert_eq!(c.layers_per_block, OneOrMany::One(3));
    assert_eq!(c.layers_per_block().unwrap(), [3, 3, 3, 3]);
    assert_eq!(c.attention_head_dims().unwrap(), [64; 4]);
    assert_eq!(
        c.down_blocks().unwrap(),
        [
            DownBlockType::ResnetDownsample,
            DownBlockType::SimpleCrossAttn,
            DownBlockType::SimpleCrossAttn,
            DownBlockType::SimpleCrossAttn
        ]
    );
    assert_eq!(
        c.up_blocks().unwrap(),
        [
            UpBlockType::SimpleCrossAttn,
            UpBlockType::SimpleCrossAttn,
            UpBlockType::SimpleCrossAttn,
            UpBlockType::ResnetUpsample
        ]
    );
    assert_eq!(c.mid_block().unwrap(), MidBlockType::SimpleCrossAttn);
    assert_eq!(c.cross_attention_dims().unwrap(), [2816; 4]);
    assert_eq!(c.cross_attention_norm.as_deref(), Some("group_norm"));
    assert_eq!(c.encoder_hid_dim, Some(4096));
    assert_eq!(c.encoder_hid_dim_type(), Some("text_proj"));
    assert!(c.has_text_embedding());
    assert_eq!(c.addition_embed_type_num_heads, 64);
    assert_eq!(c.text_dim(), Some(4096));
    assert_eq!(c.class_embedding(), ClassEmbedding::None);
    assert_eq!(c.time_embed_dim(), 4 * 704);
    assert_eq!(c.time_embedding_act().unwrap(), None);
    assert_eq!(c.act().unwrap(), Activation::Gelu);
    assert!(c.scale_shift());
    assert!(!c.resnet_skip_time_act);
    assert_eq!(
        (c.resnet_out_scale_factor, c.mid_block_scale_factor),
        (1.0, 1.0)
    );
    assert_eq!((c.norm_num_groups, c.norm_eps), (Some(32), 1e-5));
    assert!(c.flip_sin_to_cos && c.freq_shift == 0.0);
    assert!(!c.upcast_attention);
    assert_eq!(c.only_cross_attention().unwrap(), [false; 4]);
}

#[test]
fn if_ii_l() {
    let c = parse(spec_config("IF-II-L-v1.0.unet.json"));
    c.validate().unwrap();
    assert_eq!((c.in_channels, c.out_channels), (6, 6));
    assert_eq!(c.layers_per_block, OneOrMany::Many(vec![2, 2, 3, 5, 5]));
    assert_eq!(c.layers_per_block().unwrap(), [2, 2, 3, 5, 5]);
    assert_eq!(c.block_out_channels, [160, 320, 640, 960, 1280]);
    assert_eq!(c.class_embedding(), ClassEmbedding::Timestep);
    assert_eq!(c.time_embed_dim(), 1280);
    assert_eq!(c.time_embedding_act().unwrap(), Some(Activation::Gelu));
    assert!(c.resnet_skip_time_act);
    assert_eq!(c.resnet_out_scale_factor, 1.4142271248762552);
    assert_eq!(c.mid_block_scale_factor, 1.4142271248762552);
    assert_eq!(c.cross_attention_dims().unwrap(), [1280; 5]);
    assert_eq!(c.down_blocks().unwrap()[2], DownBlockType::ResnetDownsample);
    assert_eq!(c.down_blocks().unwrap()[3], DownBlockType::SimpleCrossAttn);
}

#[test]
fn sd_x4_upscaler_config_also_validates() {
    let c = parse(spec_config("stable-diffusion-x4-upscaler.unet.json"));
    c.validate().unwrap();
    assert_eq!(c.class_embedding(), ClassEmbedding::Table(1000));
    assert_eq!(c.act().unwrap(), Activation::Silu);
    assert_eq!(c.only_cross_attention().unwrap(), [true, true, true, false]);
    // Absent: diffusers' defaults.
    assert_eq!(c.mid_block().unwrap(), MidBlockType::CrossAttn);
    assert_eq!(c.resnet_time_scale_shift, "default");
    assert_eq!(c.encoder_hid_dim_type(), None);
    assert_eq!(c.time_embed_dim(), 1024);
}

#[test]
fn extra_fields_ignored_and_explicit_nulls_accepted() {
    // What save_pretrained writes: private fields, every init argument, many as null.
    let c = if_xl_with(|m| {
        m.insert("_class_name".into(), json!("UNet2DConditionModel"));
        m.insert("_diffusers_version".into(), json!("0.16.0"));
        m.insert("_name_or_path".into(), json!("DeepFloyd/IF-I-XL-v1.0"));
        m.insert("some_future_field".into(), json!({"nested": [1, 2]}));
        for k in [
            "class_embed_type",
            "num_class_embeds",
            "time_embedding_dim",
            "time_embedding_act_fn",
            "timestep_post_act",
            "time_cond_proj_dim",
            "projection_class_embeddings_input_dim",
            "addition_time_embed_dim",
            "num_attention_heads",
            "mid_block_only_cross_attention",
            "reverse_transformer_layers_per_block",
            "sample_size",
        ] {
            m.insert(k.into(), Value::Null);
        }
        m.insert("center_input_sample".into(), json!(false));
        m.insert("conv_in_kernel".into(), json!(3));
        m.insert("conv_out_kernel".into(), json!(3));
        m.insert("downsample_padding".into(), json!(1));
        m.insert("dropout".into(), json!(0.0));
        m.insert("time_embedding_type".into(), json!("positional"));
        m.insert("attention_type".into(), json!("default"));
        m.insert("transformer_layers_per_block".into(), json!(1));
        m.insert("dual_cross_attention".into(), json!(false));
        m.insert("use_linear_projection".into(), json!(false));
        m.insert("class_embeddings_concat".into(), json!(false));
    });
    c.validate().unwrap();
    assert_eq!(c.time_embed_dim(), 2816);
}

#[test]
fn encoder_hid_dim_type_defaults_like_diffusers() {
    // Older IF configs have encoder_hid_dim but no encoder_hid_dim_type.
    let c = if_xl_with(|m| {
        m.remove("encoder_hid_dim_type");
    });
    c.validate().unwrap();
    assert_eq!(c.encoder_hid_dim_type, None);
    assert_eq!(c.encoder_hid_dim_type(), Some("text_proj"));
    let c = if_xl_with(|m| {
        m.remove("encoder_hid_dim_type");
        m.remove("encoder_hid_dim");
    });
    assert_eq!(c.encoder_hid_dim_type(), None);
    // The text width then is the cross-attention width (2816, divisible by 64 heads).
    c.validate().unwrap();
    assert_eq!(c.text_dim(), Some(2816));
    // A type without a dim is inconsistent.
    let c = if_xl_with(|m| {
        m.remove("encoder_hid_dim");
    });
    assert_names(
        &validate_err(&c),
        &["encoder_hid_dim", "encoder_hid_dim_type"],
    );
}

#[test]
fn unsupported_values_name_field_and_value() {
    type Edit = fn(&mut serde_json::Map<String, Value>);
    let cases: Vec<(Edit, &[&str])> = vec![
        (
            |m| {
                m["down_block_types"][1] = json!("KDownBlock2D");
            },
            &[
                "down_block_types[1]",
                "\"KDownBlock2D\"",
                "SimpleCrossAttnDownBlock2D",
            ],
        ),
        (
            |m| {
                m["up_block_types"][3] = json!("AttnUpBlock2D");
            },
            &["up_block_types[3]", "\"AttnUpBlock2D\""],
        ),
        (
            |m| {
                m.insert("mid_block_type".into(), json!("UNetMidBlock2D"));
            },
            &["mid_block_type", "\"UNetMidBlock2D\""],
        ),
        (
            |m| {
                m.insert("mid_block_type".into(), Value::Null);
            },
            &["mid_block_type", "null"],
        ),
        (
            |m| {
                m.insert("act_fn".into(), json!("mish"));
            },
            &["act_fn", "\"mish\"", "gelu", "silu"],
        ),
        (
            |m| {
                m.insert("time_embedding_act_fn".into(), json!("relu"));
            },
            &["time_embedding_act_fn", "\"relu\""],
        ),
        (
            |m| {
                m.insert("addition_embed_type".into(), json!("text_image"));
            },
            &["addition_embed_type", "\"text_image\"", "\"text\""],
        ),
        (
            |m| {
                m.insert("class_embed_type".into(), json!("projection"));
            },
            &["class_embed_type", "\"projection\""],
        ),
        (
            |m| {
                m.insert("cross_attention_norm".into(), json!("layer_norm"));
            },
            &["cross_attention_norm", "\"layer_norm\"", "group_norm"],
        ),
        (
            |m| {
                m.insert("encoder_hid_dim_type".into(), json!("image_proj"));
            },
            &["encoder_hid_dim_type", "\"image_proj\""],
        ),
        (
            |m| {
                m.insert("resnet_time_scale_shift".into(), json!("spatial"));
            },
            &["resnet_time_scale_shift", "\"spatial\""],
        ),
        (
            |m| {
                m.insert("time_embedding_type".into(), json!("fourier"));
            },
            &["time_embedding_type", "\"fourier\""],
        ),
        (
            |m| {
                m.insert("layers_per_block".into(), json!([3, 3, 3]));
            },
            &["layers_per_block", "[3,3,3]", "one entry per block (4"],
        ),
        (
            |m| {
                m.insert("attention_head_dim".into(), json!([64, 64, 64, 60]));
            },
            &["attention_head_dim[3]", "60", "2816"],
        ),
        (
            |m| {
                m.insert("block_out_channels".into(), json!([704, 1408, 2112]));
            },
            &["block_out_channels", "[704,1408,2112]"],
        ),
        (
            |m| {
                m.insert("norm_num_groups".into(), json!(33));
            },
            &["block_out_channels[0]", "704", "norm_num_groups (33)"],
        ),
        (
            |m| {
                m.insert("norm_num_groups".into(), Value::Null);
            },
            &["norm_num_groups", "null"],
        ),
        (
            |m| {
                m.insert("addition_embed_type_num_heads".into(), json!(60));
            },
            &["addition_embed_type_num_heads", "60", "4096"],
        ),
        (
            |m| {
                m.insert("num_attention_heads".into(), json!(16));
            },
            &["num_attention_heads", "16"],
        ),
        (
            |m| {
                m.insert("only_cross_attention".into(), json!(true));
            },
            &["only_cross_attention[1]", "SimpleCrossAttn"],
        ),
        (
            |m| {
                m.insert("time_cond_proj_dim".into(), json!(256));
            },
            &["time_cond_proj_dim", "256"],
        ),
        (
            |m| {
                m.insert("transformer_layers_per_block".into(), json!(2));
            },
            &["transformer_layers_per_block", "2"],
        ),
        (
            |m| {
                m.insert("conv_in_kernel".into(), json!(7));
            },
            &["conv_in_kernel", "7"],
        ),
        (
            |m| {
                m.insert("dual_cross_attention".into(), json!(true));
            },
            &["dual_cross_attention", "true"],
        ),
        (
            |m| {
                m.insert("norm_eps".into(), json!(0.0));
            },
            &["norm_eps", "0.0"],
        ),
        (
            |m| {
                m.insert("resnet_out_scale_factor".into(), json!(-1.0));
            },
            &["resnet_out_scale_factor", "-1.0"],
        ),
    ];
    for (edit, parts) in cases {
        let c = if_xl_with(edit);
        assert_names(&validate_err(&c), parts);
    }
}

#[test]
fn type_errors_name_the_field() {
    let mut v = spec_config("IF-I-XL-v1.0.unet.json");
    v["layers_per_block"] = json!("three");
    let e = UNetConfig::from_value(v, Path::new("/m/unet/config.json")).unwrap_err();
    assert!(matches!(e, Error::ConfigParse { .. }), "{e}");
    assert_names(
        &e.to_string(),
        &[
            "/m/unet/config.json",
            "layers_per_block",
            "\"three\"",
            "list",
        ],
    );

    let mut v = spec_config("IF-I-XL-v1.0.unet.json");
    v["norm_eps"] = json!("1e-5");
    let e = UNetConfig::from_value(v, Path::new("config.json")).unwrap_err();
    assert_names(&e.to_string(), &["norm_eps"]);

    let e = UNetConfig::from_json_str("{ \"in_channels\": 3, ", Path::new("c.json")).unwrap_err();
    assert_names(&e.to_string(), &["c.json", "EOF"]);
}

#[test]
fn load_from_a_pipeline_folder() {
    let root = tempfile::tempdir().unwrap();
    let unet = root.path().join("unet");
    std::fs::create_dir_all(&unet).unwrap();
    std::fs::write(
        unet.join("config.json"),
        serde_json::to_string(&spec_config("IF-II-L-v1.0.unet.json")).unwrap(),
    )
    .unwrap();
    let c = UNetConfig::load(root.path(), Some("unet")).unwrap();
    assert_eq!(c.layers_per_block().unwrap(), [2, 2, 3, 5, 5]);

    // Missing config: names the path and lists the folder.
    let e = UNetConfig::load(root.path(), None).unwrap_err();
    assert_names(&e.to_string(), &["config.json", "does not exist", "unet/"]);

    // An unsupported value: names the file and the field.
    let mut v = spec_config("IF-II-L-v1.0.unet.json");
    v["act_fn"] = json!("mish");
    std::fs::write(unet.join("config.json"), v.to_string()).unwrap();
    let e = UNetConfig::load(root.path(), Some("unet")).unwrap_err();
    assert_names(&e.to_string(), &["unet/config.json", "act_fn", "\"mish\""]);
}
