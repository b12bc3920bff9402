//! UNet and VAE workloads of the bench: the tiny IF UNet and the tiny x4-upscaler-like UNet of the
//! test fixtures (forward, and forward plus the VJPs with respect to sample and text), the tiny
//! VAE's decode, with `ITERINV_BENCH_IF_M=1` an IF-I-M-shaped UNet (block_out_channels
//! 192/384/576/768, batch 2, 64 px) and with `ITERINV_BENCH_X4=1` the real SD x4 upscaler's UNet
//! and VAE (a 64×64 latent: the 256-px stage), all with random f16 weights.

use std::path::Path;

use iterinv::grad::grad;
use iterinv::models::config::{UNetConfig, VaeConfig};
use iterinv::models::weights::Weights;
use iterinv::models::{UNet, UNetInputs, Vae};
use iterinv::Gpu;

use crate::random_weights::RandomF16;
use crate::{randn, BenchResult, Workload};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// What the UNet workloads run on: `sample [B,C,H,W]`, 77 tokens of `text_dim`, and the noise
/// levels as class labels for UNets that take them.
struct UNetShape {
    sample: [usize; 4],
    text_dim: usize,
    class_labels: Option<[f32; 2]>,
}

/// Forward and forward+VJP workloads of `unet`.
fn unet_workloads(
    gpu: &Gpu,
    unet: UNet,
    names: [&'static str; 2],
    shape: UNetShape,
) -> BenchResult<Vec<Workload>> {
    let [b, _, h, w] = shape.sample;
    let sample = randn(gpu, &shape.sample, 30)?;
    let text = randn(gpu, &[b, 77, shape.text_dim], 31)?;
    let cot = randn(gpu, &[b, unet.config().out_channels, h, w], 32)?;
    let unet = std::rc::Rc::new(unet);
    let labels = shape.class_labels.map(|l| l[..b.min(2)].to_vec());
    let (u1, s1, t1, l1) = (unet.clone(), sample.clone(), text.clone(), labels.clone());
    let forward = move || {
        Ok(u1.forward(&UNetInputs {
            sample: &s1,
            timesteps: &[981.0, 47.0][..b.min(2)],
            encoder_hidden_states: &t1,
            class_labels: l1.as_deref(),
        })?)
    };
    let with_vjp = move || {
        let (s, t) = (sample.requires_grad(), text.requires_grad());
        let out = unet.forward(&UNetInputs {
            sample: &s,
            timesteps: &[981.0, 47.0][..b.min(2)],
            encoder_hidden_states: &t,
            class_labels: labels.as_deref(),
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
    let shape = UNetShape {
        sample: [2, 3, 64, 64],
        text_dim: 48,
        class_labels: None,
    };
    unet_workloads(gpu, unet, names, shape)
}

/// The x4-upscaler-like test fixture (SD's blocks: 8/16/24 channels, transformer layers, a
/// class-embedding table; text width 20) at B2 on a 64×64 latent (4 latent + 3 image channels),
/// noise levels 7 and 42.
pub fn tiny_sd_unet(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let dir = Path::new(FIXTURES).join("sd_unet/upscaler");
    let unet = UNet::load(gpu, &dir, None)?;
    let names = ["sd_unet_tiny_fwd_b2_64", "sd_unet_tiny_fwd_vjp_b2_64"];
    let shape = UNetShape {
        sample: [2, 7, 64, 64],
        text_dim: 20,
        class_labels: Some([7.0, 42.0]),
    };
    unet_workloads(gpu, unet, names, shape)
}

/// The VAE test fixture (8/16/24 channels) decoding a B2 64×64 latent to 256×256 pixels.
pub fn tiny_vae_decode(gpu: &Gpu) -> BenchResult<Workload> {
    let vae = Vae::load(gpu, &Path::new(FIXTURES).join("vae/vae"), None)?;
    let latent = randn(gpu, &[2, 4, 64, 64], 33)?;
    Ok(Workload {
        name: "vae_tiny_decode_b2_64",
        flops: 0.0,
        run: Box::new(move || Ok(vae.decode(&latent)?)),
    })
}

/// IF-I-XL's config with IF-I-M's widths, random f16 weights.
pub fn if_m(gpu: &Gpu) -> BenchResult<UNet> {
    let (path, mut config) = spec_config("IF-I-XL-v1.0.unet.json")?;
    config["block_out_channels"] = serde_json::json!([192, 384, 576, 768]);
    config["cross_attention_dim"] = serde_json::json!(768);
    let config = UNetConfig::from_value(config, &path)?;
    Ok(UNet::from_weights(
        gpu,
        config,
        &Weights::new(&RandomF16 { gpu }),
    )?)
}

/// IF-II-L's UNet (real config), random f16 weights.
pub fn if_ii_l(gpu: &Gpu) -> BenchResult<UNet> {
    let (path, config) = spec_config("IF-II-L-v1.0.unet.json")?;
    let config = UNetConfig::from_value(config, &path)?;
    Ok(UNet::from_weights(
        gpu,
        config,
        &Weights::new(&RandomF16 { gpu }),
    )?)
}

/// The IF-I-M-shaped UNet at B2, 64 px, forward and forward+VJP.
pub fn if_m_unet(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let unet = if_m(gpu)?;
    let names = ["if_unet_m_fwd_b2_64", "if_unet_m_fwd_vjp_b2_64"];
    let shape = UNetShape {
        sample: [2, 3, 64, 64],
        text_dim: 4096,
        class_labels: None,
    };
    unet_workloads(gpu, unet, names, shape)
}

/// A real checkpoint's config from its spec file in the fixtures.
fn spec_config(name: &str) -> BenchResult<(std::path::PathBuf, serde_json::Value)> {
    let path = Path::new(FIXTURES).join("checkpoints").join(name);
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    Ok((path, spec["config"].clone()))
}

/// The SD x4 upscaler's UNet (real config, ~470 M random f16 weights) at batch 1 on a 64×64
/// latent (7 input channels, 77 tokens of 1024, noise level 100), forward and forward+VJP; and
/// its VAE (real config) decoding that latent to 256×256.
pub fn x4_upscaler(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let source = RandomF16 { gpu };
    let (path, config) = spec_config("stable-diffusion-x4-upscaler.unet.json")?;
    let unet = UNet::from_weights(
        gpu,
        UNetConfig::from_value(config, &path)?,
        &Weights::new(&source),
    )?;
    let names = ["x4_unet_fwd_b1_64", "x4_unet_fwd_vjp_b1_64"];
    let shape = UNetShape {
        sample: [1, 7, 64, 64],
        text_dim: 1024,
        class_labels: Some([100.0, 100.0]),
    };
    let mut rows = unet_workloads(gpu, unet, names, shape)?;
    let (path, config) = spec_config("stable-diffusion-x4-upscaler.vae.json")?;
    let vae = Vae::from_weights(
        VaeConfig::from_value(config, &path)?,
        &Weights::new(&source),
    )?;
    let latent = randn(gpu, &[1, 4, 64, 64], 34)?;
    rows.push(Workload {
        name: "x4_vae_decode_b1_64",
        flops: 0.0,
        run: Box::new(move || Ok(vae.decode(&latent)?)),
    });
    Ok(rows)
}
