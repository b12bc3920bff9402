//! `iterinv invert` and `iterinv reconstruct`: a photo to the artifacts that regenerate it, and
//! back.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use iterinv::image_io::{save_png, Fit};
use iterinv::pipeline::inversion::{
    self, artifacts::write_atomic, Artifacts, FolderOverrides, InvertOptions, SrMethod, SrStage,
    Stage1Method, StageReport,
};
use iterinv::Gpu;
use serde::Serialize;

use crate::progress::{stop_on_ctrl_c, Bars};

#[derive(Clone, Copy, ValueEnum)]
enum Stage1Arg {
    /// Null-text inversion (IterInv's code: 51 Adam steps per timestep, lr 1e-3).
    Nti,
    /// Negative-prompt inversion: the prompt as the null text, no optimization.
    Npi,
    /// DDIM inversion only, reconstructed with guidance (the baseline).
    Ddim,
    /// Prompt-to-prompt's NTI (10 steps, lr 1e-2, mean loss, early stop).
    NtiP2p,
}

#[derive(Clone, Copy, ValueEnum)]
enum SrArg {
    /// IterInv with a fixed-point warm start, a loss check that backtracks, and a stop once
    /// converged.
    Iterinv,
    /// IterInv exactly as the paper's code: 21 plain gradient steps (can diverge).
    IterinvFaithful,
    /// The forward-only fixed point.
    FixedPoint,
    /// Plain DDIM inversion (the baseline; fails at super-resolution stages).
    Ddim,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResizeArg {
    /// Centre-crop to a square, then resize (bicubic, antialiased).
    Crop,
    /// Resize both sides (the IterInv reference's behaviour; distorts non-square photos).
    Stretch,
}

#[derive(Args)]
#[command(after_help = "\
Writes into --out: inversion.safetensors + inversion.json (the artifacts: x_T per stage, NTI's
null embeddings, the super-resolution stages' condition noise, the text embeddings, every setting
and the models' fingerprints), stage1.png, stage2.png, ... (the reconstructions),
input-stage1.png, ... (the photo as each stage sees it) and report.json (per stage: psnr, ssim,
mse against that input, seconds, inner iterations and final losses per timestep; a latent stage
also latent_psnr and round_trip_psnr, the VAE round trip's PSNR: the most a latent inversion can
reach).

Without --stage1 the tiny cascade built into iterinv runs (16 px, then 32 px; trained for a few CPU
minutes on public sample photos). For real photos give DeepFloyd-IF's diffusers folders:
  --stage1 IF-I-XL-v1.0 --stage2 IF-II-L-v1.0 --variant fp16
and --stage3 stable-diffusion-x4-upscaler for 1024 px. --stage2 and --stage3 each take an IF
stage-II folder (inverted on pixels) or the x4 upscaler's (inverted on its VAE's latent), told
apart by model_index.json; the IterInv paper's cascade is IF-I-XL with the upscaler as both.
Ctrl-C stops after the current timestep and writes nothing.")]
pub struct InvertArgs {
    /// The photo (PNG or JPEG; RGB, RGBA, grey or 16-bit); at least stage II's size on each side.
    image: PathBuf,
    /// The text that describes the photo.
    #[arg(long)]
    prompt: String,
    /// Output folder (created; files in it with the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    pub(crate) inversion: InversionArgs,
}

/// The cascade and how each stage is inverted: `invert`'s flags, which `edit` shares.
#[derive(Args)]
pub struct InversionArgs {
    /// Stage I pipeline folder (IFPipeline: unet/, scheduler/, text_encoder/, tokenizer/).
    #[arg(long, value_name = "DIR")]
    stage1: Option<PathBuf>,
    /// Stage II: an IF stage-II folder (IFSuperResolutionPipeline) or the SD x4 upscaler's
    /// (StableDiffusionUpscalePipeline: a latent stage, its image 4× stage I's, inverted on the
    /// VAE's latent); without it only stage I runs.
    #[arg(long, value_name = "DIR")]
    stage2: Option<PathBuf>,
    /// Stage III, after stage II: the x4 upscaler's folder or an IF stage-II folder.
    #[arg(long, value_name = "DIR")]
    stage3: Option<PathBuf>,
    /// Weight variant of every component (e.g. fp16).
    #[arg(long)]
    variant: Option<String>,
    #[arg(long, value_enum, default_value = "nti")]
    stage1_method: Stage1Arg,
    #[arg(long, value_enum, default_value = "iterinv")]
    sr_method: SrArg,
    /// DDIM steps of each stage.
    #[arg(long, default_value_t = 50)]
    pub(crate) steps: usize,
    /// Inner steps of both stages' loops (NTI's Adam steps, IterInv's gradient steps);
    /// default: each method's own (NTI 51, NTI-p2p 10, IterInv 21).
    #[arg(long)]
    pub(crate) inner_steps: Option<usize>,
    /// Stage I's inner steps (overrides --inner-steps).
    #[arg(long)]
    pub(crate) stage1_inner_steps: Option<usize>,
    /// The super-resolution stages' inner steps (overrides --inner-steps).
    #[arg(long)]
    pub(crate) stage2_inner_steps: Option<usize>,
    /// Fixed-point passes per timestep (fixed-point), or of IterInv's warm start (0: none).
    #[arg(long, default_value_t = 10)]
    pub(crate) passes: usize,
    /// IterInv (safe) stops a timestep once the mean squared step error is below this.
    #[arg(long, default_value = "1e-10")]
    pub(crate) tolerance: f64,
    /// Stage I's guidance scale for the reconstruction (and NTI).
    #[arg(long, default_value_t = 3.0)]
    pub(crate) guidance: f32,
    /// Noise level of stage II's condition, stage I's reconstruction (a timestep, 0..1000; for
    /// the upscaler also its class label). Default: IF stage II 250, the upscaler 100.
    #[arg(long)]
    noise_level: Option<usize>,
    /// Noise level of stage III's condition, stage II's reconstruction (default as
    /// --noise-level's).
    #[arg(long)]
    noise_level3: Option<usize>,
    /// Seed of the super-resolution stages' condition noise (and of `edit`'s mask noise).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// How a non-square photo becomes square.
    #[arg(long, value_enum, default_value = "crop")]
    resize: ResizeArg,
    /// Keep stage I's x₀ thresholding (IF's dynamic thresholding; NTI optimizes through it, as
    /// the IterInv code does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    stage1_thresholding: bool,
    /// Keep the IF super-resolution stages' x₀ thresholding. Off by default: a clamp cannot be
    /// inverted where it binds, so with it no super-resolution inversion is exact.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    stage2_thresholding: bool,
    /// Apply IF's caption cleaning to the prompt (the IterInv code only lower-cases and trims).
    #[arg(long)]
    clean_caption: bool,
}

#[derive(Args)]
#[command(after_help = "\
Regenerates stage1.png (and stage2.png, stage3.png) from inversion.safetensors + inversion.json
alone: the text embeddings are stored, so no text encoder runs. The models must be the ones the
inversion used (their fingerprints are checked); give --stage1 / --stage2 / --stage3 if they
moved.")]
pub struct ReconstructArgs {
    /// A folder `iterinv invert --out` wrote.
    dir: PathBuf,
    /// Where to write the PNGs (default: DIR itself).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Stage I pipeline folder, if not where the inversion found it.
    #[arg(long, value_name = "DIR")]
    stage1: Option<PathBuf>,
    /// Stage II pipeline folder, if not where the inversion found it.
    #[arg(long, value_name = "DIR")]
    stage2: Option<PathBuf>,
    /// Stage III's pipeline folder, if not where the inversion found it.
    #[arg(long, value_name = "DIR")]
    stage3: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    iterinv_version: &'a str,
    device: String,
    image: &'a Path,
    prompt: &'a str,
    stages: Vec<&'a StageReport>,
}

impl InvertArgs {
    /// The number flags, before any device or file is opened (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        self.inversion.check_numbers()
    }
}

impl InversionArgs {
    /// The number flags, before any device or file is opened (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        use crate::numbers::{finite, finite_non_negative, inner_steps, noise_level, steps};
        steps("steps", self.steps)?;
        finite("guidance", self.guidance.into())?;
        finite_non_negative("tolerance", self.tolerance)?;
        inner_steps("passes", self.passes, true)?;
        for (flag, v) in [
            ("inner-steps", self.inner_steps),
            ("stage1-inner-steps", self.stage1_inner_steps),
            ("stage2-inner-steps", self.stage2_inner_steps),
        ] {
            v.map_or(Ok(()), |v| inner_steps(flag, v, false))?;
        }
        for (flag, v) in [
            ("noise-level", self.noise_level),
            ("noise-level3", self.noise_level3),
        ] {
            v.map_or(Ok(()), |v| noise_level(flag, v))?;
        }
        Ok(())
    }

    /// The library's options for inverting a photo described by `prompt`.
    fn options(&self, prompt: &str) -> Result<InvertOptions> {
        let (stage1, upper) =
            crate::embedded::stages_or_builtin(&self.stage1, &self.stage2, &self.stage3)?;
        let mut opts = InvertOptions {
            prompt: prompt.to_string(),
            clean_caption: self.clean_caption,
            stage1,
            variant: self.variant.clone(),
            fit: match self.resize {
                ResizeArg::Crop => Fit::CropCenter,
                ResizeArg::Stretch => Fit::Stretch,
            },
            steps: self.steps,
            seed: self.seed,
            ..InvertOptions::default()
        };
        opts.stage1_settings.method = match self.stage1_method {
            Stage1Arg::Nti => Stage1Method::Nti,
            Stage1Arg::Npi => Stage1Method::Npi,
            Stage1Arg::Ddim => Stage1Method::Ddim,
            Stage1Arg::NtiP2p => Stage1Method::NtiP2p,
        };
        opts.stage1_settings.guidance = self.guidance;
        opts.stage1_settings.thresholding = self.stage1_thresholding;
        opts.stage1_settings.inner_steps = self.stage1_inner_steps.or(self.inner_steps);
        // Every super-resolution stage inverts with the same method and inner-loop settings.
        for (folder, noise_level) in upper.iter().zip([self.noise_level, self.noise_level3]) {
            let mut stage = SrStage::with_defaults(folder)?;
            let s = &mut stage.settings;
            s.method = match self.sr_method {
                SrArg::Iterinv => SrMethod::IterInv,
                SrArg::IterinvFaithful => SrMethod::IterInvFaithful,
                SrArg::FixedPoint => SrMethod::FixedPoint,
                SrArg::Ddim => SrMethod::Ddim,
            };
            if let Some(k) = self.stage2_inner_steps.or(self.inner_steps) {
                s.inner_steps = k;
            }
            s.passes = self.passes;
            s.tolerance = self.tolerance;
            s.noise_level = noise_level.unwrap_or(s.noise_level);
            s.thresholding = self.stage2_thresholding;
            opts.super_resolution.push(stage);
        }
        Ok(opts)
    }

    /// The pipeline folders given, as overrides of an inversion's recorded ones.
    pub fn folder_overrides(&self) -> FolderOverrides {
        FolderOverrides {
            stage1: self.stage1.clone(),
            super_resolution: vec![self.stage2.clone(), self.stage3.clone()],
        }
    }
}

pub fn invert(gpu: &Gpu, args: InvertArgs) -> Result<()> {
    stop_on_ctrl_c();
    invert_photo(gpu, &args.image, &args.prompt, &args.inversion, &args.out)?;
    Ok(())
}

/// Invert `image` and write the artifacts, each stage's PNGs and report.json into `out`.
pub fn invert_photo(
    gpu: &Gpu,
    image: &Path,
    prompt: &str,
    flags: &InversionArgs,
    out: &Path,
) -> Result<Artifacts> {
    let opts = flags.options(prompt)?;
    let mut bars = Bars::default();
    let result = inversion::invert(gpu, image, &opts, &mut |e| bars.update(e));
    bars.finish();
    let result = result?;

    result.artifacts.save(out)?;
    for (stage, s) in result.stages.iter().enumerate() {
        let name = format!("stage{}", stage + 1);
        save_png(&s.reconstruction, 0, &out.join(format!("{name}.png")))?;
        save_png(&s.input, 0, &out.join(format!("input-{name}.png")))?;
        let r = &s.report;
        eprintln!(
            "{name} ({}): PSNR {} dB, SSIM {}, {:.1} s, {} inner iterations",
            r.method,
            r.psnr.map_or("inf".into(), |p| format!("{p:.2}")),
            r.ssim.map_or("-".into(), |s| format!("{s:.4}")),
            r.seconds,
            r.iterations
        );
    }
    let report = Report {
        iterinv_version: iterinv::VERSION,
        device: gpu
            .info()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        image,
        prompt,
        stages: result.stages.iter().map(|s| &s.report).collect(),
    };
    let json = serde_json::to_vec_pretty(&report).context("serializing report.json")?;
    write_atomic(&out.join("report.json"), &json)?;
    eprintln!("wrote {}", out.display());
    Ok(result.artifacts)
}

pub fn reconstruct(gpu: &Gpu, args: ReconstructArgs) -> Result<()> {
    let artifacts = Artifacts::load(&args.dir)?;
    let folders = FolderOverrides {
        stage1: args.stage1.clone(),
        super_resolution: vec![args.stage2.clone(), args.stage3.clone()],
    };
    stop_on_ctrl_c();
    let mut bars = Bars::default();
    let images = inversion::reconstruct(gpu, &artifacts, &folders, &mut |e| bars.update(e));
    bars.finish();
    let out = args.out.as_ref().unwrap_or(&args.dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (stage, image) in images?.iter().enumerate() {
        let path = out.join(format!("stage{}.png", stage + 1));
        save_png(image, 0, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
