//! DDIM inversion and reconstruction.
//!
//! Inversion walks the scheduler's timesteps from the least to the most noisy. At timestep t,
//! coming from the previous one p (t's predecessor in the schedule; the clean image before the
//! first), the model is evaluated on the current x at t and
//! `x ← √ᾱ_t·x̂₀ + √(1 − ᾱ_t)·ε̂`, with `x̂₀` and `ε̂` from the model output using `ᾱ_p` (1, or the
//! scheduler's final ᾱ, before the first step) — the IF/prompt-to-prompt reference and diffusers'
//! `DDIMInverseScheduler`. No thresholding or clipping is applied on the way up.
//! Reconstruction is the scheduler's own step from x_T down.

use super::{Denoiser, Guidance, Progress, StepReport, Update};
use crate::error::{invalid, Result};
use crate::sched::{Scheduler, StepOptions};
use crate::tensor::Tensor;

const OP: &str = "DDIM inversion";

/// The inversion's trace: `trace[0]` is the image, `trace[i + 1]` the latent at the i-th
/// timestep from the least noisy (so the last entry is x_T at the schedule's first timestep).
pub fn invert(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    image: &Tensor,
    guidance: Guidance,
) -> Result<Vec<Tensor>> {
    invert_partially(
        denoiser,
        scheduler,
        image,
        guidance,
        usize::MAX,
        &mut |_| Ok(()),
    )
}

/// [`invert`], telling `progress` after each timestep (its estimate: the step's x̂₀).
pub fn invert_with(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    image: &Tensor,
    guidance: Guidance,
    progress: Progress,
) -> Result<Vec<Tensor>> {
    invert_partially(denoiser, scheduler, image, guidance, usize::MAX, progress)
}

/// [`invert_with`] stopped after the `steps` least noisy timesteps (DiffEdit's partial
/// inversion: its strength keeps the first `⌊strength·n⌋` of n).
pub fn invert_partially(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    image: &Tensor,
    guidance: Guidance,
    steps: usize,
    progress: Progress,
) -> Result<Vec<Tensor>> {
    let timesteps = scheduler.timesteps();
    if timesteps.is_empty() {
        return invalid(
            OP,
            "the scheduler has no timesteps: call set_timesteps first",
        );
    }
    let ac = scheduler.alphas_cumprod();
    let prediction = scheduler.config().prediction_type.as_str();
    let channels = image.dim(1);
    let mut trace = vec![image.clone()];
    let mut x = image.clone();
    for &t in timesteps.iter().rev().take(steps) {
        let alpha_prev = match scheduler.try_previous_timestep(t)? {
            Some(p) => ac[p],
            None => scheduler.final_alpha_cumprod(),
        };
        let alpha_t = *ac.get(t).ok_or_else(|| crate::error::Error::Invalid {
            op: OP,
            detail: format!("timestep {t} is outside the {} training steps", ac.len()),
        })?;
        let out = guidance.predict(denoiser, &x, t)?.slice(1, 0, channels)?;
        let (sa, sb) = (
            (alpha_prev as f32).sqrt(),
            ((1.0 - alpha_prev) as f32).sqrt(),
        );
        let (x0, eps) =
            match prediction {
                "epsilon" => (x.sub(&out.mul_scalar(sb)?)?.div_scalar(sa)?, out),
                "v_prediction" => (
                    x.mul_scalar(sa)?.sub(&out.mul_scalar(sb)?)?,
                    out.mul_scalar(sa)?.add(&x.mul_scalar(sb)?)?,
                ),
                "sample" if sb > 0.0 => {
                    let eps = x.sub(&out.mul_scalar(sa)?)?.div_scalar(sb)?;
                    (out, eps)
                }
                "sample" => return invalid(
                    OP,
                    "sample prediction needs ᾱ < 1 before the first step (set_alpha_to_one false)",
                ),
                other => return invalid(OP, format!("prediction type {other:?} is not supported")),
            };
        let (na, nb) = ((alpha_t as f32).sqrt(), ((1.0 - alpha_t) as f32).sqrt());
        x = x0.mul_scalar(na)?.add(&eps.mul_scalar(nb)?)?;
        trace.push(x.clone());
        progress(&Update::step(pass_report(t), Some(&x0)))?;
    }
    Ok(trace)
}

/// The report of a timestep that is one model pass (no loss).
pub(super) fn pass_report(timestep: usize) -> StepReport {
    StepReport {
        timestep,
        iterations: 1,
        final_loss: f64::NAN,
    }
}

/// Deterministic sampling from `x_t` over the scheduler's timesteps (DDIM with eta 0, or any
/// scheduler whose step needs no noise), with guidance.
pub fn reconstruct(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: &Tensor,
    guidance: Guidance,
) -> Result<Tensor> {
    reconstruct_with(denoiser, scheduler, x_t, guidance, &mut |_| Ok(()))
}

/// [`reconstruct`], telling `progress` after each timestep (its estimate: the step's x̂₀).
pub fn reconstruct_with(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: &Tensor,
    guidance: Guidance,
    progress: Progress,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    for &t in scheduler.timesteps() {
        let out = guidance.predict(denoiser, &x, t)?;
        let step = scheduler.step(&out, t, &x, StepOptions::default())?;
        x = step.prev_sample;
        progress(&Update::step(
            pass_report(t),
            Some(&step.pred_original_sample),
        ))?;
    }
    Ok(x)
}
