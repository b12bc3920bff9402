//! The super-resolution stages' inversion, and IF stage II as one: the previous stage's
//! reconstruction, upscaled and noised once at the noise level with a stored noise draw,
//! conditions the UNet; the 4× image (or the upscaler's latent, see `latent.rs`) is inverted at
//! guidance 1 by IterInv (safe or faithful), the forward-only fixed point, or plain DDIM
//! inversion (the baseline that fails here: the condition makes ε depend on more than x_t).

use std::time::Instant;

use iterinv_engine::invert::iterinv::{self, IterInvMode, IterInvOptions};
use iterinv_engine::invert::{ddim, Guidance, Progress as EngineProgress};
use iterinv_engine::sched::{Scheduler, SchedulerKind};
use iterinv_models::{Result, UNet};
use serde_json::json;

use super::artifacts::HostTensor;
use super::{Event, SrInput, SrMethod, SrStageResult, StageOutput, StageReport, StageRun};
use crate::pipeline::denoiser::IfDenoiser;
use crate::pipeline::folder::PipelineFolder;
use crate::pipeline::sampling::LowResCondition;
use crate::Tensor;

/// How a super-resolution stage is inverted.
#[derive(Clone, Copy, Debug)]
pub struct SrSettings {
    pub method: SrMethod,
    pub noise_level: usize,
    /// IterInv's gradient steps per timestep (the reference: 21).
    pub inner_steps: usize,
    /// Fixed-point passes per timestep (`fixed-point`), or of the warm start (`iterinv`).
    pub passes: usize,
    /// The safe mode stops a timestep once its mean squared step error is below this.
    pub tolerance: f64,
    /// x₀ thresholding/clipping in the DDIM steps (off by default: see
    /// [`super::inversion_scheduler`]).
    pub thresholding: bool,
}

impl Default for SrSettings {
    fn default() -> Self {
        SrSettings {
            method: SrMethod::IterInv,
            noise_level: 250,
            inner_steps: 21,
            passes: 10,
            tolerance: 1e-10,
            thresholding: false,
        }
    }
}

impl SrSettings {
    fn iterinv_options(&self, elements: usize) -> IterInvOptions {
        let mode = match self.method {
            SrMethod::IterInvFaithful => IterInvMode::Faithful,
            _ => IterInvMode::Safe {
                tolerance: self.tolerance * elements as f64,
                max_halvings: 8,
            },
        };
        IterInvOptions {
            inner_steps: self.inner_steps,
            mode,
            warm_start: match self.method {
                SrMethod::IterInv => self.passes,
                _ => 0,
            },
            ..IterInvOptions::default()
        }
    }

    /// The settings as recorded in the artifacts' sidecar.
    pub fn record(&self) -> serde_json::Value {
        match self.method {
            SrMethod::IterInv | SrMethod::IterInvFaithful => {
                let o = self.iterinv_options(1);
                json!({
                    "inner_steps": o.inner_steps,
                    "step_size": o.step_size,
                    "mode": format!("{:?}", o.mode),
                    "fixed_point_warm_start": o.warm_start,
                    "mean_squared_tolerance": self.tolerance,
                })
            }
            SrMethod::FixedPoint => json!({ "passes": self.passes }),
            SrMethod::Ddim => json!({}),
        }
    }
}

/// A super-resolution stage's UNet and DDIM scheduler: what its inversion and reconstruction run,
/// on pixels (IF stage II) or on a latent (the x4 upscaler, see `latent.rs`).
#[derive(Clone, Copy)]
pub struct SrDenoising<'a> {
    pub unet: &'a UNet,
    pub scheduler: &'a Scheduler,
}

impl<'a> SrDenoising<'a> {
    /// The UNet under `condition` and the text, unguided (super-resolution inverts at guidance 1).
    fn conditioned(
        self,
        condition: &'a LowResCondition,
        cond: &'a Tensor,
    ) -> (IfDenoiser<'a>, Guidance<'a>) {
        let denoiser = IfDenoiser {
            unet: self.unet,
            low_res: Some(condition),
        };
        let g = Guidance {
            cond,
            uncond: None,
            scale: 1.0,
        };
        (denoiser, g)
    }
}

/// IF stage II's model and schedulers, loaded once for inversion and reconstruction.
pub struct IfSrModel {
    pub unet: UNet,
    pub scheduler: Scheduler,
    pub noising: Scheduler,
}

impl IfSrModel {
    pub fn load(
        gpu: &crate::Gpu,
        folder: &PipelineFolder,
        steps: usize,
        thresholding: bool,
        variant: Option<&str>,
    ) -> Result<IfSrModel> {
        let unet = UNet::load(gpu, &folder.component("unet")?, variant)?;
        let scheduler = super::inversion_scheduler(folder, steps, thresholding)?;
        let noising = folder.scheduler("image_noising_scheduler", Some(SchedulerKind::Ddpm))?;
        Ok(IfSrModel {
            unet,
            scheduler,
            noising,
        })
    }

    /// What the inversion and the reconstruction run.
    pub fn denoising(&self) -> SrDenoising<'_> {
        SrDenoising {
            unet: &self.unet,
            scheduler: &self.scheduler,
        }
    }

    /// The condition: `low_res` upscaled (bilinear, align_corners, as diffusers) to the UNet's
    /// size and noised at `noise_level` with `noise`.
    pub fn condition(
        &self,
        low_res: &Tensor,
        noise: &Tensor,
        noise_level: usize,
    ) -> Result<LowResCondition> {
        let size = self.unet.sample_size()?;
        let upscaled = low_res.resize_bilinear(size, size)?;
        let upscaled = self.noising.add_noise(&upscaled, noise, &[noise_level])?;
        Ok(LowResCondition {
            upscaled,
            noise_level,
        })
    }
}

/// Invert `image` (`[1, C, H, W]`: IF stage II's pixels, or the upscaler's latent) under
/// `condition`; returns x_T.
pub fn invert(
    model: SrDenoising,
    condition: &LowResCondition,
    image: &Tensor,
    cond: &Tensor,
    settings: &SrSettings,
    run: &mut StageRun,
) -> Result<Tensor> {
    let (denoiser, g) = model.conditioned(condition, cond);
    let scheduler = model.scheduler;
    let total = scheduler.timesteps().len();
    let (x_t, reports) = match settings.method {
        SrMethod::Ddim => {
            run.event(Event::phase("DDIM inversion", total))?;
            let trace = ddim::invert_with(&denoiser, scheduler, image, g, &mut *run.on_step())?;
            (trace[trace.len() - 1].clone(), Vec::new())
        }
        SrMethod::FixedPoint => {
            run.event(Event::phase("fixed point", total))?;
            let mut on_step = run.on_step();
            iterinv::fixed_point(
                &denoiser,
                scheduler,
                image,
                g,
                settings.passes,
                &mut *on_step,
            )?
        }
        SrMethod::IterInv | SrMethod::IterInvFaithful => {
            run.event(Event::phase("IterInv", total))?;
            let opts = settings.iterinv_options(image.numel());
            let mut on_step = run.on_step();
            iterinv::iterinv(&denoiser, scheduler, image, g, opts, &mut *on_step)?
        }
    };
    run.record_steps(&reports);
    Ok(x_t)
}

/// Plain DDIM from x_T under the same condition and text, guidance 1, telling `progress` after
/// each timestep.
pub fn reconstruct(
    model: SrDenoising,
    condition: &LowResCondition,
    x_t: &Tensor,
    cond: &Tensor,
    progress: EngineProgress,
) -> Result<Tensor> {
    let (denoiser, g) = model.conditioned(condition, cond);
    Ok(ddim::reconstruct_with(
        &denoiser,
        model.scheduler,
        x_t,
        g,
        progress,
    )?)
}

/// IF stage II as stage `input.number` of an inversion: the photo at the UNet's size, the
/// condition the previous reconstruction upscaled and noised at the stage's level, IF's T5 text.
/// The artifacts keep x_T and the condition noise (`stage{k}.x_t`, `.condition_noise`).
pub(crate) fn run(
    input: &SrInput,
    folder: &PipelineFolder,
    settings: &SrSettings,
    progress: super::Progress,
) -> Result<SrStageResult> {
    let opts = input.opts;
    let model = IfSrModel::load(
        input.gpu,
        folder,
        opts.steps,
        settings.thresholding,
        opts.variant.as_deref(),
    )?;
    let size = model.unet.sample_size()?;
    let target = input.target(size)?;
    let noise = input.condition_noise(target.shape())?;
    let condition = model.condition(input.low_res, &noise, settings.noise_level)?;
    let mut run = StageRun::new(input.number, progress);
    let start = Instant::now();
    let x_t = invert(
        model.denoising(),
        &condition,
        &target,
        input.t5_text,
        settings,
        &mut run,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    run.event(Event::phase("reconstruction", opts.steps))?;
    let rec = reconstruct(
        model.denoising(),
        &condition,
        &x_t,
        input.t5_text,
        &mut *run.on_step(),
    )?;
    let name = input.name();
    let report = StageReport::new(
        &name,
        settings.method.name(),
        &target,
        &rec,
        seconds,
        &run.steps,
    )?;
    Ok(SrStageResult {
        meta: input.meta(folder, size, settings, settings.thresholding)?,
        tensors: vec![
            (format!("{name}.x_t"), HostTensor::read(&x_t)?),
            (format!("{name}.condition_noise"), HostTensor::read(&noise)?),
        ],
        output: StageOutput {
            input: target,
            reconstruction: rec,
            report,
        },
    })
}
