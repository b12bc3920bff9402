//! Inversion of a real photo through the IF cascade, and its exact reconstruction.
//!
//! [`invert`] finds, stage by stage, what makes the cascade regenerate the photo: at stage I
//! the DDIM-inverted noise plus (NTI) per-step null embeddings; at stage II, whose input is the
//! stage-I reconstruction upscaled and noised, the latent found by IterInv. Everything is kept
//! in [`Artifacts`]; [`reconstruct`] replays them (the images are bit-identical to `invert`'s on
//! the same device: both run the same code on the same tensors).

pub mod artifacts;
pub mod latent;
mod replay;
mod report;
pub mod stage1;
pub mod stage2;

use std::path::{Path, PathBuf};
use std::time::Instant;

use iterinv_engine::invert::StepReport;
use iterinv_engine::sched::SchedulerKind;
use iterinv_models::{Error, Result, UNet};

pub use artifacts::{Artifacts, ArtifactsMeta, HostTensor, StageMeta};
pub use replay::{reconstruct, FolderOverrides};
pub use report::StageReport;
pub use stage1::Stage1Settings;
pub use stage2::Stage2Settings;

use super::cascade::encode_text;
use super::folder::{PipelineFolder, Stage};
use super::noise::{NoiseSource, SeededNoise};
use crate::image_io::{load_for_stage, Fit};
use crate::{Gpu, Tensor};

/// How stage I is inverted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage1Method {
    /// Null-text inversion as the IterInv code runs it (51 Adam steps a timestep, lr 1e-3).
    Nti,
    /// Negative-prompt inversion: the prompt is the null text; no optimization.
    Npi,
    /// DDIM inversion alone, reconstructed with guidance (the baseline).
    Ddim,
    /// Prompt-to-prompt's NTI (10 steps, lr 1e-2, mean loss, early stop).
    NtiP2p,
}

/// How the super-resolution stage is inverted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrMethod {
    /// IterInv with a loss check (Armijo backtracking), a stop once converged, and a fixed-point
    /// warm start: the default.
    IterInv,
    /// IterInv exactly as the paper's code (21 plain gradient steps; may diverge).
    IterInvFaithful,
    /// The forward-only fixed point (no backward pass).
    FixedPoint,
    /// Plain DDIM inversion (the baseline).
    Ddim,
}

impl Stage1Method {
    pub const ALL: [Stage1Method; 4] = [Self::Nti, Self::Npi, Self::Ddim, Self::NtiP2p];
    pub fn name(self) -> &'static str {
        match self {
            Self::Nti => "nti",
            Self::Npi => "npi",
            Self::Ddim => "ddim",
            Self::NtiP2p => "nti-p2p",
        }
    }
}

impl SrMethod {
    pub const ALL: [SrMethod; 4] = [
        Self::IterInv,
        Self::IterInvFaithful,
        Self::FixedPoint,
        Self::Ddim,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::IterInv => "iterinv",
            Self::IterInvFaithful => "iterinv-faithful",
            Self::FixedPoint => "fixed-point",
            Self::Ddim => "ddim",
        }
    }
}

pub(crate) fn parse_method<M: Copy>(
    all: &[M],
    name: &str,
    names: impl Fn(M) -> &'static str,
) -> Result<M> {
    all.iter()
        .copied()
        .find(|&m| names(m) == name)
        .ok_or_else(|| Error::Input {
            what: format!("method `{name}`"),
            detail: format!(
                "is unknown; expected one of {}",
                all.iter().map(|&m| names(m)).collect::<Vec<_>>().join(", ")
            ),
        })
}

/// Everything an inversion needs besides the image.
#[derive(Clone, Debug)]
pub struct InvertOptions {
    pub prompt: String,
    /// IF's caption cleaning; off by default, as the IterInv code uses `prompt.lower().strip()`.
    pub clean_caption: bool,
    pub stage1: PathBuf,
    /// Without it only stage I is inverted.
    pub stage2: Option<PathBuf>,
    /// The x4 upscaler's folder: a latent stage after the last IF stage (its image 4× larger).
    pub stage3: Option<PathBuf>,
    pub variant: Option<String>,
    pub fit: Fit,
    /// DDIM steps of both stages (the reference: 50).
    pub steps: usize,
    pub stage1_settings: Stage1Settings,
    pub stage2_settings: Stage2Settings,
    /// The latent stage's method and noise level (the same methods as stage II's).
    pub stage3_settings: Stage2Settings,
    /// Seed of the super-resolution stages' condition noise.
    pub seed: u64,
}

impl Default for InvertOptions {
    fn default() -> Self {
        InvertOptions {
            prompt: String::new(),
            clean_caption: false,
            stage1: PathBuf::new(),
            stage2: None,
            variant: None,
            fit: Fit::CropCenter,
            steps: 50,
            stage1_settings: Stage1Settings {
                method: Stage1Method::Nti,
                guidance: 3.0,
                inner_steps: None,
                thresholding: true,
            },
            stage2_settings: Stage2Settings::default(),
            stage3: None,
            // IF chains the upscaler at noise level 100 (the paper's code too).
            stage3_settings: Stage2Settings {
                noise_level: 100,
                ..Stage2Settings::default()
            },
            seed: 0,
        }
    }
}

/// A progress notice: the stage, what it is doing, and the timesteps done of `total` (with the
/// last step's final inner loss, for the inner-loop methods).
#[derive(Clone, Debug)]
pub struct Event {
    pub stage: Stage,
    pub phase: &'static str,
    pub step: usize,
    pub total: usize,
    pub loss: Option<f64>,
}

impl Event {
    fn phase(phase: &'static str, total: usize) -> Event {
        Event {
            stage: Stage::One,
            phase,
            step: 0,
            total,
            loss: None,
        }
    }
}

/// Called with each [`Event`]; an error (e.g. `engine::Error::Interrupted` on Ctrl-C) stops
/// the run and is returned by it.
pub type Progress<'a> = &'a mut dyn FnMut(&Event) -> iterinv_engine::Result<()>;

/// The engine's per-timestep callback, boxed.
type StepCallback<'a> = Box<dyn FnMut(&StepReport) -> iterinv_engine::Result<()> + 'a>;

/// One stage's progress and per-step record while it runs.
pub struct StageRun<'a> {
    stage: Stage,
    current: Event,
    progress: &'a mut dyn FnMut(&Event) -> iterinv_engine::Result<()>,
    steps: Vec<StepReport>,
}

impl<'a> StageRun<'a> {
    fn new(
        stage: Stage,
        progress: &'a mut dyn FnMut(&Event) -> iterinv_engine::Result<()>,
    ) -> Self {
        StageRun {
            stage,
            current: Event::phase("", 0),
            progress,
            steps: Vec::new(),
        }
    }

    fn event(&mut self, mut e: Event) -> iterinv_engine::Result<()> {
        e.stage = self.stage;
        self.current = e.clone();
        (self.progress)(&e)
    }

    /// A callback for the engine's per-timestep reports.
    fn on_step(&mut self) -> StepCallback<'_> {
        Box::new(move |r| {
            self.current.step += 1;
            self.current.loss = Some(r.final_loss);
            (self.progress)(&self.current)
        })
    }

    fn record_steps(&mut self, reports: &[StepReport]) {
        self.steps = reports.to_vec();
    }
}

/// One stage's outcome: the input as the stage sees it, the reconstruction and the report.
pub struct StageOutput {
    pub input: Tensor,
    pub reconstruction: Tensor,
    pub report: StageReport,
}

/// An inversion's artifacts and its per-stage results.
pub struct InvertOutput {
    pub artifacts: Artifacts,
    pub stages: Vec<StageOutput>,
}

fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::CropCenter => "crop-center",
        Fit::Stretch => "stretch",
    }
}

/// The DDIM scheduler an inversion walks and its reconstruction replays: the folder's config,
/// with its x₀ thresholding and clipping kept or turned off. A clamp has no inverse where it
/// binds (its Jacobian is zero there), so with them on a step can map two latents to one image
/// and no inversion is exact; IF's stage I keeps them (NTI optimizes through them, as the
/// IterInv code does), the super-resolution stage turns them off by default (the IterInv code's
/// upscaler has none).
pub fn inversion_scheduler(
    folder: &PipelineFolder,
    steps: usize,
    thresholding: bool,
) -> Result<iterinv_engine::sched::Scheduler> {
    let loaded = folder.scheduler("scheduler", Some(SchedulerKind::Ddim))?;
    let mut scheduler = if thresholding {
        loaded
    } else {
        let mut config = loaded.config().clone();
        config.thresholding = false;
        config.clip_sample = false;
        iterinv_engine::sched::Scheduler::new(SchedulerKind::Ddim, config)?
    };
    scheduler.set_timesteps(steps)?;
    Ok(scheduler)
}

/// A stage's resolution, from its UNet's config alone.
fn unet_size(folder: &PipelineFolder) -> Result<usize> {
    iterinv_models::config::UNetConfig::load(&folder.component("unet")?, None)?.square_sample_size()
}

pub(crate) fn open_stages(
    stage1: &Path,
    stage2: Option<&Path>,
) -> Result<(PipelineFolder, Option<PipelineFolder>)> {
    let one = PipelineFolder::open(stage1, Stage::One)?;
    let two = stage2
        .map(|d| PipelineFolder::open(d, Stage::Two))
        .transpose()?;
    Ok((one, two))
}

/// Invert the photo at `image` through the cascade of `opts`.
pub fn invert(
    gpu: &Gpu,
    image: &Path,
    opts: &InvertOptions,
    progress: Progress,
) -> Result<InvertOutput> {
    if opts.prompt.trim().is_empty() {
        return Err(Error::Input {
            what: "prompt".into(),
            detail: "is empty; inversion needs the text that describes the photo".into(),
        });
    }
    if opts.steps == 0 {
        return Err(Error::Input {
            what: "steps".into(),
            detail: "must be at least 1".into(),
        });
    }
    let (folder1, folder2) = open_stages(&opts.stage1, opts.stage2.as_deref())?;
    let folder3 = opts
        .stage3
        .as_deref()
        .map(|d| PipelineFolder::open(d, Stage::Upscaler))
        .transpose()?;
    let mut meta = ArtifactsMeta::new(
        image.to_path_buf(),
        fit_name(opts.fit),
        &opts.prompt,
        opts.clean_caption,
    );
    meta.variant = opts.variant.clone();
    meta.seed = opts.seed;
    let variant = opts.variant.as_deref();
    // Check the image first: a bad or small file fails before any model loads.
    let photo = crate::image_io::load_rgb(image)?;
    let mut needed = unet_size(&folder1)?;
    if let Some(f) = &folder2 {
        needed = needed.max(unet_size(f)?);
    }
    if let Some(f) = &folder3 {
        // The latent stage's image is the last IF stage's, times the VAE's factor.
        let vae = iterinv_models::config::VaeConfig::load(&f.component("vae")?, None)?;
        needed *= vae.size_multiple();
    }
    if photo.height.min(photo.width) < needed {
        return Err(Error::Input {
            what: format!("image {}", image.display()),
            detail: format!(
                "is {}×{}; this cascade needs at least {needed} pixels on each side",
                photo.width, photo.height
            ),
        });
    }
    drop(photo);

    let text = encode_text(gpu, &folder1, &opts.prompt, "", opts.clean_caption, variant)?;
    let uncond = text.uncond.clone().expect("encode_text returns both texts");
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert("text.cond".to_string(), HostTensor::read(&text.cond)?);
    tensors.insert("text.uncond".to_string(), HostTensor::read(&uncond)?);

    // Stage I.
    let s1 = opts.stage1_settings;
    let unet1 = UNet::load(gpu, &folder1.component("unet")?, variant)?;
    let size1 = unet1.sample_size()?;
    let sched1 = inversion_scheduler(&folder1, opts.steps, s1.thresholding)?;
    let input1 = load_for_stage(gpu, image, size1, opts.fit)?;
    let mut run = StageRun::new(Stage::One, &mut *progress);
    let start = Instant::now();
    let latents = stage1::invert(&unet1, &sched1, &input1, &text.cond, &uncond, &s1, &mut run)?;
    let seconds = start.elapsed().as_secs_f64();
    run.event(Event::phase("reconstruction", 0))?;
    let rec1 = stage1::reconstruct(
        &unet1,
        &sched1,
        &latents,
        &text.cond,
        &uncond,
        s1.method,
        s1.guidance,
    )?;
    let report1 = StageReport::new(
        "stage1",
        s1.method.name(),
        &input1,
        &rec1,
        seconds,
        &run.steps,
    )?;
    tensors.insert("stage1.x_t".to_string(), HostTensor::read(&latents.x_t)?);
    if let Some(nulls) = &latents.nulls {
        let refs: Vec<&Tensor> = nulls.iter().collect();
        tensors.insert(
            "stage1.nulls".to_string(),
            HostTensor::read(&Tensor::concat(&refs, 0)?)?,
        );
    }
    meta.stage1 = StageMeta {
        folder: opts.stage1.clone(),
        fingerprint: artifacts::fingerprint(&folder1)?,
        size: size1,
        method: s1.method.name().into(),
        steps: opts.steps,
        guidance: s1.guidance,
        thresholding: s1.thresholding,
        noise_level: None,
        settings: s1.record(),
    };
    drop((unet1, latents));
    gpu.trim_pool();
    let mut stages = vec![StageOutput {
        input: input1,
        reconstruction: rec1.clone(),
        report: report1,
    }];

    // Stage II.
    if let Some(folder2) = &folder2 {
        let s2 = opts.stage2_settings;
        let model = stage2::Stage2Model::load(gpu, folder2, opts.steps, s2.thresholding, variant)?;
        let size2 = model.unet.sample_size()?;
        let input2 = load_for_stage(gpu, image, size2, opts.fit)?;
        let noise = SeededNoise::new(gpu, opts.seed).noise("stage2_condition", input2.shape())?;
        let condition = model.condition(&rec1, &noise, s2.noise_level)?;
        let mut run = StageRun::new(Stage::Two, &mut *progress);
        let start = Instant::now();
        let x_t = stage2::invert(
            model.denoising(),
            &condition,
            &input2,
            &text.cond,
            &s2,
            &mut run,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        run.event(Event::phase("reconstruction", 0))?;
        let rec2 = stage2::reconstruct(model.denoising(), &condition, &x_t, &text.cond)?;
        let report = StageReport::new(
            "stage2",
            s2.method.name(),
            &input2,
            &rec2,
            seconds,
            &run.steps,
        )?;
        tensors.insert("stage2.x_t".to_string(), HostTensor::read(&x_t)?);
        tensors.insert(
            "stage2.condition_noise".to_string(),
            HostTensor::read(&noise)?,
        );
        meta.stage2 = Some(StageMeta {
            folder: folder2.dir().to_path_buf(),
            fingerprint: artifacts::fingerprint(folder2)?,
            size: size2,
            method: s2.method.name().into(),
            steps: opts.steps,
            guidance: 1.0,
            thresholding: s2.thresholding,
            noise_level: Some(s2.noise_level),
            settings: s2.record(),
        });
        drop(model);
        gpu.trim_pool();
        stages.push(StageOutput {
            input: input2,
            reconstruction: rec2,
            report,
        });
    }

    // The latent stage (the x4 upscaler), conditioned on the last stage's reconstruction.
    if let Some(folder3) = &folder3 {
        let s3 = opts.stage3_settings;
        let low_res = stages.last().expect("stage I ran").reconstruction.clone();
        let text3 = super::upscaler::encode_text(gpu, folder3, &opts.prompt, "", variant)?;
        let model = latent::LatentModel::load(gpu, folder3, opts.steps, variant)?;
        let size3 = low_res.dim(2) * model.vae.downscale();
        let input3 = load_for_stage(gpu, image, size3, opts.fit)?;
        let noise = SeededNoise::new(gpu, opts.seed).noise("stage3_condition", low_res.shape())?;
        let condition = model.condition(&low_res, &noise, s3.noise_level)?;
        let start = Instant::now();
        let out = latent::invert_image(
            &model,
            &condition,
            &input3,
            &text3.cond,
            &s3,
            &mut *progress,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        // Named by position, as the written images are (stage3 after stage II, else stage2).
        let name = format!("stage{}", stages.len() + 1);
        let report = StageReport::new(
            &name,
            s3.method.name(),
            &input3,
            &out.reconstruction,
            seconds,
            &out.steps,
        )?
        .with_latent(
            &out.latent,
            &out.reconstructed_latent,
            &input3,
            &out.round_trip,
        )?;
        tensors.insert("stage3.x_t".to_string(), HostTensor::read(&out.x_t)?);
        tensors.insert(
            "stage3.condition_noise".to_string(),
            HostTensor::read(&noise)?,
        );
        tensors.insert(
            "stage3.text.cond".to_string(),
            HostTensor::read(&text3.cond)?,
        );
        meta.stage3 = Some(StageMeta {
            folder: folder3.dir().to_path_buf(),
            fingerprint: artifacts::fingerprint(folder3)?,
            size: size3,
            method: s3.method.name().into(),
            steps: opts.steps,
            guidance: 1.0,
            thresholding: false,
            noise_level: Some(s3.noise_level),
            settings: s3.record(),
        });
        drop(model);
        gpu.trim_pool();
        stages.push(StageOutput {
            input: input3,
            reconstruction: out.reconstruction,
            report,
        });
    }
    Ok(InvertOutput {
        artifacts: Artifacts { meta, tensors },
        stages,
    })
}
