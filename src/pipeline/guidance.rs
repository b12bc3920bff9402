//! Classifier-free guidance as DeepFloyd-IF applies it to a UNet that also predicts its variance:
//! the guided ε is `ε_u + w·(ε_c − ε_u)`, and the variance channels are the conditional pass's
//! (IF's rule: the unconditional variance is dropped, not guided).

use crate::{Result, Tensor};

/// Text conditioning for one batch: the prompt's embeddings and, for guidance, the negative
/// prompt's (both `[B, L, D]`).
pub struct TextCondition {
    pub cond: Tensor,
    pub uncond: Option<Tensor>,
}

impl TextCondition {
    /// The UNet's text input: `[uncond; cond]` (2B rows) when guiding, else `cond`.
    pub fn batched(&self, guidance: f32) -> Result<Tensor> {
        match (&self.uncond, guides(guidance)) {
            (Some(u), true) => Tensor::concat(&[u, &self.cond], 0),
            _ => Ok(self.cond.clone()),
        }
    }
}

/// Guidance 1 (or less) runs the conditional pass alone, as diffusers does for scale ≤ 1.
pub fn guides(guidance: f32) -> bool {
    guidance > 1.0
}

/// `output [2B, 2C, H, W]` of the batched `[uncond; cond]` pass → `[B, 2C, H, W]`: guided ε in
/// channels `0..C`, the conditional variance in `C..2C`. With `channels == output channels`
/// (no learned variance) only the ε part exists.
pub fn guide(output: &Tensor, channels: usize, guidance: f32) -> Result<Tensor> {
    let b = output.dim(0) / 2;
    let halves = output.split(0, &[b, b])?;
    let (uncond, cond) = (&halves[0], &halves[1]);
    let total = output.dim(1);
    let eps_u = uncond.slice(1, 0, channels)?;
    let eps_c = cond.slice(1, 0, channels)?;
    let eps = eps_u.add(&eps_c.sub(&eps_u)?.mul_scalar(guidance)?)?;
    if total == channels {
        return Ok(eps);
    }
    let variance = cond.slice(1, channels, total)?;
    Tensor::concat(&[&eps, &variance], 1)
}
