//! Stable Diffusion's attention layer (diffusers `Transformer2DModel` with one
//! `BasicTransformerBlock`): GroupNorm, a projection in, self-attention (or cross-attention with
//! `only_cross_attention`), cross-attention to the text, a GEGLU feed-forward — each pre-LayerNorm
//! with a residual — a projection out and the outer residual.

use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::ops::elementwise::gated;
use iterinv_engine::{Activation, Tensor};

use super::context::Context;
use crate::error::Result;
use crate::nn::{from_tokens, to_tokens, Conv2d, Linear, Norm};
use crate::weights::Weights;

/// `Transformer2DModel`'s GroupNorm eps (fixed in diffusers, not a config field).
const GROUP_NORM_EPS: f32 = 1e-6;
/// `BasicTransformerBlock`'s LayerNorm eps (its `norm_eps` default).
const LAYER_NORM_EPS: f32 = 1e-5;
/// GEGLU's hidden width is this many times the channels (`FeedForward(mult=4)`).
const FF_MULT: usize = 4;

/// The shape of one transformer layer.
#[derive(Clone, Copy, Debug)]
pub struct TransformerShape {
    pub channels: usize,
    /// SD's `attention_head_dim` is the number of heads; each has `channels / heads` dimensions.
    pub heads: usize,
    /// Width of the text context (the UNet's cross-attention width).
    pub context: usize,
    pub groups: usize,
    /// `use_linear_projection`: `proj_in`/`proj_out` are linear layers on tokens, else 1×1
    /// convolutions on the feature map.
    pub linear_projection: bool,
    /// `only_cross_attention`: the first attention attends to the text too, not to the image.
    pub only_cross_attention: bool,
}

/// diffusers' `Attention` as SD uses it: q, k, v without bias, `to_out.0` with one.
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &Weights, channels: usize, keys: usize, heads: usize) -> Result<Attention> {
        Ok(Attention {
            to_q: Linear::load_no_bias(&w.at("to_q"), channels, channels)?,
            to_k: Linear::load_no_bias(&w.at("to_k"), keys, channels)?,
            to_v: Linear::load_no_bias(&w.at("to_v"), keys, channels)?,
            to_out: Linear::load(&w.at("to_out.0"), channels, channels)?,
            heads,
            head_dim: channels / heads,
        })
    }

    /// `residual + attention`, where `x [B, N, C]` attends to `keys [B, L, keys]`.
    fn forward_plus(&self, x: &Tensor, keys: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (b, n, l) = (x.dim(0), x.dim(1), keys.dim(1));
        let heads = |t: Tensor, len: usize| t.reshape(&[b, len, self.heads, self.head_dim]);
        let q = heads(self.to_q.forward(x)?, n)?;
        let k = heads(self.to_k.forward(keys)?, l)?;
        let v = heads(self.to_v.forward(keys)?, l)?;
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let out = attention(&AttentionArgs::new(&q, &k, &v, scale))?;
        self.to_out
            .forward_plus(&out.reshape(&[b, n, self.heads * self.head_dim])?, residual)
    }
}

/// `proj_in` / `proj_out`: a linear layer on tokens or a 1×1 convolution on the feature map.
enum Projection {
    Linear(Linear),
    Conv(Conv2d),
}

impl Projection {
    fn load(w: &Weights, channels: usize, linear: bool) -> Result<Projection> {
        Ok(if linear {
            Projection::Linear(Linear::load(w, channels, channels)?)
        } else {
            Projection::Conv(Conv2d::load(w, channels, channels, 1)?)
        })
    }
}

pub struct Transformer2D {
    norm: Norm,
    groups: usize,
    proj_in: Projection,
    norm1: Norm,
    attn1: Attention,
    only_cross_attention: bool,
    norm2: Norm,
    attn2: Attention,
    norm3: Norm,
    ff_in: Linear,
    ff_out: Linear,
    proj_out: Projection,
}

impl Transformer2D {
    pub fn load(w: &Weights, s: TransformerShape) -> Result<Transformer2D> {
        let c = s.channels;
        let blk = w.at("transformer_blocks.0");
        let ln = |name: &str| Norm::load(&blk.at(name), c, LAYER_NORM_EPS);
        let self_keys = if s.only_cross_attention { s.context } else { c };
        Ok(Transformer2D {
            norm: Norm::load(&w.at("norm"), c, GROUP_NORM_EPS)?,
            groups: s.groups,
            proj_in: Projection::load(&w.at("proj_in"), c, s.linear_projection)?,
            norm1: ln("norm1")?,
            attn1: Attention::load(&blk.at("attn1"), c, self_keys, s.heads)?,
            only_cross_attention: s.only_cross_attention,
            norm2: ln("norm2")?,
            attn2: Attention::load(&blk.at("attn2"), c, s.context, s.heads)?,
            norm3: ln("norm3")?,
            ff_in: Linear::load(&blk.at("ff.net.0.proj"), c, 2 * FF_MULT * c)?,
            ff_out: Linear::load(&blk.at("ff.net.2"), FF_MULT * c, c)?,
            proj_out: Projection::load(&w.at("proj_out"), c, s.linear_projection)?,
        })
    }

    /// `x [B, C, H, W]`, `context [B, L, cross]` → `x + transformer(x)`.
    pub fn forward(&self, x: &Tensor, context: &Context) -> Result<Tensor> {
        let context = context.tokens();
        let (h, w) = (x.dim(2), x.dim(3));
        let mut t = match &self.proj_in {
            Projection::Linear(p) => p.forward_from_channels_first(
                &self.norm.group_norm_channels_first(x, self.groups)?,
            )?,
            Projection::Conv(p) => {
                let normed = self.norm.group_norm(x, self.groups, Activation::None)?;
                to_tokens(&p.forward(&normed)?)?
            }
        };

        let n1 = self.norm1.layer_norm(&t)?;
        let keys = if self.only_cross_attention {
            context
        } else {
            &n1
        };
        t = self.attn1.forward_plus(&n1, keys, &t)?;
        let n2 = self.norm2.layer_norm(&t)?;
        t = self.attn2.forward_plus(&n2, context, &t)?;
        // GEGLU: the projection's first half times the exact GELU of its second half.
        let n3 = self.norm3.layer_norm(&t)?;
        let geglu = gated(&self.ff_in.forward(&n3)?, Activation::Gelu)?;
        t = self.ff_out.forward_plus(&geglu, &t)?;

        // The block's skip connection is added in proj_out's epilogue.
        Ok(match &self.proj_out {
            Projection::Linear(p) => {
                let [b, c] = [x.dim(0), x.dim(1)];
                p.forward_to_channels_first_plus(&t, &x.reshape(&[b, c, h * w])?)?
                    .reshape(&[b, c, h, w])?
            }
            Projection::Conv(p) => p.forward_plus(&from_tokens(&t, h, w)?, x)?,
        })
    }
}
