//! diffusers' `DDIMScheduler.step` (use_clipped_model_output false, as IF's and the x4
//! upscaler's pipelines call it): the scalars in float32 on the CPU in torch's order of
//! operations, the per-element math as engine ops.

use super::threshold::process_x0;
use super::{check_finite, predict_x0, Scheduler, StepOptions, StepOutput};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

pub(super) fn step(
    s: &Scheduler,
    model_output: &Tensor,
    t: usize,
    sample: &Tensor,
    opts: StepOptions,
) -> Result<StepOutput> {
    const OP: &str = "scheduler step";
    let c = &s.config;
    let eta = opts.eta;
    if !(eta.is_finite() && eta >= 0.0) {
        return invalid(OP, format!("eta = {eta}: must be finite and not negative"));
    }
    // prev_t = t − num_train_timesteps // num_inference_steps, whatever the spacing (diffusers).
    let prev = s.try_previous_timestep(t)?;
    let channels = sample.shape()[1];
    let model_output = if model_output.shape()[1] == channels {
        model_output.clone()
    } else {
        model_output.slice(1, 0, channels)?
    };

    let alpha_prod_t = s.ac32[t];
    let alpha_prod_t_prev = prev.map_or(s.final_alpha_cumprod, |p| s.ac32[p]);
    let beta_prod_t = 1.0 - alpha_prod_t;
    let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
    let (sa, sb) = (alpha_prod_t.sqrt(), beta_prod_t.sqrt());

    let x0 = predict_x0(&c.prediction_type, &model_output, sample, alpha_prod_t, t)?;
    let eps = match c.prediction_type.as_str() {
        "epsilon" => model_output,
        "sample" => {
            let inv = 1.0 / sb;
            check_finite(t, &[("1/sqrt(beta_prod_t)", inv)])?;
            sample.sub(&x0.mul_scalar(sa)?)?.mul_scalar(inv)?
        }
        // "v_prediction"
        _ => model_output.mul_scalar(sa)?.add(&sample.mul_scalar(sb)?)?,
    };
    let x0 = process_x0(x0, c)?;

    // _get_variance, then the direction's coefficient √(1 − ᾱ_prev − σ²).
    let variance = (beta_prod_t_prev / beta_prod_t) * (1.0 - alpha_prod_t / alpha_prod_t_prev);
    let std_dev_t = eta * variance.sqrt();
    let radicand = (1.0 - alpha_prod_t_prev) - std_dev_t * std_dev_t;
    if radicand < 0.0 {
        return invalid(
            OP,
            format!(
                "eta = {eta} is too large at timestep {t}: 1 − alpha_prod_t_prev − std_dev_t² = \
                 {radicand} < 0 (diffusers gives NaN); eta ≤ 1 never is"
            ),
        );
    }
    let direction_coeff = radicand.sqrt();
    check_finite(
        t,
        &[
            ("std_dev_t", std_dev_t),
            ("sqrt(alpha_prod_t_prev)", alpha_prod_t_prev.sqrt()),
            ("direction coefficient", direction_coeff),
        ],
    )?;
    let mut prev_sample = x0
        .mul_scalar(alpha_prod_t_prev.sqrt())?
        .add(&eps.mul_scalar(direction_coeff)?)?;
    if eta > 0.0 {
        let Some(noise) = opts.noise else {
            return invalid(
                OP,
                format!("DDIM with eta = {eta} > 0 needs the variance noise (StepOptions::noise)"),
            );
        };
        prev_sample = prev_sample.add(&noise.mul_scalar(std_dev_t)?)?;
    }
    Ok(StepOutput {
        prev_sample,
        pred_original_sample: x0,
    })
}
