//! `iterinv score A B`: the paper's image metrics of B against the reference A, as JSON (spec/
//! method.md, "Evaluation in the paper"): MSE, PSNR (data range = A's max − min) and SSIM
//! (torchmetrics', data range 1) on [0, 1] pixels, always; LPIPS (VGG, inputs ×2 − 1) with
//! `--lpips FILE`; CLIP score of B against `--prompt` with `--clip DIR`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use iterinv::image_io::load_rgb;
use iterinv::metrics::pixel_scores;
use iterinv::scoring::Scorer;
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

pub fn run(args: ScoreArgs, device: crate::DeviceSettings) -> Result<()> {
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
    let gpu = crate::open_gpu(device)?;
    let scorer = Scorer::load(&gpu, args.lpips.as_deref(), args.clip.as_deref())?;
    if let Some(d) = scorer.lpips(&a, &b)? {
        out["lpips"] = json!(d);
    }
    if let Some(prompt) = &args.prompt {
        out["clip_score"] = json!(scorer.clip_score(&b, prompt)?);
    }
    println!("{out}");
    Ok(())
}
