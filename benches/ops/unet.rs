//! UNet workloads of the bench: the tiny IF UNet of the test fixtures (forward, and forward plus
//! the VJPs with respect to sample and text), and with `ITERINV_BENCH_IF_M=1` an IF-I-M-shaped
//! UNet (block_out_channels 192/384/576/768, batch 2, 64 px) with random f16 weights.

use std::path::Path;

use iterinv::grad::grad;
use iterinv::models::config::UNetConfig;
use iterinv::models::weights::Weights;
use iterinv::models::{UNet, UNetInputs};
use iterinv::Gpu;

use crate::random_weights::RandomF16;
use crate::{randn, BenchResult, Workload};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Forward and forward+VJP workloads of `unet` on `sample [B,C,H,W]` and `text [B,77,D]`.
fn unet_workloads(
    gpu: &Gpu,
    unet: UNet,
    names: [&'static str; 2],
    sample_shape: [usize; 4],
    text_dim: usize,
) -> BenchResult<Vec<Workload>> {
    let b = sample_shape[0];
    let sample = randn(gpu, &sample_shape, 30)?;
    let text = randn(gpu, &[b, 77, text_dim], 31)?;
    let cot = randn(
        gpu,
        &[b, 2 * sample_shape[1], sample_shape[2], sample_shape[3]],
        32,
    )?;
    let unet = std::rc::Rc::new(unet);
    let (u1, s1, t1) = (unet.clone(), sample.clone(), text.clone());
    let forward = move || {
        Ok(u1.forward(&UNetInputs {
            sample: &s1,
            timesteps: &[981.0, 47.0][..b.min(2)],
            encoder_hidden_states: &t1,
            class_labels: None,
        })?)
    };
    let with_vjp = move || {
        let (s, t) = (sample.requires_grad(), text.requires_grad());
        let out = unet.forward(&UNetInputs {
            sample: &s,
            timesteps: &[981.0, 47.0][..b.min(2)],
            encoder_hidden_states: &t,
            class_labels: None,
        })?;
        Ok(grad(&[&out], &[&cot], &[&s, &t])?.remove(0))
    };
    Ok(vec![
        Workload {
            name: names[0],
            flops: 0.0,
            run: Box::new(forward),
        },
        Workload {
            name: names[1],
            flops: 0.0,
            run: Box::new(with_vjp),
        },
    ])
}

/// The stage-1 test fixture (16/24 channels, text width 48) at B2, 64 px, 77 tokens.
pub fn tiny_if_unet(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let dir = Path::new(FIXTURES).join("if_unet/stage1");
    let unet = UNet::load(gpu, &dir, None)?;
    let names = ["if_unet_tiny_fwd_b2_64", "if_unet_tiny_fwd_vjp_b2_64"];
    unet_workloads(gpu, unet, names, [2, 3, 64, 64], 48)
}

/// IF-I-XL's config with IF-I-M's widths, random f16 weights.
pub fn if_m_unet(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let path = Path::new(FIXTURES).join("checkpoints/IF-I-XL-v1.0.unet.json");
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut config = spec["config"].clone();
    config["block_out_channels"] = serde_json::json!([192, 384, 576, 768]);
    config["cross_attention_dim"] = serde_json::json!(768);
    let config = UNetConfig::from_value(config, &path)?;
    let source = RandomF16 { gpu };
    let unet = UNet::from_weights(gpu, config, &Weights::new(&source))?;
    let names = ["if_unet_m_fwd_b2_64", "if_unet_m_fwd_vjp_b2_64"];
    unet_workloads(gpu, unet, names, [2, 3, 64, 64], 4096)
}
