//! What both schedulers do to the predicted x0 before using it: dynamic thresholding (Imagen, as
//! diffusers' `_threshold_sample`) or a plain clip. GPU ops only (the quantile is a GPU radix
//! select), so nothing is read back and gradients flow through s as through torch's ops.

use super::config::SchedulerConfig;
use crate::error::{shape_err, Result};
use crate::tensor::Tensor;

/// Per sample (dim 0): s = clamp(quantile(|x0|, ratio), 1, sample_max_value) over all its other
/// elements, then clamp(x0, −s, s) / s. The clamp of s is torch's: max(·, 1) then
/// min(·, sample_max_value), so a sample_max_value below 1 gives s = sample_max_value.
pub fn dynamic_threshold(x0: &Tensor, ratio: f32, sample_max_value: f32) -> Result<Tensor> {
    let shape = x0.shape();
    if shape.len() < 2 || shape[0] == 0 {
        return shape_err(
            "dynamic_threshold",
            format!("x0 must be [batch, ...] with a batch, got {shape:?}"),
        );
    }
    let b = shape[0];
    let n = x0.numel() / b;
    let lo = sample_max_value.min(1.0);
    let mut s_shape = vec![1; shape.len()];
    s_shape[0] = b;
    let s = x0
        .reshape(&[b, n])?
        .abs()?
        .quantile(ratio)?
        .clamp(lo, sample_max_value)?
        .reshape(&s_shape)?;
    x0.maximum(&s.neg()?)?.minimum(&s)?.div(&s)
}

/// x0 as the config post-processes it: thresholded when `thresholding`, else clipped to
/// ±clip_sample_range when `clip_sample`, else unchanged.
pub(crate) fn process_x0(x0: Tensor, c: &SchedulerConfig) -> Result<Tensor> {
    if c.thresholding {
        dynamic_threshold(
            &x0,
            c.dynamic_thresholding_ratio as f32,
            c.sample_max_value as f32,
        )
    } else if c.clip_sample {
        let r = c.clip_sample_range as f32;
        x0.clamp(-r, r)
    } else {
        Ok(x0)
    }
}
