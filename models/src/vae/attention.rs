//! The VAE's mid-block attention (diffusers `Attention` as `UNetMidBlock2D` builds it for the
//! autoencoder): GroupNorm, one head as wide as the channels over every pixel of the latent,
//! output projection, residual. The real VAE's head is 512 wide over up to 65,536 tokens; the
//! engine's `attention` takes such heads in bounded query blocks (see `attention_blocked`).
//!
//! Checkpoints written before diffusers 0.14 name the projections `query`, `key`, `value` and
//! `proj_attn` (the deprecated `AttentionBlock`); they are the same `[C, C]` linear layers as
//! `to_q`, `to_k`, `to_v` and `to_out.0`, and are loaded under whichever name the file uses.

use iterinv_engine::Tensor;

use crate::error::Result;
use crate::nn::{Linear, Norm};
use crate::weights::Weights;

/// The current name of each projection and the name older checkpoints give it.
const NAMES: [(&str, &str); 4] = [
    ("to_q", "query"),
    ("to_k", "key"),
    ("to_v", "value"),
    ("to_out.0", "proj_attn"),
];

pub struct MidAttention {
    group_norm: Norm,
    groups: usize,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
}

impl MidAttention {
    /// The layer at `w` (`encoder.mid_block.attentions.0`) over `channels` channels.
    pub fn load(w: &Weights, channels: usize, groups: usize, eps: f32) -> Result<MidAttention> {
        let [q, k, v, o] = NAMES.map(|(new, old)| {
            // The current name unless only the old one is there: a checkpoint with neither is
            // reported missing under the current name.
            let name =
                if !w.contains(&format!("{new}.weight")) && w.contains(&format!("{old}.weight")) {
                    old
                } else {
                    new
                };
            Linear::load(&w.at(name), channels, channels)
        });
        Ok(MidAttention {
            group_norm: Norm::load(&w.at("group_norm"), channels, eps)?,
            groups,
            to_q: q?,
            to_k: k?,
            to_v: v?,
            to_out: o?,
        })
    }

    /// `x [B, C, H, W]` → `x + attention(x)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [b, c, h, w] = [x.dim(0), x.dim(1), x.dim(2), x.dim(3)];
        let n = h * w;
        let normed = self.group_norm.group_norm_channels_first(x, self.groups)?;
        let head = |t: Tensor| t.reshape(&[b, n, 1, c]);
        let q = head(self.to_q.forward_from_channels_first(&normed)?)?;
        let k = head(self.to_k.forward_from_channels_first(&normed)?)?;
        let v = head(self.to_v.forward_from_channels_first(&normed)?)?;
        let a = q.attention(&k, &v, 1.0 / (c as f32).sqrt())?;
        let out = self
            .to_out
            .forward_to_channels_first_plus(&a.reshape(&[b, n, c])?, &x.reshape(&[b, c, n])?)?;
        Ok(out.reshape(&[b, c, h, w])?)
    }
}
