//! The CLIP text encoder against transformers' `CLIPTextModel`: `last_hidden_state` and
//! `pooler_output` of the two tiny random encoders of tools/reference/make_clip_text_fixtures.py,
//! float64 goldens (eager attention):
//! - gelu_legacy: exact GELU, 77 positions, a legacy `eos_token_id` 2 (pooled = largest id),
//!   keys under `text_model.` with the `position_ids` buffer, in a pipeline folder;
//! - quick_gelu: quick_gelu, 20 of 24 positions, attention mask with padding, pooled = first EOS
//!   (a row without EOS pools position 0), an fp16 variant.
//!
//! Tolerance 1e-4 of the largest magnitude: f32 with f32 accumulation over 2–3 layers of width
//! ≤ 72 (observed errors are printed); a wrong mask, scale or activation moves outputs by 1e-2.
//! The fp16 weights are compared with the same float64 golden at 5e-3: rounding the weights to
//! 11 bits moves these outputs by 1.8e-3 of their scale (lavapipe).

mod common;

use common::golden::{assert_close, load_io};
use common::{fixture, poisoned_gpu};
use iterinv_models::config::ClipTextConfig;
use iterinv_models::{ClipTextEncoder, Error};

fn check(model: &str, variant: Option<&str>, io: &str, tolerance: f64) {
    let gpu = poisoned_gpu();
    let dir = fixture("clip_text");
    let encoder = ClipTextEncoder::load(gpu, &dir.join(model), variant).unwrap();
    let io = load_io(&dir.join(io));
    let ids = io["input_ids"].rows();
    let mask = io.get("attention_mask").map(|m| m.rows());
    let out = encoder.encode(&ids, mask.as_deref()).unwrap();
    assert_close(
        "last_hidden_state",
        &out.last_hidden_state,
        &io["last_hidden_state"],
        tolerance,
    );
    assert_close(
        "pooler_output",
        &out.pooler_output,
        &io["pooler_output"],
        tolerance,
    );
    assert!(out.last_hidden_state.guards_intact().unwrap());
}

#[test]
fn gelu_encoder_with_legacy_keys_matches_transformers() {
    // A pipeline folder: the encoder is found in text_encoder/.
    check("gelu_legacy", None, "gelu_legacy_io.safetensors", 1e-4);
}

#[test]
fn quick_gelu_encoder_with_padding_mask_matches_transformers() {
    check("quick_gelu", None, "quick_gelu_io.safetensors", 1e-4);
}

#[test]
fn fp16_weights_stay_close() {
    check(
        "quick_gelu",
        Some("fp16"),
        "quick_gelu_io.safetensors",
        5e-3,
    );
}

/// The causal mask is what makes position i independent of later tokens: changing the last
/// token changes no earlier output.
#[test]
fn earlier_positions_do_not_see_later_tokens() {
    let gpu = poisoned_gpu();
    let dir = fixture("clip_text").join("quick_gelu");
    let encoder = ClipTextEncoder::load(gpu, &dir, None).unwrap();
    let a = vec![vec![698, 5, 17, 300, 699, 1, 1, 2]];
    let mut b = a.clone();
    b[0][7] = 650;
    let ha = encoder.encode(&a, None).unwrap().last_hidden_state;
    let hb = encoder.encode(&b, None).unwrap().last_hidden_state;
    let (ha, hb) = (ha.to_vec().unwrap(), hb.to_vec().unwrap());
    let width = encoder.config().hidden_size;
    assert_eq!(ha[..7 * width], hb[..7 * width]);
    assert_ne!(ha[7 * width..], hb[7 * width..]);
}

#[test]
fn bad_inputs_are_errors() {
    let gpu = poisoned_gpu();
    let dir = fixture("clip_text").join("quick_gelu");
    let encoder = ClipTextEncoder::load(gpu, &dir, None).unwrap();
    let input = |e: Error| match e {
        Error::Input { what, detail } => format!("{what} {detail}"),
        e => panic!("expected an input error, got {e}"),
    };
    let long = vec![vec![1u32; 25]];
    let e = input(encoder.encode(&long, None).err().unwrap());
    assert!(e.contains("25 tokens") && e.contains("24 positions"), "{e}");
    let e = input(encoder.encode(&[vec![1, 700]], None).err().unwrap());
    assert!(e.contains("700"), "{e}");
    let e = input(encoder.encode(&[vec![1, 2], vec![1]], None).err().unwrap());
    assert!(e.contains("row 1"), "{e}");
    let e = input(encoder.encode(&[], None).err().unwrap());
    assert!(e.contains("non-empty"), "{e}");
    let e = input(
        encoder
            .encode(&[vec![1, 2]], Some(&[vec![1, 1], vec![1, 1]]))
            .err()
            .unwrap(),
    );
    assert!(e.contains("attention_mask"), "{e}");
}

#[test]
fn other_networks_and_unsupported_configs_are_refused() {
    let gpu = poisoned_gpu();
    // A T5 encoder's folder given as a CLIP text encoder.
    let e = ClipTextEncoder::load(gpu, &fixture("t5").join("text_encoder"), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("clip_text_model"), "{e}");

    let parse = |json: &str| -> Result<(), Error> {
        let c: ClipTextConfig = serde_json::from_str(json).unwrap();
        c.validate()
    };
    parse(r#"{"hidden_size": 64, "num_attention_heads": 4}"#).unwrap();
    let e = parse(r#"{"hidden_act": "relu"}"#).unwrap_err();
    assert!(e.to_string().contains("quick_gelu"), "{e}");
    let e = parse(r#"{"hidden_size": 64, "num_attention_heads": 5}"#).unwrap_err();
    assert!(e.to_string().contains("must divide"), "{e}");
    let e = parse(r#"{"hidden_size": 1024, "num_attention_heads": 2}"#).unwrap_err();
    assert!(e.to_string().contains("512 dimensions"), "{e}");
    let e = parse(r#"{"max_position_embeddings": 0}"#).unwrap_err();
    assert!(e.to_string().contains("max_position_embeddings"), "{e}");
}
