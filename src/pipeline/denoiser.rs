//! An IF UNet as the inversion algorithms' [`Denoiser`]: stage I as it is, stage II with its
//! noised low-resolution condition concatenated to the input and its noise level as the class
//! label (both fixed for a whole inversion).

use iterinv_engine::invert::Denoiser;
use iterinv_models::{UNet, UNetInputs};

use super::sampling::LowResCondition;
use crate::Tensor;

pub struct IfDenoiser<'a> {
    pub unet: &'a UNet,
    /// Stage II's condition; None at stage I.
    pub low_res: Option<&'a LowResCondition>,
}

impl Denoiser for IfDenoiser<'_> {
    fn predict(&self, x_t: &Tensor, t: usize, context: &Tensor) -> iterinv_engine::Result<Tensor> {
        let b = x_t.dim(0);
        let (input, label) = match self.low_res {
            Some(l) => {
                // One condition for the whole batch (guidance doubles the batch).
                let up = if l.upscaled.dim(0) == b {
                    l.upscaled.clone()
                } else {
                    let copies: Vec<&Tensor> = vec![&l.upscaled; b / l.upscaled.dim(0).max(1)];
                    Tensor::concat(&copies, 0)?
                };
                (
                    Tensor::concat(&[x_t, &up], 1)?,
                    Some([l.noise_level as f32]),
                )
            }
            None => (x_t.clone(), None),
        };
        self.unet
            .forward(&UNetInputs {
                sample: &input,
                timesteps: &[t as f32],
                encoder_hidden_states: context,
                class_labels: label.as_ref().map(|l| &l[..]),
            })
            .map_err(|e| match e {
                iterinv_models::Error::Engine(e) => e,
                other => iterinv_engine::Error::Invalid {
                    op: "IF denoiser",
                    detail: other.to_string(),
                },
            })
    }
}
