//! The flags that choose a cascade and how it is inverted, shared by `iterinv invert` and
//! `iterinv eval`, and the [`InvertOptions`] they make.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use iterinv::eval::MethodSpec;
use iterinv::image_io::Fit;
use iterinv::pipeline::inversion::{
    FolderOverrides, InvertOptions, SrMethod, SrStage, Stage1Method,
};
use serde::Serialize;

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
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

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
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

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ResizeArg {
    /// Centre-crop to a square, then resize (bicubic, antialiased).
    Crop,
    /// Resize both sides (the IterInv reference's behaviour; distorts non-square photos).
    Stretch,
}

/// The cascade's folders and the inversion's settings (everything but the image and prompt).
#[derive(Args, Serialize)]
pub struct CascadeArgs {
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
    /// NTI's untying of the null embedding's identical rows (its padding tokens, which the
    /// gradient cannot tell apart) before optimizing them: seeded noise of this size relative to
    /// the embedding. 0 runs the reference loop with the rows tied (IF's own code; it reconstructs
    /// worse: BENCHMARKS.md, "Null-text inversion against PyTorch").
    #[arg(long, default_value = "1e-3", value_name = "R")]
    pub(crate) stage1_untie: f32,
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

/// Stage I's folder and the super-resolution stages' folders, in order.
pub type Folders = (PathBuf, Vec<PathBuf>);

impl CascadeArgs {
    /// The number flags, before any device or file is opened (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        use crate::numbers::{finite, finite_non_negative, inner_steps, noise_level, steps};
        steps("steps", self.steps)?;
        finite("guidance", self.guidance.into())?;
        finite_non_negative("tolerance", self.tolerance)?;
        finite_non_negative("stage1-untie", self.stage1_untie.into())?;
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

    /// The pipeline folders given, as overrides of an inversion's recorded ones (`edit` of a
    /// saved inversion).
    pub fn folder_overrides(&self) -> FolderOverrides {
        FolderOverrides {
            stage1: self.stage1.clone(),
            super_resolution: vec![self.stage2.clone(), self.stage3.clone()],
        }
    }

    /// The stage folders given, or the built-in cascade's (see embedded.rs).
    pub fn folders(&self) -> Result<Folders> {
        crate::embedded::stages_or_builtin(&self.stage1, &self.stage2, &self.stage3)
    }

    /// The configuration --stage1-method and --sr-method choose.
    pub fn method(&self) -> MethodSpec {
        MethodSpec {
            stage1: match self.stage1_method {
                Stage1Arg::Nti => Stage1Method::Nti,
                Stage1Arg::Npi => Stage1Method::Npi,
                Stage1Arg::Ddim => Stage1Method::Ddim,
                Stage1Arg::NtiP2p => Stage1Method::NtiP2p,
            },
            sr: match self.sr_method {
                SrArg::Iterinv => SrMethod::IterInv,
                SrArg::IterinvFaithful => SrMethod::IterInvFaithful,
                SrArg::FixedPoint => SrMethod::FixedPoint,
                SrArg::Ddim => SrMethod::Ddim,
            },
        }
    }

    /// The inversion of `prompt` through `folders` with these flags, by `method` (default: the
    /// flags' own).
    pub fn options(
        &self,
        folders: &Folders,
        prompt: &str,
        method: Option<MethodSpec>,
    ) -> Result<InvertOptions> {
        let method = method.unwrap_or_else(|| self.method());
        let (stage1, upper) = folders;
        let mut opts = InvertOptions {
            prompt: prompt.to_string(),
            clean_caption: self.clean_caption,
            stage1: stage1.clone(),
            variant: self.variant.clone(),
            fit: match self.resize {
                ResizeArg::Crop => Fit::CropCenter,
                ResizeArg::Stretch => Fit::Stretch,
            },
            steps: self.steps,
            seed: self.seed,
            ..InvertOptions::default()
        };
        opts.stage1_settings.method = method.stage1;
        opts.stage1_settings.guidance = self.guidance;
        opts.stage1_settings.thresholding = self.stage1_thresholding;
        opts.stage1_settings.inner_steps = self.stage1_inner_steps.or(self.inner_steps);
        opts.stage1_settings.untie = (self.stage1_untie > 0.0).then_some(self.stage1_untie);
        // Every super-resolution stage inverts with the same method and inner-loop settings.
        for (folder, noise_level) in upper.iter().zip([self.noise_level, self.noise_level3]) {
            let mut stage = SrStage::with_defaults(folder)?;
            let s = &mut stage.settings;
            s.method = method.sr;
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
}
