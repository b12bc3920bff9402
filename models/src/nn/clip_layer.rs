//! One layer of CLIP's transformers (`CLIPEncoderLayer`), shared by the text and the vision
//! tower: pre-LN self-attention and a two-layer MLP, each added back to its input.

use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::{Activation, Tensor};

use super::{Linear, Norm};
use crate::error::Result;
use crate::weights::Weights;

pub struct ClipLayer {
    norm1: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// What a layer's attention needs besides its input: the head count and the activation, and
/// the text tower's causal bias and key mask.
pub struct ClipLayerArgs<'a> {
    pub heads: usize,
    pub act: Activation,
    pub bias: Option<&'a Tensor>,
    pub key_mask: Option<&'a Tensor>,
}

impl ClipLayer {
    /// Layer `w` (`encoder.layers.{i}`), width `d`, MLP width `ff`, LayerNorm epsilon `eps`.
    pub fn load(w: &Weights, d: usize, ff: usize, eps: f32) -> Result<ClipLayer> {
        let attn = w.at("self_attn");
        Ok(ClipLayer {
            norm1: Norm::load(&w.at("layer_norm1"), d, eps)?,
            q: Linear::load(&attn.at("q_proj"), d, d)?,
            k: Linear::load(&attn.at("k_proj"), d, d)?,
            v: Linear::load(&attn.at("v_proj"), d, d)?,
            out: Linear::load(&attn.at("out_proj"), d, d)?,
            norm2: Norm::load(&w.at("layer_norm2"), d, eps)?,
            fc1: Linear::load(&w.at("mlp.fc1"), d, ff)?,
            fc2: Linear::load(&w.at("mlp.fc2"), ff, d)?,
        })
    }

    /// `x [B, L, D]` through the layer.
    pub fn forward(&self, x: &Tensor, args: &ClipLayerArgs) -> Result<Tensor> {
        let (b, l, d) = (x.dim(0), x.dim(1), x.dim(2));
        let (h, dh) = (args.heads, d / args.heads);
        let n = self.norm1.layer_norm(x)?;
        let heads = |t: Tensor| t.reshape(&[b, l, h, dh]);
        let (q, k, v) = (
            heads(self.q.forward(&n)?)?,
            heads(self.k.forward(&n)?)?,
            heads(self.v.forward(&n)?)?,
        );
        let a = attention(&AttentionArgs {
            bias: args.bias,
            key_mask: args.key_mask,
            ..AttentionArgs::new(&q, &k, &v, 1.0 / (dh as f32).sqrt())
        })?;
        let x = x.add(&self.out.forward(&a.reshape(&[b, l, d])?)?)?;
        let n = self.norm2.layer_norm(&x)?;
        let f = self.fc1.forward_act(&n, args.act)?;
        Ok(x.add(&self.fc2.forward(&f)?)?)
    }
}
