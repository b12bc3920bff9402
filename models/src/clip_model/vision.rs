//! The CLIP vision tower (transformers' `CLIPVisionTransformer`): a patch convolution without
//! bias, a learned class token in front of the patches, learned position embeddings, `pre_layrnorm`
//! (transformers' spelling), pre-LayerNorm blocks of bidirectional self-attention and a two-layer
//! MLP, and `post_layernorm` of the class token's final state (the pooled output).

use iterinv_engine::ops::conv::Conv2dOptions;
use iterinv_engine::{Activation, Tensor};

use crate::config::ClipVisionConfig;
use crate::error::{Error, Result};
use crate::nn::{ClipLayer, ClipLayerArgs, Norm};
use crate::weights::Weights;

pub struct ClipVision {
    config: ClipVisionConfig,
    patch: Tensor,
    class: Tensor,
    positions: Tensor,
    pre_norm: Norm,
    layers: Vec<ClipLayer>,
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
            .map(|i| ClipLayer::load(&w.at(format_args!("encoder.layers.{i}")), d, ff, eps))
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
        let args = ClipLayerArgs {
            heads: c.num_attention_heads,
            act: self.act,
            bias: None,
            key_mask: None,
        };
        for layer in &self.layers {
            x = layer.forward(&x, &args)?;
        }
        let first = x.slice(1, 0, 1)?.reshape(&[b, d])?;
        self.post_norm.layer_norm(&first)
    }
}
