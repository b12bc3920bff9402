//! The SD x4 upscaler as an inversion stage: a *latent* super-resolution stage. The target image
//! is encoded with the VAE (its latent distribution's mean, times the config's scaling factor) and
//! that latent is inverted, under the low-resolution condition noised once at the noise level,
//! with the same methods as IF's stage II (IterInv, faithful IterInv, the fixed point, DDIM) on
//! the upscaler's v-prediction DDIM scheduler; the reconstruction is DDIM from x_T, decoded.
//! The VAE round trip (decode ∘ encode) bounds what any latent inversion can reach in pixels.

use iterinv_engine::sched::{Scheduler, SchedulerKind};
use iterinv_models::config::VaeConfig;
use iterinv_models::{Error, Result, UNet, Vae};

use std::sync::Arc;
use std::time::Instant;

use super::artifacts::HostTensor;
use super::super_resolution::SrDenoising;
use super::{SrInput, SrSettings, SrStageResult, StageOutput, StageReport};
use crate::pipeline::folder::PipelineFolder;
use crate::pipeline::sampling::LowResCondition;
use crate::{Gpu, Tensor};

/// The upscaler's UNet, VAE and schedulers, loaded once for inversion and reconstruction.
/// A scaled latent (what the UNet sees) decoded to pixels.
fn decode_scaled(vae: &Vae, latent: &Tensor) -> Result<Tensor> {
    vae.decode(&latent.div_scalar(vae.config().scaling_factor as f32)?)
}

/// Previews of scaled latents through `vae`.
pub(crate) fn decoder(vae: Arc<Vae>) -> super::Decoder {
    Arc::new(move |latent| decode_scaled(&vae, latent))
}

pub struct LatentModel {
    pub unet: UNet,
    /// Shared with the stage's previews (see [`Self::decoder`]).
    pub vae: Arc<Vae>,
    pub scheduler: Scheduler,
    pub noising: Scheduler,
}

impl LatentModel {
    /// The components of an upscaler folder, with `steps` inversion steps (DDIM, its x₀ clipping
    /// off: see `inversion_scheduler`).
    pub fn load(
        gpu: &Gpu,
        folder: &PipelineFolder,
        steps: usize,
        variant: Option<&str>,
    ) -> Result<LatentModel> {
        let unet = UNet::load(gpu, &folder.component("unet")?, variant)?;
        let vae = Arc::new(Vae::load(gpu, &folder.component("vae")?, variant)?);
        let vae_latent = vae.config().latent_channels;
        if vae_latent + 3 != unet.config().in_channels {
            return Err(Error::Input {
                what: format!("upscaler folder {}", folder.dir().display()),
                detail: format!(
                    "its UNet takes {} channels, not the VAE's {vae_latent} latent channels and \
                     an RGB condition",
                    unet.config().in_channels
                ),
            });
        }
        Ok(LatentModel {
            unet,
            vae,
            scheduler: super::inversion_scheduler(folder, steps, false)?,
            noising: folder.scheduler("low_res_scheduler", Some(SchedulerKind::Ddpm))?,
        })
    }

    fn vae_config(&self) -> &VaeConfig {
        self.vae.config()
    }

    /// The latent of `image` (`[1, 3, H, W]`, about [−1, 1]): the distribution's mean, scaled.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        let mean = self.vae.encode(image)?.mean;
        Ok(mean.mul_scalar(self.vae_config().scaling_factor as f32)?)
    }

    /// The image of a (scaled) latent, about [−1, 1], not clamped.
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        decode_scaled(&self.vae, latent)
    }

    /// [`Self::decode`] for the stage's previews, holding the VAE as long as they live.
    pub fn decoder(&self) -> super::Decoder {
        decoder(self.vae.clone())
    }

    /// The condition: `low_res` (`[1, 3, h, w]`, the latent's own size) noised at `noise_level`
    /// with `noise`, as the upscaler pipeline does (no resize).
    pub fn condition(
        &self,
        low_res: &Tensor,
        noise: &Tensor,
        noise_level: usize,
    ) -> Result<LowResCondition> {
        Ok(LowResCondition {
            upscaled: self.noising.add_noise(low_res, noise, &[noise_level])?,
            noise_level,
        })
    }

    /// What the super-resolution inversion and reconstruction run
    /// (`super_resolution::invert`, `super_resolution::reconstruct`), here on the latent.
    pub fn denoising(&self) -> SrDenoising<'_> {
        SrDenoising {
            unet: &self.unet,
            scheduler: &self.scheduler,
        }
    }
}

/// What [`invert_image`] finds and how well it regenerates the image.
pub struct LatentInversion {
    /// The image's latent, z₀ (the VAE mean, scaled).
    pub latent: Tensor,
    /// The inverted latent x_T.
    pub x_t: Tensor,
    /// DDIM from x_T: the latent it regenerates, and that latent decoded.
    pub reconstructed_latent: Tensor,
    pub reconstruction: Tensor,
    /// decode(encode(image)): the best any latent inversion can regenerate in pixels.
    pub round_trip: Tensor,
    /// Per-timestep reports of IterInv or the fixed point (empty for DDIM).
    pub steps: Vec<iterinv_engine::invert::StepReport>,
}

/// Invert `image` (`[1, 3, H, W]`, about [−1, 1]) through the upscaler under `condition` and the
/// text `cond` (guidance 1) with one of the super-resolution methods, and regenerate it;
/// `number` is the stage's in the cascade (for the progress events).
pub fn invert_image(
    model: &LatentModel,
    condition: &LowResCondition,
    image: &Tensor,
    cond: &Tensor,
    settings: &SrSettings,
    number: usize,
    progress: super::Progress,
) -> Result<LatentInversion> {
    let latent = model.encode(image)?;
    let round_trip = model.decode(&latent)?;
    let mut run = super::StageRun::new(number, progress);
    run.decode_estimates_with(model.decoder());
    let x_t = super::super_resolution::invert(
        model.denoising(),
        condition,
        &latent,
        cond,
        settings,
        &mut run,
    )?;
    run.event(super::Event::phase(
        "reconstruction",
        model.scheduler.timesteps().len(),
    ))?;
    let reconstructed_latent = super::super_resolution::reconstruct(
        model.denoising(),
        condition,
        &x_t,
        cond,
        &mut *run.on_step(),
    )?;
    let reconstruction = model.decode(&reconstructed_latent)?;
    Ok(LatentInversion {
        latent,
        x_t,
        reconstructed_latent,
        reconstruction,
        round_trip,
        steps: run.steps,
    })
}

/// The upscaler as stage `input.number` of an inversion: the photo at the previous stage's size
/// times the VAE's factor, the condition the previous reconstruction (no resize) noised at the
/// stage's level, the prompt encoded by the upscaler's own CLIP. The artifacts keep x_T, the
/// condition noise and the CLIP text (`stage{k}.x_t`, `.condition_noise`, `.text.cond`).
pub(crate) fn run(
    input: &SrInput,
    folder: &PipelineFolder,
    settings: &SrSettings,
    progress: super::Progress,
) -> Result<SrStageResult> {
    let variant = input.opts.variant.as_deref();
    let text =
        crate::pipeline::upscaler::encode_text(input.gpu, folder, &input.opts.prompt, "", variant)?;
    let model = LatentModel::load(input.gpu, folder, input.opts.steps, variant)?;
    let size = input.low_res.dim(2) * model.vae.downscale();
    let target = input.target(size)?;
    let noise = input.condition_noise(input.low_res.shape())?;
    let condition = model.condition(input.low_res, &noise, settings.noise_level)?;
    let start = Instant::now();
    let out = invert_image(
        &model,
        &condition,
        &target,
        &text.cond,
        settings,
        input.number,
        progress,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let name = input.name();
    let report = StageReport::new(
        &name,
        settings.method.name(),
        &target,
        &out.reconstruction,
        seconds,
        &out.steps,
    )?
    .with_latent(
        &out.latent,
        &out.reconstructed_latent,
        &target,
        &out.round_trip,
    )?;
    Ok(SrStageResult {
        meta: input.meta(folder, size, settings, false)?,
        tensors: vec![
            (format!("{name}.x_t"), HostTensor::read(&out.x_t)?),
            (format!("{name}.condition_noise"), HostTensor::read(&noise)?),
            (format!("{name}.text.cond"), HostTensor::read(&text.cond)?),
        ],
        output: StageOutput {
            input: target,
            reconstruction: out.reconstruction,
            report,
        },
    })
}
