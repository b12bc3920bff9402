//! `iterinv score A B`: the paper's image metrics of B against the reference A, as JSON (spec/
//! method.md, "Evaluation in the paper"): MSE, PSNR (data range = A's max − min) and SSIM
//! (torchmetrics', data range 1) on [0, 1] pixels, always; LPIPS (VGG, inputs ×2 − 1) with
//! `--lpips FILE`; CLIP score of B against `--prompt` with `--clip DIR`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use iterinv::clip_image::ClipImageProcessor;
use iterinv::image_io::{load_rgb, Rgb};
use iterinv::metrics::pixel_scores;
use iterinv::models::clip_model::clip_score;
use iterinv::models::text::ClipTokenizer;
use iterinv::models::{ClipModel, Lpips};
use iterinv::{Gpu, GpuOptions, Tensor};
use serde_json::json;

#[derive(Args)]
pub struct ScoreArgs {
    /// The reference image (the original photo).
    pub a: PathBuf,
    /// The image scored against it (e.g. a reconstruction), of the same size.
    pub b: PathBuf,
    /// The text B is scored against (needs --clip).
    #[arg(long)]
    pub prompt: Option<String>,
    /// LPIPS weights: the one safetensors file tools/reference/make_lpips_fixtures.py --real writes.
    #[arg(long)]
    pub lpips: Option<PathBuf>,
    /// A CLIPModel folder (config.json, model.safetensors, tokenizer and preprocessor config),
    /// e.g. openai/clip-vit-base-patch16 as the paper used.
    #[arg(long)]
    pub clip: Option<PathBuf>,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    if args.prompt.is_some() != args.clip.is_some() {
        bail!("CLIP score needs both --clip DIR and --prompt TEXT");
    }
    let a = load_rgb(&args.a)?;
    let b = load_rgb(&args.b)?;
    if (a.height, a.width) != (b.height, b.width) {
        bail!(
            "{} is {}×{} but {} is {}×{}: the images must be the same size",
            args.a.display(),
            a.width,
            a.height,
            args.b.display(),
            b.width,
            b.height
        );
    }
    let s = pixel_scores(&a.data, &b.data, 3, a.height, a.width);
    // Non-finite numbers (PSNR of equal images) become JSON null.
    let mut out = json!({ "mse": s.mse, "psnr": s.psnr, "ssim": s.ssim });
    if args.lpips.is_none() && args.clip.is_none() {
        println!("{out}");
        return Ok(());
    }
    let gpu = Gpu::with_options(GpuOptions::default()).context("could not open a GPU device")?;
    if let Some(file) = &args.lpips {
        let lpips = Lpips::load(&gpu, file)?;
        let d = lpips.distance(&signed(&gpu, &a)?, &signed(&gpu, &b)?)?;
        out["lpips"] = json!(d.distance);
    }
    if let (Some(dir), Some(prompt)) = (&args.clip, &args.prompt) {
        out["clip_score"] = json!(clip(&gpu, dir, prompt, &b)?);
    }
    println!("{out}");
    Ok(())
}

/// `[1, 3, H, W]` in [−1, 1], LPIPS' range.
fn signed(gpu: &Gpu, img: &Rgb) -> Result<Tensor> {
    let data: Vec<f32> = img.data.iter().map(|v| v * 2.0 - 1.0).collect();
    Ok(Tensor::from_f32(
        gpu,
        &[1, 3, img.height, img.width],
        &data,
    )?)
}

/// torchmetrics' CLIPScore of one image and one prompt: the prompt's tokens are not padded and
/// are cut to the text tower's positions, as torchmetrics does.
fn clip(gpu: &Gpu, dir: &std::path::Path, prompt: &str, img: &Rgb) -> Result<f64> {
    let model = ClipModel::load(gpu, dir)?;
    let processor = ClipImageProcessor::load(dir)?;
    let tokenizer = ClipTokenizer::load(dir)?;
    let mut ids = tokenizer.encode_unpadded(prompt)?;
    ids.truncate(model.config().text_config.max_position_embeddings);
    let text = model.text_embeds(&[ids])?.to_vec()?;
    let (pixels, h, w) = processor.preprocess(img);
    let image = model
        .image_embeds(&Tensor::from_f32(gpu, &[1, 3, h, w], &pixels)?)?
        .to_vec()?;
    Ok(clip_score(&image, &text))
}
