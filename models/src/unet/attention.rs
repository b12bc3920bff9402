//! IF's attention layer (diffusers `Attention` with `AttnAddedKVProcessor`): the image tokens
//! attend to the projected text tokens and to themselves in one softmax, text keys first.

use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::Tensor;

use super::context::Context;
use crate::error::Result;
use crate::nn::{Linear, Norm};
use crate::weights::Weights;

/// Groups of `norm_cross` (diffusers' `cross_attention_norm_num_groups` default, not a UNet
/// config field), and the eps of both of the layer's group norms (the `Attention` default).
const CROSS_NORM_GROUPS: usize = 32;
const EPS: f32 = 1e-5;

pub struct AddedKvAttention {
    group_norm: Norm,
    groups: usize,
    norm_cross: Option<Norm>,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    add_k_proj: Linear,
    add_v_proj: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
}

/// The shape of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub channels: usize,
    pub head_dim: usize,
    /// Width of the text context (the UNet's cross-attention width).
    pub context: usize,
    pub groups: usize,
    pub norm_cross: bool,
}

impl AddedKvAttention {
    pub fn load(w: &Weights, s: AttentionShape) -> Result<AddedKvAttention> {
        let c = s.channels;
        let kv = |name: &str| Linear::load(&w.at(name), c, c);
        Ok(AddedKvAttention {
            group_norm: Norm::load(&w.at("group_norm"), c, EPS)?,
            groups: s.groups,
            norm_cross: if s.norm_cross {
                Some(Norm::load(&w.at("norm_cross"), s.context, EPS)?)
            } else {
                None
            },
            to_q: kv("to_q")?,
            to_k: kv("to_k")?,
            to_v: kv("to_v")?,
            add_k_proj: Linear::load(&w.at("add_k_proj"), s.context, c)?,
            add_v_proj: Linear::load(&w.at("add_v_proj"), s.context, c)?,
            to_out: Linear::load(&w.at("to_out.0"), c, c)?,
            heads: c / s.head_dim,
            head_dim: s.head_dim,
        })
    }

    /// `x [B, C, H, W]` and the text context (`[B, L, cross]`) → `x + attention`. The
    /// projections read the normalised feature map and context channels first (transposed), so
    /// neither is permuted into tokens.
    pub fn forward(&self, x: &Tensor, context: &Context) -> Result<Tensor> {
        let [b, c, h, w] = [x.dim(0), x.dim(1), x.dim(2), x.dim(3)];
        let n = h * w;
        let normed = self.group_norm.group_norm_channels_first(x, self.groups)?;
        let l = context.tokens().dim(1);
        let (text_k, text_v) = match &self.norm_cross {
            // GroupNorm over the context's channels, statistics over a group × all tokens.
            Some(norm) => {
                let ctx = context
                    .channels_first()?
                    .group_norm(&norm.group_args(CROSS_NORM_GROUPS))?;
                (
                    self.add_k_proj.forward_from_channels_first(&ctx)?,
                    self.add_v_proj.forward_from_channels_first(&ctx)?,
                )
            }
            None => (
                self.add_k_proj.forward(context.tokens())?,
                self.add_v_proj.forward(context.tokens())?,
            ),
        };
        let heads = |t: Tensor, len: usize| t.reshape(&[b, len, self.heads, self.head_dim]);
        let q = heads(self.to_q.forward_from_channels_first(&normed)?, n)?;
        let (text_k, text_v) = (heads(text_k, l)?, heads(text_v, l)?);
        let image_k = heads(self.to_k.forward_from_channels_first(&normed)?, n)?;
        let image_v = heads(self.to_v.forward_from_channels_first(&normed)?, n)?;
        let out = attention(&AttentionArgs {
            k2: Some(&image_k),
            v2: Some(&image_v),
            ..AttentionArgs::new(&q, &text_k, &text_v, 1.0 / (self.head_dim as f32).sqrt())
        })?;
        let out = self
            .to_out
            .forward_to_channels_first_plus(&out.reshape(&[b, n, c])?, &x.reshape(&[b, c, n])?)?;
        Ok(out.reshape(&[b, c, h, w])?)
    }
}
