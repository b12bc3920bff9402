//! The text context of one UNet pass, shared by all its attention layers.

use std::cell::OnceCell;

use iterinv_engine::Tensor;

use crate::error::Result;

/// The tokens `[B, L, cross]` every attention layer of a pass attends to, and the same tokens
/// channels first, `[B, cross, L]`, for the layers that group-normalise them (IF's
/// `norm_cross`: statistics over a group of channels × all tokens). That transpose is the same in
/// every layer, so it is made once, by the first layer that asks, instead of twice per layer
/// (there and back).
pub struct Context {
    tokens: Tensor,
    channels_first: OnceCell<Tensor>,
}

impl Context {
    pub fn new(tokens: Tensor) -> Context {
        Context {
            tokens,
            channels_first: OnceCell::new(),
        }
    }

    /// `[B, L, cross]`.
    pub fn tokens(&self) -> &Tensor {
        &self.tokens
    }

    /// `[B, cross, L]`.
    pub fn channels_first(&self) -> Result<&Tensor> {
        if let Some(t) = self.channels_first.get() {
            return Ok(t);
        }
        let t = self.tokens.permute(&[0, 2, 1])?;
        Ok(self.channels_first.get_or_init(|| t))
    }
}
