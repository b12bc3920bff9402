//! What the UNet says when the checkpoint, the config or the inputs are wrong: an error that
//! names the problem, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, gpu, write, Raw};
use iterinv_models::engine::Tensor;
use iterinv_models::{Error, UNet, UNetInputs};
use safetensors::SafeTensors;

const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

/// A copy of the stage-1 fixture in a temporary folder, to be broken by the test.
fn copy_stage1() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unet");
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixture("if_unet").join("stage1");
    for f in ["config.json", WEIGHTS] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> Error {
    match UNet::load(gpu(), dir, None) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn a_pipeline_folder_is_found_through_its_unet_subfolder() {
    let (tmp, _) = copy_stage1();
    let unet = UNet::load(gpu(), tmp.path(), None).unwrap();
    assert_eq!(unet.config().in_channels, 3);
}

#[test]
fn a_truncated_checkpoint_is_reported_as_corrupt() {
    let (_tmp, dir) = copy_stage1();
    let path = dir.join(WEIGHTS);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 1000).unwrap();
    let e = load_err(&dir);
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(WEIGHTS), "{e}");
}

#[test]
fn a_missing_weight_is_named_with_the_file() {
    let (_tmp, dir) = copy_stage1();
    let path = dir.join(WEIGHTS);
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let dropped = "down_blocks.1.attentions.0.add_k_proj.weight";
    let kept: Vec<Raw> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| k != dropped)
        .map(|(k, v)| Raw {
            key: k,
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            bytes: v.data().to_vec(),
        })
        .collect();
    write(&path, &kept.iter().collect::<Vec<_>>());
    let e = load_err(&dir);
    let Error::MissingKey { key, near, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(key, dropped);
    assert!(near.iter().any(|k| k.contains("add_v_proj")), "{e}");
    assert!(e.to_string().contains(WEIGHTS), "{e}");
}

#[test]
fn a_config_that_does_not_match_the_weights_gives_the_shapes() {
    let (_tmp, dir) = copy_stage1();
    edit_config(&dir, |c| {
        c["block_out_channels"] = serde_json::json!([16, 32])
    });
    let e = load_err(&dir);
    let Error::Shape {
        key,
        expected,
        found,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert!(key.starts_with("down_blocks.1."), "{e}");
    assert!(expected.contains(&32) && found.contains(&24), "{e}");
}

#[test]
fn an_unsupported_block_type_names_the_field() {
    let (_tmp, dir) = copy_stage1();
    edit_config(&dir, |c| {
        c["down_block_types"][1] = "AttnDownBlock2D".into()
    });
    let msg = load_err(&dir).to_string();
    assert!(
        msg.contains("down_block_types[1]") && msg.contains("AttnDownBlock2D"),
        "{msg}"
    );
}

/// SD's block kinds are supported too; over IF's weights, the first transformer weight is
/// missing and the error names it.
#[test]
fn an_sd_block_over_if_weights_names_the_missing_key() {
    let (_tmp, dir) = copy_stage1();
    edit_config(&dir, |c| {
        c["down_block_types"][1] = "CrossAttnDownBlock2D".into()
    });
    let e = load_err(&dir);
    let Error::MissingKey { key, .. } = &e else {
        panic!("{e}")
    };
    assert!(key.starts_with("down_blocks.1.attentions.0."), "{e}");
}

/// Each bad input to a good UNet is an `Error::Input` naming the input.
#[test]
fn wrong_inputs_are_refused_before_any_work() {
    let gpu = gpu();
    let unet = UNet::load(gpu, &fixture("if_unet").join("stage1"), None).unwrap();
    let zeros = |shape: &[usize]| Tensor::zeros(gpu, shape).unwrap();
    let (sample, text) = (zeros(&[2, 3, 8, 8]), zeros(&[2, 5, 48]));
    let good = UNetInputs {
        sample: &sample,
        timesteps: &[10.0],
        encoder_hidden_states: &text,
        class_labels: None,
    };
    unet.forward(&good).unwrap();

    let four_channels = zeros(&[2, 4, 8, 8]);
    let odd_size = zeros(&[2, 3, 8, 7]);
    let wide_text = zeros(&[2, 5, 64]);
    let other_batch = zeros(&[3, 5, 48]);
    let cases: [(UNetInputs, &str, &str); 6] = [
        (
            UNetInputs {
                sample: &four_channels,
                ..good
            },
            "sample",
            "4 channels",
        ),
        (
            UNetInputs {
                sample: &odd_size,
                ..good
            },
            "sample",
            "multiples of 2",
        ),
        (
            UNetInputs {
                encoder_hidden_states: &wide_text,
                ..good
            },
            "encoder_hidden_states",
            "[2, L, 48]",
        ),
        (
            UNetInputs {
                encoder_hidden_states: &other_batch,
                ..good
            },
            "encoder_hidden_states",
            "[2, L, 48]",
        ),
        (
            UNetInputs {
                timesteps: &[1.0, 2.0, 3.0],
                ..good
            },
            "timestep",
            "3 values",
        ),
        (
            UNetInputs {
                class_labels: Some(&[250.0]),
                ..good
            },
            "class_labels",
            "no class embedding",
        ),
    ];
    for (inputs, what, detail) in cases {
        let e = unet.forward(&inputs).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Input { what: w, .. } if w == what),
            "{msg}"
        );
        assert!(msg.contains(detail), "{msg}");
    }
}

#[test]
fn stage2_without_its_noise_level_is_refused() {
    let gpu = gpu();
    let unet = UNet::load(gpu, &fixture("if_unet").join("stage2"), None).unwrap();
    let sample = Tensor::zeros(gpu, &[1, 6, 16, 16]).unwrap();
    let text = Tensor::zeros(gpu, &[1, 3, 48]).unwrap();
    let e = unet
        .forward(&UNetInputs {
            sample: &sample,
            timesteps: &[5.0],
            encoder_hidden_states: &text,
            class_labels: None,
        })
        .unwrap_err();
    assert!(e.to_string().contains("noise level"), "{e}");
}

/// The x4 upscaler's noise level indexes a table: it must be an integer row of it.
#[test]
fn a_class_label_outside_the_table_is_refused() {
    let gpu = gpu();
    let unet = UNet::load(gpu, &fixture("sd_unet").join("upscaler"), None).unwrap();
    let sample = Tensor::zeros(gpu, &[2, 7, 8, 8]).unwrap();
    let text = Tensor::zeros(gpu, &[2, 3, 20]).unwrap();
    let run = |labels: Option<&[f32]>| {
        unet.forward(&UNetInputs {
            sample: &sample,
            timesteps: &[5.0],
            encoder_hidden_states: &text,
            class_labels: labels,
        })
    };
    run(Some(&[0.0, 49.0])).unwrap();
    for labels in [[0.0, 50.0], [2.5, 3.0], [-1.0, 3.0]] {
        let msg = run(Some(&labels)).unwrap_err().to_string();
        assert!(msg.contains("integers in 0..50"), "{msg}");
    }
    let msg = run(None).unwrap_err().to_string();
    assert!(msg.contains("noise level"), "{msg}");
}
