//! Inversion of a real photo through the cascade, and its exact reconstruction.
//!
//! [`invert`] finds, stage by stage, what makes the cascade regenerate the photo: at stage I
//! the DDIM-inverted noise plus (NTI) per-step null embeddings; at each super-resolution stage,
//! whose condition is the previous stage's reconstruction (noised once), the x_T found by
//! IterInv — on pixels (IF stage II) or on the VAE's latent (the x4 upscaler). Everything is
//! kept in [`Artifacts`]; [`reconstruct`] replays them (the images are bit-identical to
//! `invert`'s on the same device: both run the same code on the same tensors).

pub mod artifacts;
pub mod latent;
pub mod memory;
mod photo;
mod replay;
mod report;
pub mod stage1;
pub mod super_resolution;

use std::path::{Path, PathBuf};
use std::time::Instant;

use iterinv_engine::sched::SchedulerKind;
use iterinv_models::{Error, Result, UNet};

pub use super::progress::{Decoder, Estimate, Event, Progress, StageRun};
pub use artifacts::{Artifacts, ArtifactsMeta, HostTensor, StageMeta};
pub use replay::{open_folders, reconstruct, replay_super_resolution, FolderOverrides, StageText};
pub use report::StageReport;
pub use stage1::Stage1Settings;

pub(crate) use photo::{GpuPhoto, Photo, PhotoSource};
pub use super_resolution::SrSettings;

use super::cascade::encode_text;
use super::folder::{PipelineFolder, Stage};
use super::noise::{NoiseSource, SeededNoise};
use crate::image_io::{Fit, Rgb};
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

/// How a super-resolution stage is inverted.
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
    /// The method [`Self::name`] names; an unknown name is an error listing the known ones.
    pub fn from_name(name: &str) -> Result<Self> {
        parse_method(&Self::ALL, name, Self::name)
    }
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
    /// The method [`Self::name`] names; an unknown name is an error listing the known ones.
    pub fn from_name(name: &str) -> Result<Self> {
        parse_method(&Self::ALL, name, Self::name)
    }
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

/// One super-resolution stage of an inversion: its folder and how it is inverted.
#[derive(Clone, Debug)]
pub struct SrStage {
    /// An IF stage-II folder (`IFSuperResolutionPipeline`, inverted on pixels) or the SD x4
    /// upscaler's (`StableDiffusionUpscalePipeline`, inverted on its VAE's latent).
    pub folder: PathBuf,
    pub settings: SrSettings,
}

impl SrStage {
    /// The stage in `folder` with the default method (`iterinv`) and its kind's noise level: 250
    /// for IF stage II (diffusers' default), 100 for the x4 upscaler (as DeepFloyd-IF and the
    /// IterInv paper's code chain it).
    pub fn with_defaults(folder: &Path) -> Result<SrStage> {
        let kind = PipelineFolder::open_super_resolution(folder)?.stage();
        Ok(SrStage {
            folder: folder.to_path_buf(),
            settings: SrSettings {
                noise_level: if kind == Stage::Upscaler { 100 } else { 250 },
                ..SrSettings::default()
            },
        })
    }
}

/// Everything an inversion needs besides the image.
#[derive(Clone, Debug)]
pub struct InvertOptions {
    pub prompt: String,
    /// IF's caption cleaning; off by default, as the IterInv code uses `prompt.lower().strip()`.
    pub clean_caption: bool,
    pub stage1: PathBuf,
    pub stage1_settings: Stage1Settings,
    /// The stages after stage I, in order, each conditioned on the previous one's
    /// reconstruction (none: only stage I is inverted).
    pub super_resolution: Vec<SrStage>,
    pub variant: Option<String>,
    pub fit: Fit,
    /// DDIM steps of every stage (the reference: 50).
    pub steps: usize,
    /// Seed of the super-resolution stages' condition noise.
    pub seed: u64,
}

impl Default for InvertOptions {
    fn default() -> Self {
        InvertOptions {
            prompt: String::new(),
            clean_caption: false,
            stage1: PathBuf::new(),
            stage1_settings: Stage1Settings {
                method: Stage1Method::Nti,
                guidance: 3.0,
                inner_steps: None,
                thresholding: true,
                untie: Some(stage1::DEFAULT_UNTIE),
            },
            super_resolution: Vec::new(),
            variant: None,
            fit: Fit::CropCenter,
            steps: 50,
            seed: 0,
        }
    }
}

/// One stage's outcome: the input as the stage sees it, the reconstruction and the report. The
/// images are `[1, 3, S, S]` in [−1, 1] on the GPU (into a texture with
/// [`crate::texture::write_texture`]).
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

/// The side of each stage's image, from the configs alone: stage I's and IF stage II's
/// `sample_size`, the upscaler's the previous stage's times the VAE's factor.
fn stage_sizes(stage1: &PipelineFolder, super_resolution: &[PipelineFolder]) -> Result<Vec<usize>> {
    let mut sizes = vec![unet_size(stage1)?];
    for folder in super_resolution {
        let size = match folder.stage() {
            Stage::Upscaler => {
                let vae = iterinv_models::config::VaeConfig::load(&folder.component("vae")?, None)?;
                sizes.last().expect("stage I's size") * vae.size_multiple()
            }
            _ => unet_size(folder)?,
        };
        sizes.push(size);
    }
    Ok(sizes)
}

/// What one super-resolution stage of an inversion leaves: its images and report, its record
/// for the sidecar and its tensors for the artifacts.
pub(crate) struct SrStageResult {
    pub output: StageOutput,
    pub meta: StageMeta,
    pub tensors: Vec<(String, HostTensor)>,
}

/// What every super-resolution stage of one inversion is given besides its folder and settings.
pub(crate) struct SrInput<'a> {
    pub gpu: &'a Gpu,
    pub opts: &'a InvertOptions,
    pub photo: &'a GpuPhoto<'a>,
    /// The stage's number (2 for the first after stage I): it names the stage's tensors
    /// (`stage3.x_t`), condition noise draw (`stage3_condition`) and report.
    pub number: usize,
    /// The previous stage's reconstruction: this stage's condition.
    pub low_res: &'a Tensor,
    /// The prompt encoded by stage I's T5 (what IF's super-resolution stages take).
    pub t5_text: &'a Tensor,
}

impl SrInput<'_> {
    pub fn name(&self) -> String {
        format!("stage{}", self.number)
    }

    /// The photo as this stage sees it, `size` a side.
    pub fn target(&self, size: usize) -> Result<Tensor> {
        self.photo.for_stage(size, self.opts.fit)
    }

    /// The stage's condition noise: a draw of the inversion's seed named by the stage's number.
    pub fn condition_noise(&self, shape: &[usize]) -> Result<Tensor> {
        SeededNoise::new(self.gpu, self.opts.seed)
            .noise(&format!("{}_condition", self.name()), shape)
    }

    /// The stage's record in the sidecar (guidance 1: super-resolution inverts unguided).
    pub fn meta(
        &self,
        folder: &PipelineFolder,
        size: usize,
        settings: &SrSettings,
        thresholding: bool,
    ) -> Result<StageMeta> {
        Ok(StageMeta {
            kind: folder.stage(),
            folder: folder.dir().to_path_buf(),
            fingerprint: artifacts::fingerprint(folder)?,
            size,
            method: settings.method.name().into(),
            steps: self.opts.steps,
            guidance: 1.0,
            thresholding,
            noise_level: Some(settings.noise_level),
            settings: settings.record(),
        })
    }
}

/// Invert the photo at `image` through the cascade of `opts`. The photo is decoded once and
/// uploaded at full size for the run (12 bytes a pixel on the GPU), each stage resizing it to
/// its own size on the GPU.
pub fn invert(
    gpu: &Gpu,
    image: &Path,
    opts: &InvertOptions,
    progress: Progress,
) -> Result<InvertOutput> {
    invert_rgb(
        gpu,
        &crate::image_io::load_rgb(image)?,
        image,
        opts,
        progress,
    )
}

/// [`invert`] of a photo already in memory (e.g. [`Rgb::from_pixels`]); `origin` names it in
/// errors and is recorded in the artifacts as the image. The same pixels give the same result
/// as their file does.
pub fn invert_rgb(
    gpu: &Gpu,
    photo: &Rgb,
    origin: &Path,
    opts: &InvertOptions,
    progress: Progress,
) -> Result<InvertOutput> {
    let source = PhotoSource::Pixels(photo);
    invert_photo(gpu, Photo { source, origin }, opts, progress)
}

/// [`invert`] of a photo in a texture of the host application, on the device `gpu` shares with
/// it ([`Gpu::from_device`]): rgba8unorm, rgba8unorm-srgb, rgba16float or rgba32float with
/// COPY_SRC usage, read once when the run starts (see [`crate::texture`] for what its texels
/// mean). `origin` names it in errors and is recorded in the artifacts as the image. An 8-bit
/// texture holding a PNG's pixels gives the same result as the PNG, bit for bit; the
/// reconstructions go back to textures with [`crate::texture::write_texture`].
pub fn invert_texture(
    gpu: &Gpu,
    texture: &wgpu::Texture,
    origin: &Path,
    opts: &InvertOptions,
    progress: Progress,
) -> Result<InvertOutput> {
    let source = PhotoSource::Texture(texture);
    invert_photo(gpu, Photo { source, origin }, opts, progress)
}

/// [`invert`] of a photo from any source.
pub(crate) fn invert_photo(
    gpu: &Gpu,
    photo: Photo,
    opts: &InvertOptions,
    progress: Progress,
) -> Result<InvertOutput> {
    let origin = photo.origin;
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
    let folder1 = PipelineFolder::open(&opts.stage1, Stage::One)?;
    let folders = opts
        .super_resolution
        .iter()
        .map(|s| PipelineFolder::open_super_resolution(&s.folder))
        .collect::<Result<Vec<_>>>()?;
    let mut meta = ArtifactsMeta::new(
        origin.to_path_buf(),
        fit_name(opts.fit),
        &opts.prompt,
        opts.clean_caption,
    );
    meta.variant = opts.variant.clone();
    meta.seed = opts.seed;
    meta.precision = gpu.precision().name().into();
    let variant = opts.variant.as_deref();
    // With a memory budget, refuse a stage that would not fit before anything runs.
    if let (Some(budget), false) = (gpu.memory_budget(), gpu.is_planning()) {
        memory::check_photo_budget(gpu, photo, opts, budget)?;
    }
    // Check the image's size first: a small one fails before any model loads.
    let needed = stage_sizes(&folder1, &folders)?
        .into_iter()
        .max()
        .expect("stage I's size");
    let (width, height) = photo.size();
    if height.min(width) < needed {
        return Err(Error::Input {
            what: format!("image {}", origin.display()),
            detail: format!(
                "is {width}×{height}; this cascade needs at least {needed} pixels on each side"
            ),
        });
    }
    let photo = photo.on_gpu(gpu)?;

    (progress)(&Event::loading(1))?;
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
    let input1 = photo.for_stage(size1, opts.fit)?;
    let mut run = StageRun::new(1, &mut *progress);
    let start = Instant::now();
    let latents = stage1::invert(&unet1, &sched1, &input1, &text.cond, &uncond, &s1, &mut run)?;
    let seconds = start.elapsed().as_secs_f64();
    run.event(Event::phase("reconstruction", opts.steps))?;
    let rec1 = stage1::reconstruct(
        &unet1,
        &sched1,
        &latents,
        &text.cond,
        &uncond,
        s1.method,
        s1.guidance,
        &mut *run.on_step(),
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
        kind: Stage::One,
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
        reconstruction: rec1,
        report: report1,
    }];

    // Each super-resolution stage, conditioned on the previous stage's reconstruction.
    for (i, (stage, folder)) in opts.super_resolution.iter().zip(&folders).enumerate() {
        (progress)(&Event::loading(i + 2))?;
        let input = SrInput {
            gpu,
            opts,
            photo: &photo,
            number: i + 2,
            low_res: &stages.last().expect("stage I ran").reconstruction,
            t5_text: &text.cond,
        };
        let result = match folder.stage() {
            Stage::Upscaler => latent::run(&input, folder, &stage.settings, &mut *progress)?,
            _ => super_resolution::run(&input, folder, &stage.settings, &mut *progress)?,
        };
        gpu.trim_pool();
        tensors.extend(result.tensors);
        meta.super_resolution.push(result.meta);
        stages.push(result.output);
    }
    Ok(InvertOutput {
        artifacts: Artifacts { meta, tensors },
        stages,
    })
}
