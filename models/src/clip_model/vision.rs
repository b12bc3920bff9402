//! The CLIP vision tower (transformers' `CLIPVisionTransformer`): a patch convolution without
//! bias, a learned class token in front of the patches, learned position embeddings, `pre_layrnorm`
//! (transformers' spelling), pre-LayerNorm blocks of bidirectional self-attention and a two-layer
//! MLP, and `post_layernorm` of the class token's final state (the pooled output).

use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::ops::conv::Conv2dOptions;
use iterinv_engine::{Activation, Tensor};

use crate::config::ClipVisionConfig;
use crate::error::{Error, Result};
use crate::nn::{Linear, Norm};
use crate::weights::Weights;

struct Layer {
    norm1: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
}

pub struct ClipVision {
    config: ClipVisionConfig,
    patch: Tensor,
    class: Tensor,
    positions: Tensor,
    pre_norm: Norm,
    layers: Vec<Layer>,
    post_norm: Norm,
    act: Activation,
}

impl ClipVision {
    /// From the weights of `vision_model` (keys as transformers names them).
    pub fn from_weights(config: ClipVisionConfig, w: &Weights) -> Result<ClipVision> {
        let c = &config;
        let (d, ff, p) = (c.hidden_size, c.intermediate_size, c.patch_size);
        let eps = c.layer_norm_eps as f32;
        let e = w.at("embeddings");
        if e.contains("position_ids") {
            e.skip("position_ids");
        }
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = w.at(format_args!("encoder.layers.{i}"));
                let attn = l.at("self_attn");
                Ok(Layer {
                    norm1: Norm::load(&l.at("layer_norm1"), d, eps)?,
                    q: Linear::load(&attn.at("q_proj"), d, d)?,
                    k: Linear::load(&attn.at("k_proj"), d, d)?,
                    v: Linear::load(&attn.at("v_proj"), d, d)?,
                    out: Linear::load(&attn.at("out_proj"), d, d)?,
                    norm2: Norm::load(&l.at("layer_norm2"), d, eps)?,
                    fc1: Linear::load(&l.at("mlp.fc1"), d, ff)?,
                    fc2: Linear::load(&l.at("mlp.fc2"), ff, d)?,
                })
            })
            .collect::<Result<_>>()?;
        let tokens = c.grid() * c.grid() + 1;
        Ok(ClipVision {
            patch: e.tensor("patch_embedding.weight", &[d, c.num_channels, p, p])?,
            class: e.tensor("class_embedding", &[d])?,
            positions: e.tensor("position_embedding.weight", &[tokens, d])?,
            pre_norm: Norm::load(&w.at("pre_layrnorm"), d, eps)?,
            layers,
            post_norm: Norm::load(&w.at("post_layernorm"), d, eps)?,
            act: c.activation()?,
            config,
        })
    }

    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// The pooled output `[B, hidden]` of pixel values `[B, 3, S, S]`, S = `image_size` (what
    /// CLIPProcessor gives). Call inside `grad::no_grad` unless gradients are wanted.
    pub fn pooled(&self, pixels: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let s = pixels.shape();
        if s.len() != 4 || s[1] != 3 || s[2] != c.image_size || s[3] != c.image_size {
            return Err(Error::Input {
                what: "pixel_values".into(),
                detail: format!(
                    "is {s:?}; the vision tower takes [B, 3, {0}, {0}]",
                    c.image_size
                ),
            });
        }
        let (b, d, g) = (s[0], c.hidden_size, c.grid());
        let (h, dh, l) = (c.num_attention_heads, c.head_dim(), g * g + 1);
        let patches = pixels
            .conv2d(
                &self.patch,
                None,
                Conv2dOptions {
                    stride: c.patch_size,
                    ..Default::default()
                },
            )?
            .reshape(&[b, d, g * g])?
            .transpose(1, 2)?;
        let class = self
            .class
            .to_f32()?
            .reshape(&[1, 1, d])?
            .mul(&Tensor::full(pixels.gpu(), &[b, 1, 1], 1.0)?)?;
        let mut x = Tensor::concat(&[&class, &patches], 1)?.add(&self.positions)?;
        x = self.pre_norm.layer_norm(&x)?;
        let scale = 1.0 / (dh as f32).sqrt();
        for layer in &self.layers {
            let n = layer.norm1.layer_norm(&x)?;
            let heads = |t: Tensor| t.reshape(&[b, l, h, dh]);
            let (q, k, v) = (
                heads(layer.q.forward(&n)?)?,
                heads(layer.k.forward(&n)?)?,
                heads(layer.v.forward(&n)?)?,
            );
            let a = attention(&AttentionArgs::new(&q, &k, &v, scale))?;
            x = x.add(&layer.out.forward(&a.reshape(&[b, l, d])?)?)?;
            let n = layer.norm2.layer_norm(&x)?;
            let f = layer.fc1.forward_act(&n, self.act)?;
            x = x.add(&layer.fc2.forward(&f)?)?;
        }
        let first = x.slice(1, 0, 1)?.reshape(&[b, d])?;
        self.post_norm.layer_norm(&first)
    }
}
