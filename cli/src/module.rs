//! `iterinv module ...`: run one network on arrays from a safetensors file, so users can compare
//! iterinv with PyTorch on their own weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use iterinv::models::{ClipTextEncoder, T5Encoder, UNet, UNetInputs, Vae};
use iterinv::{grad, Gpu};

use crate::tensor_file::{self, Array};

#[derive(Subcommand)]
pub enum Module {
    /// Run a UNet (DeepFloyd-IF stage I or II, the SD x4 upscaler) forward, and its
    /// vector-Jacobian products.
    #[command(long_about = UNET_HELP, alias = "if-unet")]
    Unet(UnetArgs),
    /// Run a T5 encoder (IF's text encoder) on token ids.
    #[command(long_about = T5_HELP)]
    T5(T5Args),
    /// Run a CLIP text encoder (the SD x4 upscaler's text encoder) on token ids.
    #[command(long_about = CLIP_TEXT_HELP)]
    ClipText(ClipTextArgs),
    /// Run a VAE (diffusers AutoencoderKL, the SD x4 upscaler's): encode images, decode latents.
    #[command(long_about = VAE_HELP)]
    Vae(VaeArgs),
}
const VAE_HELP: &str = "\
Run a VAE (diffusers AutoencoderKL, as the SD x4 upscaler ships it): encode images to the latent
distribution and/or decode latents to images. Activations are f32 whatever the weights' dtype.

IN (safetensors) holds one or both of:
  image    [B, in_channels, H, W]       float   pixels in [-1, 1]; H and W multiples of
                                                2^(len(block_out_channels) - 1) (4 for the upscaler)
  latent   [B, latent_channels, h, w]   float   an unscaled latent (a diffusion latent divided by
                                                the config's scaling_factor)
Arrays of any float dtype are read as f32. Other arrays in IN are ignored (with a warning).

OUT (safetensors, f32) holds:
  mean, std   [B, latent_channels, H/f, W/f]   the latent distribution of `image`, unscaled
                                               (std = exp(logvar / 2), logvar clamped to [-30, 20])
  decoded     [B, out_channels, h*f, w*f]      the decoding of `latent`, not clamped

Compare with diffusers:
  dist = AutoencoderKL.from_pretrained(DIR).encode(image).latent_dist   # dist.mean, dist.std
  decoded = AutoencoderKL.from_pretrained(DIR).decode(latent).sample";

#[derive(Args)]
pub struct VaeArgs {
    #[command(flatten)]
    io: ModelIo,
}

const CLIP_TEXT_HELP: &str = "\
Run a CLIP text encoder (transformers CLIPTextModel), as the Stable Diffusion x4 upscaler uses it,
on token ids.

IN (safetensors) holds:
  input_ids        [B, L]  any int dtype   token ids, L at most the encoder's positions (77)
  attention_mask   [B, L]  any dtype       optional: 1 on tokens, 0 on padding (Stable Diffusion
                                           passes none: every position is attended, causally)
OUT (safetensors, f32) holds:
  last_hidden_state  [B, L, hidden]        every position, after the final layer norm
  pooler_output      [B, hidden]           each row's state at its end-of-text token

Compare with transformers:
  out = CLIPTextModel.from_pretrained(DIR)(input_ids=..., attention_mask=...)
  out.last_hidden_state, out.pooler_output";

#[derive(Args)]
pub struct ClipTextArgs {
    #[command(flatten)]
    io: ModelIo,
}

const T5_HELP: &str = "\
Run a T5 (v1.1) encoder, as DeepFloyd-IF uses it, on token ids.

IN (safetensors) holds:
  input_ids        [B, L]  any int dtype   token ids (`iterinv tokenize` prints them)
  attention_mask   [B, L]  any dtype       1 on tokens, 0 on padding
OUT (safetensors, f32) holds:
  last_hidden_state  [B, L, d_model]       every position, padding included (IF uses all 77)

Compare with transformers:
  T5EncoderModel.from_pretrained(DIR)(input_ids=..., attention_mask=...).last_hidden_state";

#[derive(Args)]
pub struct T5Args {
    #[command(flatten)]
    io: ModelIo,
}

const UNET_HELP: &str = "\
Run a diffusers UNet2DConditionModel with IF's blocks (DeepFloyd-IF stage I or II) or SD's (the
Stable Diffusion x4 upscaler) forward, and optionally its vector-Jacobian products. `if-unet` is
an alias.

IN (safetensors) holds:
  sample                 [B, C, H, W]  float   IF-I: the noisy image; IF-II: noisy image and upscaled
                                               low-res image concatenated (C = 6); x4 upscaler:
                                               noisy latent and noised low-res image (C = 7)
  timestep               [B] or [1]    any int or float dtype
  encoder_hidden_states  [B, L, D]     float   the text encoder's output (T5: D = 4096 for IF;
                                               CLIP: D = 1024 for the upscaler)
  class_labels           [B] or [1]    any     IF-II and the upscaler: the low-res image's noise
                                               level (the upscaler's: an integer below 1000)
  cotangent              like OUT's `sample`   optional: also compute the VJPs
Arrays of any float dtype are read as f32. Other arrays in IN are ignored (with a warning).

OUT (safetensors, f32) holds:
  sample                       [B, out_channels, H, W]  (IF: ε in channels 0..3, variance in
                                                        3..6; the upscaler: v, 4 channels)
  grad_sample                  <cotangent, d sample_out / d sample>, when IN has `cotangent`
  grad_encoder_hidden_states   <cotangent, d sample_out / d encoder_hidden_states>, likewise

This is how to check iterinv against diffusers on your own weights: in PyTorch, run
  out = unet(sample, timestep, encoder_hidden_states, class_labels=...).sample
  torch.autograd.grad(out, [sample, encoder_hidden_states], cotangent)
on the same IN and compare.";

#[derive(Args)]
pub struct UnetArgs {
    #[command(flatten)]
    io: ModelIo,
}

/// The model and the files of one `iterinv module` run.
#[derive(Args)]
pub struct ModelIo {
    /// The model's folder (config.json + its *.safetensors weights, single or sharded), or a
    /// pipeline folder holding it (in unet/ or text_encoder/).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Load the STEM.VARIANT.safetensors weights instead (e.g. fp16: kept in f16 on the GPU,
    /// computed in f32).
    #[arg(long)]
    variant: Option<String>,
    /// Input arrays (see above).
    #[arg(long, value_name = "IN.safetensors")]
    inputs: PathBuf,
    /// Where to write the outputs.
    #[arg(long, value_name = "OUT.safetensors")]
    out: PathBuf,
}

const UNET_INPUTS: [&str; 5] = [
    "sample",
    "timestep",
    "encoder_hidden_states",
    "class_labels",
    "cotangent",
];

pub fn run(gpu: &Gpu, module: Module) -> Result<()> {
    match module {
        Module::Unet(args) => unet(gpu, args),
        Module::T5(args) => t5(gpu, args),
        Module::ClipText(args) => clip_text(gpu, args),
        Module::Vae(args) => vae(gpu, args),
    }
}

fn vae(gpu: &Gpu, VaeArgs { io: args }: VaeArgs) -> Result<()> {
    let arrays = tensor_file::read(&args.inputs)?;
    warn_ignored(&args.inputs, &arrays, &["image", "latent"]);
    let (image, latent) = (arrays.get("image"), arrays.get("latent"));
    if image.is_none() && latent.is_none() {
        let has: Vec<&str> = arrays.keys().map(String::as_str).collect();
        bail!(
            "{} has neither `image` (to encode) nor `latent` (to decode); it holds: {}",
            args.inputs.display(),
            has.join(", ")
        );
    }
    for (name, a) in [("image", image), ("latent", latent)] {
        if let Some(a) = a.filter(|a| !is_float(a)) {
            bail!(
                "{}: `{name}` must hold floats, not {:?}",
                args.inputs.display(),
                a.dtype
            );
        }
    }
    let vae = load(gpu, &args, "the VAE", Vae::load)?;
    let mut outputs = Vec::new();
    if let Some(image) = image {
        let start = Instant::now();
        let dist = vae.encode(&image.to_tensor(gpu)?)?;
        gpu.synchronize()?;
        eprintln!("encoded in {:.2} s", start.elapsed().as_secs_f64());
        outputs.push(("mean", dist.mean));
        outputs.push(("std", dist.std));
    }
    if let Some(latent) = latent {
        let start = Instant::now();
        let decoded = vae.decode(&latent.to_tensor(gpu)?)?;
        gpu.synchronize()?;
        eprintln!("decoded in {:.2} s", start.elapsed().as_secs_f64());
        outputs.push(("decoded", decoded));
    }
    let refs: Vec<(&str, &iterinv::Tensor)> = outputs.iter().map(|(n, t)| (*n, t)).collect();
    tensor_file::write(&args.out, &refs)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// `loader(gpu, --model, --variant)`, naming `network` and the folder in an error and printing
/// how long it took.
fn load<T>(
    gpu: &Gpu,
    args: &ModelIo,
    network: &str,
    loader: impl FnOnce(&Gpu, &Path, Option<&str>) -> iterinv::models::Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let model = loader(gpu, &args.model, args.variant.as_deref())
        .with_context(|| format!("loading {network} from {}", args.model.display()))?;
    eprintln!(
        "loaded {} in {:.1} s",
        args.model.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(model)
}

/// Rows of token ids or mask values, `[B][L]`.
type TokenRows = Vec<Vec<u32>>;

/// Token ids `[B, L]` from `input_ids` of IN, with `attention_mask` when IN has one.
fn token_inputs(
    path: &Path,
    arrays: &BTreeMap<String, Array>,
) -> Result<(TokenRows, Option<TokenRows>)> {
    warn_ignored(path, arrays, &["input_ids", "attention_mask"]);
    let ids = rows(path, "input_ids", required(path, arrays, "input_ids")?)?;
    let mask = arrays
        .get("attention_mask")
        .map(|a| rows(path, "attention_mask", a))
        .transpose()?;
    Ok((ids, mask))
}

fn clip_text(gpu: &Gpu, ClipTextArgs { io: args }: ClipTextArgs) -> Result<()> {
    let arrays = tensor_file::read(&args.inputs)?;
    let (ids, mask) = token_inputs(&args.inputs, &arrays)?;
    let encoder = load(gpu, &args, "the CLIP text encoder", ClipTextEncoder::load)?;
    let start = Instant::now();
    let out = encoder.encode(&ids, mask.as_deref())?;
    gpu.synchronize()?;
    eprintln!(
        "encoded {} sequence(s) in {:.2} s",
        ids.len(),
        start.elapsed().as_secs_f64()
    );
    tensor_file::write(
        &args.out,
        &[
            ("last_hidden_state", &out.last_hidden_state),
            ("pooler_output", &out.pooler_output),
        ],
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn t5(gpu: &Gpu, T5Args { io: args }: T5Args) -> Result<()> {
    let arrays = tensor_file::read(&args.inputs)?;
    let (ids, mask) = token_inputs(&args.inputs, &arrays)?;
    let Some(mask) = mask else {
        bail!(
            "{} has no array `attention_mask`: T5 needs one (1 on tokens, 0 on padding)",
            args.inputs.display()
        );
    };
    let encoder = load(gpu, &args, "the T5 encoder", T5Encoder::load)?;
    let start = Instant::now();
    let hidden = encoder.encode(&ids, &mask)?;
    gpu.synchronize()?;
    eprintln!(
        "encoded {} sequence(s) in {:.2} s",
        ids.len(),
        start.elapsed().as_secs_f64()
    );
    tensor_file::write(&args.out, &[("last_hidden_state", &hidden)])?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// A `[B, L]` array of non-negative integers, as rows.
fn rows(path: &Path, name: &str, a: &Array) -> Result<Vec<Vec<u32>>> {
    let &[_, l] = &a.shape[..] else {
        bail!(
            "{}: `{name}` must be [B, L], got shape {:?}",
            path.display(),
            a.shape
        );
    };
    if let Some(v) = a
        .values
        .iter()
        .find(|v| v.fract() != 0.0 || **v < 0.0 || **v > u32::MAX as f64)
    {
        bail!(
            "{}: `{name}` must hold non-negative integers, found {v}",
            path.display()
        );
    }
    Ok(a.values
        .chunks(l.max(1))
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect())
}

fn unet(gpu: &Gpu, UnetArgs { io: args }: UnetArgs) -> Result<()> {
    let arrays = tensor_file::read(&args.inputs)?;
    warn_ignored(&args.inputs, &arrays, &UNET_INPUTS);
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

    let unet = load(gpu, &args, "the UNet", UNet::load)?;

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
