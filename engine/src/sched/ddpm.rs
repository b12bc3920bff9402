//! diffusers' `DDPMScheduler.step`: the scalars in float32 on the CPU in torch's order of
//! operations, the per-element math as engine ops.

use super::threshold::process_x0;
use super::{check_finite, predict_x0, Scheduler, StepOutput};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

/// torch.clamp(variance, min=1e-20) on float32.
const MIN_VARIANCE: f32 = 1e-20;

/// ln then back to f32, for torch's float32 `log` of a 0-dim tensor (correctly rounded here;
/// torch's may differ by an ulp, far below the tolerance of anything built on it).
fn ln32(x: f32) -> f32 {
    (x as f64).ln() as f32
}

pub(super) fn step(
    s: &Scheduler,
    model_output: &Tensor,
    t: usize,
    sample: &Tensor,
    noise: Option<&Tensor>,
) -> Result<StepOutput> {
    let c = &s.config;
    let prev = s.try_previous_timestep(t)?;
    let channels = sample.shape()[1];
    let variance_type = c.variance_type_or_default();
    let learned = matches!(variance_type, "learned" | "learned_range");
    let two_halves = model_output.shape()[1] == 2 * channels;
    let (model_output, predicted_variance) = match (two_halves, learned) {
        (true, true) => {
            let mut parts = model_output.split(1, &[channels, channels])?;
            let v = parts.pop();
            (parts.pop().expect("two parts"), v)
        }
        (true, false) => (model_output.slice(1, 0, channels)?, None),
        (false, true) => {
            return invalid(
                "scheduler step",
                format!(
                    "variance_type {variance_type:?} needs the model's variance: model_output \
                     must have 2·{channels} channels, got {channels}"
                ),
            )
        }
        (false, false) => (model_output.clone(), None),
    };

    // The scalars, in the order diffusers computes its 0-dim float32 tensors.
    let alpha_prod_t = s.ac32[t];
    let alpha_prod_t_prev = prev.map_or(1.0, |p| s.ac32[p]);
    let beta_prod_t = 1.0 - alpha_prod_t;
    let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
    let current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
    let current_beta_t = 1.0 - current_alpha_t;
    let x0_coeff = (alpha_prod_t_prev.sqrt() * current_beta_t) / beta_prod_t;
    let sample_coeff = (current_alpha_t.sqrt() * beta_prod_t_prev) / beta_prod_t;
    check_finite(
        t,
        &[
            ("pred_original_sample_coeff", x0_coeff),
            ("current_sample_coeff", sample_coeff),
        ],
    )?;

    let x0 = predict_x0(&c.prediction_type, &model_output, sample, alpha_prod_t, t)?;
    let x0 = process_x0(x0, c)?;
    let mut prev_sample = x0
        .mul_scalar(x0_coeff)?
        .add(&sample.mul_scalar(sample_coeff)?)?;

    // diffusers adds noise whenever t > 0, even when the previous timestep is "before 0".
    if t > 0 {
        let Some(noise) = noise else {
            return invalid(
                "scheduler step",
                format!("DDPM needs the variance noise (StepOptions::noise) at timestep {t} > 0"),
            );
        };
        let variance = ((beta_prod_t_prev / beta_prod_t) * current_beta_t).max(MIN_VARIANCE);
        let term = match variance_type {
            "fixed_small_log" => {
                let std = (0.5 * ln32(variance)) as f64;
                noise.mul_scalar(std.exp() as f32)?
            }
            "fixed_large" => noise.mul_scalar(current_beta_t.sqrt())?,
            "learned" => predicted_variance
                .expect("learned has the variance")
                .sqrt()?
                .mul(noise)?,
            "learned_range" => {
                // log-variance = frac·ln β_t + (1 − frac)·ln(posterior variance), frac = (v+1)/2;
                // the noise is scaled by exp(0.5·log-variance).
                let (min_log, max_log) = (ln32(variance), ln32(current_beta_t));
                check_finite(t, &[("ln(beta_t)", max_log)])?;
                // v·0.5 + 0.5 rounds as (v + 1)/2 does: halving is exact.
                let frac = predicted_variance
                    .expect("learned_range has the variance")
                    .affine(0.5, 0.5)?;
                let log_variance = frac
                    .mul_scalar(max_log)?
                    .add(&frac.rsub_scalar(1.0)?.mul_scalar(min_log)?)?;
                log_variance.mul_scalar(0.5)?.exp()?.mul(noise)?
            }
            // "fixed_small" (Scheduler::new refuses fixed_large_log).
            _ => noise.mul_scalar(variance.sqrt())?,
        };
        prev_sample = prev_sample.add(&term)?;
    }
    Ok(StepOutput {
        prev_sample,
        pred_original_sample: x0,
    })
}
