//! `iterinv generate`: text to image with the cascade: IF stage I, then up to two
//! super-resolution stages (IF stage II or the SD x4 upscaler).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use iterinv::engine::sched::SchedulerKind;
use iterinv::image_io::save_png;
use iterinv::pipeline::cascade::CascadeStage;
use iterinv::pipeline::{generate, CascadeOptions, SeededNoise, StageSettings};
use iterinv::Gpu;

use crate::progress::{stop_on_ctrl_c, Bars};

#[derive(Clone, Copy, ValueEnum)]
pub enum Sampler {
    Ddpm,
    Ddim,
}

#[derive(Args)]
#[command(after_help = "\
Without --stage1, the tiny cascade built into iterinv runs (16 px, then 32 px, then 128 px
through a latent stage; trained for a few CPU minutes on six sample photos: it shows the flow,
its images are blurry textures). For real images give DeepFloyd-IF's diffusers folders, e.g.
  --stage1 IF-I-XL-v1.0 --stage2 IF-II-L-v1.0 --variant fp16
(IF-I-M/L work the same way; stage I needs its text_encoder/ and tokenizer/, which IF-I ships).
Add --stage3 stable-diffusion-x4-upscaler for IF's stage III (256 -> 1024 px). --stage2 and
--stage3 each take an IF stage-II folder or the x4 upscaler's (told apart by model_index.json);
the IterInv paper's cascade is --stage2 and --stage3 both the upscaler (64 -> 256 -> 1024 px).
Each stage's steps, guidance and noise level default to its kind's: IF stage II 50, 4, 250; the
upscaler 75, 9, 100 (as DeepFloyd-IF chains it; the upscaler pipeline alone uses noise level 20).")]
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
    /// Stage II: an IF stage-II pipeline folder (IFSuperResolutionPipeline) or the SD x4
    /// upscaler's (StableDiffusionUpscalePipeline). Without it (and with --stage1), only stage I
    /// runs.
    #[arg(long, value_name = "DIR")]
    stage2: Option<PathBuf>,
    /// Stage III, after stage II: the SD x4 upscaler's pipeline folder (unet/, vae/,
    /// text_encoder/, tokenizer/, scheduler/, low_res_scheduler/) or an IF stage-II folder. The
    /// upscaler upscales the previous image ×4 with its own CLIP encoding of the prompt.
    #[arg(long, value_name = "DIR")]
    stage3: Option<PathBuf>,
    /// Weight variant of every component (e.g. fp16).
    #[arg(long)]
    variant: Option<String>,
    /// Where to write the final image (PNG); each stage is also written as STEM-stage1.png,
    /// STEM-stage2.png (and STEM-stage3.png) beside it.
    #[arg(long, value_name = "IMG.png")]
    out: PathBuf,
    /// Seed of every random draw: the same seed gives the same image on every run and device.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stage I sampling steps.
    #[arg(long, default_value_t = 100)]
    pub(crate) steps1: usize,
    /// Stage II sampling steps (default: its kind's).
    #[arg(long)]
    pub(crate) steps2: Option<usize>,
    /// Stage I guidance scale (1 disables guidance).
    #[arg(long, default_value_t = 7.0)]
    pub(crate) guidance1: f32,
    /// Stage II guidance scale (default: its kind's).
    #[arg(long)]
    pub(crate) guidance2: Option<f32>,
    /// Noise added to stage I's image before it conditions stage II (a timestep, 0..1000; for
    /// the upscaler also its class label; default: its kind's).
    #[arg(long)]
    pub(crate) noise_level: Option<usize>,
    /// Stage III sampling steps (default: its kind's).
    #[arg(long)]
    pub(crate) steps3: Option<usize>,
    /// Stage III guidance scale (default: its kind's).
    #[arg(long)]
    pub(crate) guidance3: Option<f32>,
    /// Noise added to stage II's image before it conditions stage III (default: its kind's).
    #[arg(long)]
    pub(crate) noise_level3: Option<usize>,
    /// Sampler for the IF stages (default: each folder's scheduler, DDPM for IF).
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
        for (flag, v) in [("steps2", self.steps2), ("steps3", self.steps3)] {
            v.map_or(Ok(()), |v| steps(flag, v))?;
        }
        finite("guidance1", self.guidance1.into())?;
        for (flag, v) in [("guidance2", self.guidance2), ("guidance3", self.guidance3)] {
            v.map_or(Ok(()), |v| finite(flag, v.into()))?;
        }
        for (flag, v) in [
            ("noise-level", self.noise_level),
            ("noise-level3", self.noise_level3),
        ] {
            v.map_or(Ok(()), |v| crate::numbers::noise_level(flag, v))?;
        }
        finite_non_negative("eta", self.eta.into())
    }
}

pub fn run(gpu: &Gpu, args: GenerateArgs) -> Result<()> {
    let (stage1, upper) =
        crate::embedded::stages_or_builtin(&args.stage1, &args.stage2, &args.stage3)?;
    let flags = [
        (args.steps2, args.guidance2, args.noise_level),
        (args.steps3, args.guidance3, args.noise_level3),
    ];
    let mut super_resolution = Vec::new();
    for (folder, (steps, guidance, noise_level)) in upper.iter().zip(flags) {
        let mut stage = CascadeStage::with_defaults(folder)?;
        stage.settings.steps = steps.unwrap_or(stage.settings.steps);
        stage.settings.guidance = guidance.unwrap_or(stage.settings.guidance);
        stage.settings.eta = args.eta;
        stage.noise_level = noise_level.unwrap_or(stage.noise_level);
        super_resolution.push(stage);
    }
    let opts = CascadeOptions {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        clean_caption: !args.no_clean_caption,
        stage1,
        stage1_settings: StageSettings {
            steps: args.steps1,
            guidance: args.guidance1,
            eta: args.eta,
        },
        super_resolution,
        variant: args.variant.clone(),
        sampler: args.sampler.map(|s| match s {
            Sampler::Ddpm => SchedulerKind::Ddpm,
            Sampler::Ddim => SchedulerKind::Ddim,
        }),
    };
    let mut noise = SeededNoise::new(gpu, args.seed);
    stop_on_ctrl_c();
    let mut bars = Bars::default();
    let out = generate(gpu, &opts, &mut noise, &mut |e| bars.update(e));
    bars.finish();
    let out = out?;
    for (i, image) in out.images.iter().enumerate() {
        let path = sibling(&args.out, &format!("stage{}", i + 1));
        save_png(image, 0, &path)?;
        eprintln!("wrote {}", path.display());
    }
    let last = out.images.last().expect("stage I ran");
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
