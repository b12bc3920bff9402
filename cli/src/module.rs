//! `iterinv module ...`: run one network on arrays from a safetensors file, so users can compare
//! iterinv with PyTorch on their own weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use iterinv::models::{IfUNet, UNetInputs};
use iterinv::{grad, Gpu};

use crate::tensor_file::{self, Array};

#[derive(Subcommand)]
pub enum Module {
    /// Run a DeepFloyd-IF UNet (stage I or II) forward, and its vector-Jacobian products.
    #[command(long_about = IF_UNET_HELP)]
    IfUnet(IfUnetArgs),
}

const IF_UNET_HELP: &str = "\
Run a DeepFloyd-IF UNet (stage I or II) forward, and optionally its vector-Jacobian products.

IN (safetensors) holds:
  sample                 [B, C, H, W]  float   noisy image (stage II: noisy image and upscaled
                                               low-res image concatenated, C = 6)
  timestep               [B] or [1]    any int or float dtype
  encoder_hidden_states  [B, L, D]     float   T5 output (D = 4096 for the real models)
  class_labels           [B] or [1]    any     stage II only: the low-res image's noise level
  cotangent              like OUT's `sample`   optional: also compute the VJPs
Arrays of any float dtype are read as f32. Other arrays in IN are ignored (with a warning).

OUT (safetensors, f32) holds:
  sample                       [B, out_channels, H, W]  (IF: ε in channels 0..3, variance in 3..6)
  grad_sample                  <cotangent, d sample_out / d sample>, when IN has `cotangent`
  grad_encoder_hidden_states   <cotangent, d sample_out / d encoder_hidden_states>, likewise

This is how to check iterinv against diffusers on your own weights: in PyTorch, run
  out = unet(sample, timestep, encoder_hidden_states, class_labels=...).sample
  torch.autograd.grad(out, [sample, encoder_hidden_states], cotangent)
on the same IN and compare.";

#[derive(Args)]
pub struct IfUnetArgs {
    /// The UNet's folder (config.json + diffusion_pytorch_model*.safetensors, single or sharded),
    /// or a pipeline folder holding it in unet/.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Load diffusion_pytorch_model.<VARIANT>.safetensors instead (e.g. fp16; kept in f16 on the
    /// GPU, computed in f32).
    #[arg(long)]
    variant: Option<String>,
    /// Input arrays (see above).
    #[arg(long, value_name = "IN.safetensors")]
    inputs: PathBuf,
    /// Where to write the outputs.
    #[arg(long, value_name = "OUT.safetensors")]
    out: PathBuf,
}

const IF_UNET_INPUTS: [&str; 5] = [
    "sample",
    "timestep",
    "encoder_hidden_states",
    "class_labels",
    "cotangent",
];

pub fn run(gpu: &Gpu, module: Module) -> Result<()> {
    match module {
        Module::IfUnet(args) => if_unet(gpu, args),
    }
}

fn if_unet(gpu: &Gpu, args: IfUnetArgs) -> Result<()> {
    let arrays = tensor_file::read(&args.inputs)?;
    warn_ignored(&args.inputs, &arrays, &IF_UNET_INPUTS);
    let get = |name: &str| required(&args.inputs, &arrays, name);
    let (sample, text) = (get("sample")?, get("encoder_hidden_states")?);
    for (name, a) in [("sample", sample), ("encoder_hidden_states", text)] {
        if !is_float(a) {
            bail!(
                "{}: `{name}` must hold floats, not {:?}",
                args.inputs.display(),
                a.dtype
            );
        }
    }
    let timesteps = vector(&args.inputs, "timestep", get("timestep")?)?;
    let class_labels = arrays
        .get("class_labels")
        .map(|a| vector(&args.inputs, "class_labels", a))
        .transpose()?;

    let start = Instant::now();
    let unet = IfUNet::load(gpu, &args.model, args.variant.as_deref())
        .with_context(|| format!("loading the IF UNet from {}", args.model.display()))?;
    eprintln!(
        "loaded {} in {:.1} s",
        args.model.display(),
        start.elapsed().as_secs_f64()
    );

    let cotangent = arrays.get("cotangent");
    let sample = sample.to_tensor(gpu)?;
    let text = text.to_tensor(gpu)?;
    let (sample, text) = if cotangent.is_some() {
        (sample.requires_grad(), text.requires_grad())
    } else {
        (sample, text)
    };
    let start = Instant::now();
    let out = unet.forward(&UNetInputs {
        sample: &sample,
        timesteps: &timesteps,
        encoder_hidden_states: &text,
        class_labels: class_labels.as_deref(),
    })?;
    let mut outputs = vec![("sample", out.clone())];
    if let Some(c) = cotangent {
        if c.shape != out.shape() {
            bail!(
                "{}: `cotangent` has shape {:?}; it must have the output's shape {:?}",
                args.inputs.display(),
                c.shape,
                out.shape()
            );
        }
        let grads = grad::grad(&[&out], &[&c.to_tensor(gpu)?], &[&sample, &text])?;
        let [gs, gt]: [_; 2] = grads.try_into().expect("one gradient per input");
        outputs.push(("grad_sample", gs));
        outputs.push(("grad_encoder_hidden_states", gt));
    }
    gpu.synchronize()?;
    eprintln!(
        "ran {} in {:.2} s",
        if cotangent.is_some() {
            "forward + VJP"
        } else {
            "forward"
        },
        start.elapsed().as_secs_f64()
    );
    let refs: Vec<(&str, &iterinv::Tensor)> = outputs.iter().map(|(n, t)| (*n, t)).collect();
    tensor_file::write(&args.out, &refs)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn required<'a>(path: &Path, arrays: &'a BTreeMap<String, Array>, name: &str) -> Result<&'a Array> {
    arrays.get(name).with_context(|| {
        let has: Vec<&str> = arrays.keys().map(String::as_str).collect();
        format!(
            "{} has no array `{name}` (it holds: {})",
            path.display(),
            has.join(", ")
        )
    })
}

fn is_float(a: &Array) -> bool {
    use safetensors::Dtype::*;
    matches!(a.dtype, F64 | F32 | F16 | BF16)
}

/// A per-sample vector: shape `[B]`, `[1]` or a scalar `[]`.
fn vector(path: &Path, name: &str, a: &Array) -> Result<Vec<f32>> {
    if a.shape.len() > 1 {
        bail!(
            "{}: `{name}` must be a vector [B], got shape {:?}",
            path.display(),
            a.shape
        );
    }
    Ok(a.to_f32())
}

fn warn_ignored(path: &Path, arrays: &BTreeMap<String, Array>, known: &[&str]) {
    let ignored: Vec<&str> = arrays
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if !ignored.is_empty() {
        log::warn!(
            "{}: ignoring array(s) {}",
            path.display(),
            ignored.join(", ")
        );
    }
}
