//! `iterinv generate`: text to image with the IF cascade, optionally followed by the SD x4
//! upscaler as stage III.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use iterinv::engine::sched::SchedulerKind;
use iterinv::image_io::save_png;
use iterinv::pipeline::{generate, CascadeOptions, SeededNoise, Stage, StageSettings};
use iterinv::Gpu;

#[derive(Clone, Copy, ValueEnum)]
pub enum Sampler {
    Ddpm,
    Ddim,
}

#[derive(Args)]
#[command(after_help = "\
Without --stage1, the tiny cascade built into iterinv runs (16 px, then 32 px; trained for a few
CPU minutes on six sample photos: it shows the flow, its images are blurry textures). For real
images give DeepFloyd-IF's diffusers folders, e.g.
  --stage1 IF-I-XL-v1.0 --stage2 IF-II-L-v1.0 --variant fp16
(IF-I-M/L work the same way; stage I needs its text_encoder/ and tokenizer/, which IF-I ships).
Add --stage3 stable-diffusion-x4-upscaler for IF's stage III (256 -> 1024 px).")]
pub struct GenerateArgs {
    /// The text to draw.
    #[arg(long)]
    prompt: String,
    /// What to steer away from (classifier-free guidance's unconditional text).
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// Stage I pipeline folder (IFPipeline: unet/, scheduler/, text_encoder/, tokenizer/).
    #[arg(long, value_name = "DIR")]
    stage1: Option<PathBuf>,
    /// Stage II pipeline folder (IFSuperResolutionPipeline). Without it (and with --stage1),
    /// only stage I runs.
    #[arg(long, value_name = "DIR")]
    stage2: Option<PathBuf>,
    /// Stage III: the SD x4 upscaler's pipeline folder (StableDiffusionUpscalePipeline: unet/,
    /// vae/, text_encoder/, tokenizer/, scheduler/, low_res_scheduler/). It upscales the last
    /// IF stage's image ×4 with its own CLIP encoding of the prompt.
    #[arg(long, value_name = "DIR")]
    stage3: Option<PathBuf>,
    /// Weight variant of every component (e.g. fp16).
    #[arg(long)]
    variant: Option<String>,
    /// Where to write the final image (PNG); each stage is also written as <stem>-stage1.png,
    /// <stem>-stage2.png (and <stem>-stage3.png) beside it.
    #[arg(long, value_name = "IMG.png")]
    out: PathBuf,
    /// Seed of every random draw: the same seed gives the same image on every run and device.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stage I sampling steps.
    #[arg(long, default_value_t = 100)]
    pub(crate) steps1: usize,
    /// Stage II sampling steps.
    #[arg(long, default_value_t = 50)]
    pub(crate) steps2: usize,
    /// Stage I guidance scale (1 disables guidance).
    #[arg(long, default_value_t = 7.0)]
    pub(crate) guidance1: f32,
    /// Stage II guidance scale.
    #[arg(long, default_value_t = 4.0)]
    pub(crate) guidance2: f32,
    /// Noise added to the upscaled stage-I image (a timestep, 0..1000).
    #[arg(long, default_value_t = 250)]
    noise_level: usize,
    /// Stage III sampling steps (the upscaler's DDIM).
    #[arg(long, default_value_t = 75)]
    pub(crate) steps3: usize,
    /// Stage III guidance scale.
    #[arg(long, default_value_t = 9.0)]
    pub(crate) guidance3: f32,
    /// Noise added to stage II's image before stage III (the upscaler's class label, 0..1000;
    /// DeepFloyd-IF uses 100, the upscaler pipeline alone 20).
    #[arg(long, default_value_t = 100)]
    noise_level3: usize,
    /// Sampler for both stages (default: each folder's scheduler, DDPM for IF).
    #[arg(long, value_enum)]
    sampler: Option<Sampler>,
    /// DDIM's eta (0: deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) eta: f32,
    /// Skip IF's caption cleaning (use lower-cased, trimmed text as given).
    #[arg(long)]
    no_clean_caption: bool,
}

impl GenerateArgs {
    /// The number flags, before any device or file is opened (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        use crate::numbers::{finite, finite_non_negative, steps};
        steps("steps1", self.steps1)?;
        steps("steps2", self.steps2)?;
        steps("steps3", self.steps3)?;
        finite("guidance1", self.guidance1.into())?;
        finite("guidance2", self.guidance2.into())?;
        finite("guidance3", self.guidance3.into())?;
        finite_non_negative("eta", self.eta.into())
    }
}

pub fn run(gpu: &Gpu, args: GenerateArgs) -> Result<()> {
    let (stage1, stage2) = crate::embedded::stages_or_builtin(&args.stage1, &args.stage2)?;
    let settings = |steps, guidance| StageSettings {
        steps,
        guidance,
        eta: args.eta,
    };
    let opts = CascadeOptions {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        clean_caption: !args.no_clean_caption,
        stage1,
        stage2,
        variant: args.variant.clone(),
        stage1_settings: settings(args.steps1, args.guidance1),
        stage2_settings: settings(args.steps2, args.guidance2),
        noise_level: args.noise_level,
        sampler: args.sampler.map(|s| match s {
            Sampler::Ddpm => SchedulerKind::Ddpm,
            Sampler::Ddim => SchedulerKind::Ddim,
        }),
        stage3: args.stage3.clone(),
        stage3_settings: settings(args.steps3, args.guidance3),
        stage3_noise_level: args.noise_level3,
    };
    let mut noise = SeededNoise::new(gpu, args.seed);
    let mut bar: Option<(Stage, ProgressBar)> = None;
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {elapsed}")
        .expect("a valid template")
        .progress_chars("=> ");
    let mut progress = |stage: Stage, done: usize, total: usize| {
        if bar.as_ref().map(|(s, _)| *s) != Some(stage) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(total as u64).with_style(style.clone());
            b.set_prefix(stage.name());
            bar = Some((stage, b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done as u64);
        }
    };
    let out = generate(gpu, &opts, &mut noise, &mut progress)?;
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
    let written = |stage: &str| sibling(&args.out, stage);
    save_png(&out.stage1, 0, &written("stage1"))?;
    eprintln!("wrote {}", written("stage1").display());
    let mut last = &out.stage1;
    for (name, image) in [("stage2", &out.stage2), ("stage3", &out.stage3)] {
        if let Some(img) = image {
            save_png(img, 0, &written(name))?;
            eprintln!("wrote {}", written(name).display());
            last = img;
        }
    }
    save_png(last, 0, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// `dir/name.png` → `dir/name-{stage}.png`.
fn sibling(out: &Path, stage: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}-{stage}.png"))
}
