//! Stage I: DDIM inversion of the 64 px image (the fixture: 16 px) at guidance 1, then, for a
//! guided reconstruction, null-text inversion (per-step null embeddings), NPI (the null is the
//! prompt), or nothing (plain DDIM: the reconstruction drifts at guidance > 1, the baseline).

use iterinv_engine::invert::nti::{self, NtiOptions, Reduction};
use iterinv_engine::invert::{ddim, Guidance, Progress};
use iterinv_engine::sched::Scheduler;
use iterinv_models::{Result, UNet};
use serde_json::json;

use super::{Event, Stage1Method, StageRun};
use crate::pipeline::denoiser::IfDenoiser;
use crate::Tensor;

/// Settings of stage I.
#[derive(Clone, Copy, Debug)]
pub struct Stage1Settings {
    pub method: Stage1Method,
    /// Guidance of the reconstruction (and of NTI's inner loop).
    pub guidance: f32,
    /// NTI's Adam steps per timestep; None: the method's own (NTI 51, NTI-p2p 10).
    pub inner_steps: Option<usize>,
    /// x₀ thresholding/clipping in the DDIM steps, as the scheduler config says (IF: dynamic
    /// thresholding); see [`super::inversion_scheduler`].
    pub thresholding: bool,
    /// NTI's untying of the null embedding's identical rows ([`NtiOptions::untie`]): iterinv's
    /// default is [`DEFAULT_UNTIE`]; None runs the reference loop with its rows tied.
    pub untie: Option<f32>,
}

/// The relative size of the seeded noise that unties the null embedding's rows before NTI (see
/// [`NtiOptions::untie`]): on the tiny trained cascade it lifts the held-out photos' stage-I
/// reconstruction into or above PyTorch float32's spread (BENCHMARKS.md, issue 17), where the
/// tied loop stays at float64's level below it.
pub const DEFAULT_UNTIE: f32 = 1e-3;

impl Stage1Settings {
    /// The NTI options of the method (None for NPI and DDIM).
    pub fn nti_options(&self) -> Option<NtiOptions> {
        let mut o = match self.method {
            Stage1Method::Nti => NtiOptions::default(),
            Stage1Method::NtiP2p => NtiOptions {
                inner_steps: 10,
                lr: 1e-2,
                loss: Reduction::Mean,
                early_stop: Some((1e-5, 2e-5)),
                ..NtiOptions::default()
            },
            Stage1Method::Npi | Stage1Method::Ddim => return None,
        };
        o.guidance = self.guidance;
        o.untie = self.untie;
        if let Some(k) = self.inner_steps {
            o.inner_steps = k;
        }
        Some(o)
    }

    /// The settings as recorded in the artifacts' sidecar.
    pub fn record(&self) -> serde_json::Value {
        match self.nti_options() {
            Some(o) => json!({
                "inner_steps": o.inner_steps,
                "lr": o.lr,
                "loss": format!("{:?}", o.loss).to_lowercase(),
                "early_stop": o.early_stop,
                "untie": o.untie,
                "inversion_guidance": 1.0,
            }),
            None => json!({ "inversion_guidance": 1.0 }),
        }
    }
}

/// What stage I's inversion found: x_T and, for NTI, the null embedding of every step.
pub struct Stage1Latents {
    pub x_t: Tensor,
    pub nulls: Option<Vec<Tensor>>,
}

/// Invert `image` (`[1, 3, S, S]` in [−1, 1]).
pub fn invert(
    unet: &UNet,
    scheduler: &Scheduler,
    image: &Tensor,
    cond: &Tensor,
    uncond: &Tensor,
    settings: &Stage1Settings,
    run: &mut StageRun,
) -> Result<Stage1Latents> {
    let denoiser = IfDenoiser {
        unet,
        low_res: None,
    };
    let plain = Guidance {
        cond,
        uncond: None,
        scale: 1.0,
    };
    let total = scheduler.timesteps().len();
    run.event(Event::phase("DDIM inversion", total))?;
    let trace = ddim::invert_with(&denoiser, scheduler, image, plain, &mut *run.on_step())?;
    let x_t = trace[trace.len() - 1].clone();
    let nulls = match settings.nti_options() {
        None => {
            run.record_steps(&[]);
            None
        }
        Some(opts) => {
            run.event(Event::phase("null-text inversion", total))?;
            let mut on_step = run.on_step();
            let (nulls, reports) = nti::null_text_inversion(
                &denoiser,
                scheduler,
                &trace,
                cond,
                uncond,
                opts,
                &mut *on_step,
            )?;
            drop(on_step);
            run.record_steps(&reports);
            Some(nulls)
        }
    };
    Ok(Stage1Latents { x_t, nulls })
}

/// Regenerate the image from the latents: guided DDIM with the method's null embedding(s),
/// telling `progress` after each timestep.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    unet: &UNet,
    scheduler: &Scheduler,
    latents: &Stage1Latents,
    cond: &Tensor,
    uncond: &Tensor,
    method: Stage1Method,
    guidance: f32,
    progress: Progress,
) -> Result<Tensor> {
    let denoiser = IfDenoiser {
        unet,
        low_res: None,
    };
    Ok(match (&latents.nulls, method) {
        (Some(nulls), _) => {
            let x_t = &latents.x_t;
            nti::reconstruct_with(&denoiser, scheduler, x_t, cond, nulls, guidance, progress)?
        }
        (None, Stage1Method::Npi) => {
            // NPI: the prompt is its own null, so u + w·(c − u) is the conditional prediction
            // at any guidance: one unguided pass gives it at half the cost.
            let g = Guidance {
                cond,
                uncond: None,
                scale: 1.0,
            };
            ddim::reconstruct_with(&denoiser, scheduler, &latents.x_t, g, progress)?
        }
        (None, _) => {
            let g = Guidance {
                cond,
                uncond: Some(uncond),
                scale: guidance,
            };
            ddim::reconstruct_with(&denoiser, scheduler, &latents.x_t, g, progress)?
        }
    })
}
