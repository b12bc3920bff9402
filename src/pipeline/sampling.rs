//! The sampling loops of the two IF stages, as diffusers' `IFPipeline` and
//! `IFSuperResolutionPipeline` run them: batched classifier-free guidance, the scheduler step on
//! the GPU, no readback inside the loop.

use iterinv_engine::invert::{StepReport, Update};
use iterinv_engine::sched::{Scheduler, SchedulerKind, StepOptions};
use iterinv_models::{UNet, UNetInputs};

use super::guidance::{guide, guides, TextCondition};
use super::noise::NoiseSource;
use iterinv_models::{Error, Result};

use crate::Tensor;

/// Steps, guidance and DDIM's eta of one stage.
#[derive(Clone, Copy, Debug)]
pub struct StageSettings {
    pub steps: usize,
    pub guidance: f32,
    /// DDIM only: 0 is deterministic.
    pub eta: f32,
}

/// Told after each step, with the step's x̂₀ as its estimate; an error stops the sampling.
pub type Progress<'a> = iterinv_engine::invert::Progress<'a>;

/// Stage II's conditioning image: the upscaled low-res image with its noise added once, and that
/// noise level (also the UNet's class label).
pub struct LowResCondition {
    pub upscaled: Tensor,
    pub noise_level: usize,
}

/// Denoise `x` (the stage's initial noise `[B, C, H, W]`) over the sampler's timesteps.
#[allow(clippy::too_many_arguments)]
pub fn denoise(
    unet: &UNet,
    scheduler: &mut Scheduler,
    mut x: Tensor,
    text: &TextCondition,
    low_res: Option<&LowResCondition>,
    settings: StageSettings,
    stage: &str,
    noise: &mut dyn NoiseSource,
    progress: Progress,
) -> Result<Tensor> {
    if settings.steps == 0 {
        return Err(Error::Input {
            what: format!("{stage} steps"),
            detail: "is 0; sampling needs at least 1 step".into(),
        });
    }
    scheduler.set_timesteps(settings.steps)?;
    let timesteps = scheduler.timesteps().to_vec();
    let guided = guides(settings.guidance) && text.uncond.is_some();
    let context = text.batched(if guided { settings.guidance } else { 1.0 })?;
    let channels = x.dim(1);
    let label = low_res.map(|l| l.noise_level as f32);
    for (i, &t) in timesteps.iter().enumerate() {
        let input = match low_res {
            Some(l) => Tensor::concat(&[&x, &l.upscaled], 1)?,
            None => x.clone(),
        };
        let input = if guided {
            Tensor::concat(&[&input, &input], 0)?
        } else {
            input
        };
        let labels = label.map(|l| [l]);
        let out = unet.forward(&UNetInputs {
            sample: &input,
            timesteps: &[t as f32],
            encoder_hidden_states: &context,
            class_labels: labels.as_ref().map(|l| &l[..]),
        })?;
        let out = if guided {
            guide(&out, channels, settings.guidance)?
        } else {
            out
        };
        let step_noise = match scheduler.kind() {
            SchedulerKind::Ddpm if t > 0 => {
                Some(noise.noise(&format!("{stage}_step_{i}"), x.shape())?)
            }
            SchedulerKind::Ddim if settings.eta > 0.0 => {
                Some(noise.noise(&format!("{stage}_step_{i}"), x.shape())?)
            }
            _ => None,
        };
        let step = scheduler.step(
            &out,
            t,
            &x,
            StepOptions {
                noise: step_noise.as_ref(),
                eta: settings.eta,
            },
        )?;
        x = step.prev_sample;
        let report = StepReport {
            timestep: t,
            iterations: 1,
            final_loss: f64::NAN,
        };
        progress(&Update::step(report, Some(&step.pred_original_sample)))?;
    }
    Ok(x)
}
