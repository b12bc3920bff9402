//! The SD x4 upscaler as an inversion stage: a *latent* super-resolution stage. The target image
//! is encoded with the VAE (its latent distribution's mean, times the config's scaling factor) and
//! that latent is inverted, under the low-resolution condition noised once at the noise level,
//! with the same methods as IF's stage II (IterInv, faithful IterInv, the fixed point, DDIM) on
//! the upscaler's v-prediction DDIM scheduler; the reconstruction is DDIM from x_T, decoded.
//! The VAE round trip (decode ∘ encode) bounds what any latent inversion can reach in pixels.

use iterinv_engine::sched::{Scheduler, SchedulerKind};
use iterinv_models::config::VaeConfig;
use iterinv_models::{Error, Result, UNet, Vae};

use super::stage2::SrDenoising;
use crate::pipeline::folder::PipelineFolder;
use crate::pipeline::sampling::LowResCondition;
use crate::{Gpu, Tensor};

/// The upscaler's UNet, VAE and schedulers, loaded once for inversion and reconstruction.
pub struct LatentModel {
    pub unet: UNet,
    pub vae: Vae,
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
        let vae = Vae::load(gpu, &folder.component("vae")?, variant)?;
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
        let unscaled = latent.div_scalar(self.vae_config().scaling_factor as f32)?;
        self.vae.decode(&unscaled)
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

    /// What the super-resolution inversion and reconstruction run (`stage2::invert`,
    /// `stage2::reconstruct`), here on the latent.
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
/// text `cond` (guidance 1) with one of stage II's methods, and regenerate it.
pub fn invert_image(
    model: &LatentModel,
    condition: &LowResCondition,
    image: &Tensor,
    cond: &Tensor,
    settings: &super::Stage2Settings,
    progress: super::Progress,
) -> Result<LatentInversion> {
    let latent = model.encode(image)?;
    let round_trip = model.decode(&latent)?;
    let mut run = super::StageRun::new(crate::pipeline::Stage::Upscaler, progress);
    let x_t = super::stage2::invert(
        model.denoising(),
        condition,
        &latent,
        cond,
        settings,
        &mut run,
    )?;
    let reconstructed_latent =
        super::stage2::reconstruct(model.denoising(), condition, &x_t, cond)?;
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
