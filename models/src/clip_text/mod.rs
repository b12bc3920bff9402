//! The CLIP text encoder (transformers' `CLIPTextModel`), as the Stable Diffusion x4 upscaler uses
//! it for its text conditioning (and as CLIP score uses it): token + learned position embeddings,
//! pre-LayerNorm blocks of causal self-attention and a two-layer MLP, a final LayerNorm. Outputs
//! every position's state and the pooled state of each row's end-of-text token.
//!
//! Weights stay in their stored precision; activations are f32 throughout.

use std::path::Path;

use iterinv_engine::{grad, Activation, Gpu, Tensor};

use crate::config::clip::LEGACY_EOS_TOKEN_ID;
use crate::config::ClipTextConfig;
use crate::error::{Error, Result};
use crate::nn::{check_token_batch, ClipLayer, ClipLayerArgs, Norm};
use crate::weights::{load_network, NetworkFiles, Weights, TRANSFORMERS_STEM};

/// A pipeline folder keeps the encoder in this subfolder.
pub const SUBFOLDER: &str = "text_encoder";
const FILES: NetworkFiles = NetworkFiles {
    subfolder: SUBFOLDER,
    stem: TRANSFORMERS_STEM,
    name: "the CLIP text encoder",
};
/// Checkpoints saved by transformers before 5.0 nest every key under this module.
const LEGACY_PREFIX: &str = "text_model";
/// The causal mask's value above the diagonal: finite, as transformers' `finfo.min`, so that no
/// `inf − inf` can arise in the online softmax; `exp` of it is exactly 0.
const MASKED: f32 = -1e30;

/// What [`ClipTextEncoder::encode`] returns.
pub struct ClipTextOutput {
    /// `[B, L, hidden]`, after the final LayerNorm.
    pub last_hidden_state: Tensor,
    /// `[B, hidden]`: each row's state at its end-of-text token (see [`ClipTextConfig`]).
    pub pooler_output: Tensor,
}

pub struct ClipTextEncoder {
    gpu: Gpu,
    config: ClipTextConfig,
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<ClipLayer>,
    final_norm: Norm,
    act: Activation,
}

impl ClipTextEncoder {
    /// Load from a model folder (`config.json` + `model[.variant].safetensors`, single or
    /// sharded) or a pipeline folder with `text_encoder/`. Unused checkpoint keys are logged once.
    pub fn load(gpu: &Gpu, dir: &Path, variant: Option<&str>) -> Result<ClipTextEncoder> {
        load_network(gpu, dir, variant, FILES, ClipTextConfig::load, |c, w| {
            ClipTextEncoder::from_weights(gpu, c, w)
        })
    }

    /// Build from a config, taking each weight from `w`: keys as transformers 5 names them
    /// (`embeddings.token_embedding.weight`, ...) or under `text_model.` as older versions saved
    /// them. The `position_ids` buffer some old files hold is not a weight and is skipped.
    pub fn from_weights(gpu: &Gpu, config: ClipTextConfig, w: &Weights) -> Result<ClipTextEncoder> {
        config.validate()?;
        let legacy = w.at(LEGACY_PREFIX);
        let w = if legacy.contains("final_layer_norm.weight") {
            &legacy
        } else {
            w
        };
        if w.contains("embeddings.position_ids") {
            w.skip("embeddings.position_ids");
        }
        let c = &config;
        let (d, ff) = (c.hidden_size, c.intermediate_size);
        let eps = c.layer_norm_eps as f32;
        let layers = (0..c.num_hidden_layers)
            .map(|i| ClipLayer::load(&w.at(format_args!("encoder.layers.{i}")), d, ff, eps))
            .collect::<Result<_>>()?;
        Ok(ClipTextEncoder {
            gpu: gpu.clone(),
            token_embedding: w.tensor("embeddings.token_embedding.weight", &[c.vocab_size, d])?,
            position_embedding: w.tensor(
                "embeddings.position_embedding.weight",
                &[c.max_position_embeddings, d],
            )?,
            final_norm: Norm::load(&w.at("final_layer_norm"), d, eps)?,
            layers,
            act: c.activation()?,
            config,
        })
    }

    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// Encode token ids `[B][L]` (every row of equal length L ≤ `max_position_embeddings`), with
    /// an optional attention mask (1 = token, 0 = padding: padded keys are masked on top of the
    /// causal mask, as transformers does; Stable Diffusion passes none).
    pub fn encode(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
    ) -> Result<ClipTextOutput> {
        let c = &self.config;
        let (b, l) = check_token_batch(input_ids, attention_mask, c.vocab_size)?;
        if l > c.max_position_embeddings {
            return Err(Error::Input {
                what: "input_ids".into(),
                detail: format!(
                    "rows hold {l} tokens; the encoder has {} positions",
                    c.max_position_embeddings
                ),
            });
        }
        let d = c.hidden_size;
        let ids: Vec<i32> = input_ids.iter().flatten().map(|&t| t as i32).collect();
        let pooled_rows: Vec<i32> = input_ids
            .iter()
            .enumerate()
            .map(|(row, ids)| (row * l + self.pooled_position(ids)) as i32)
            .collect();
        grad::no_grad(|| {
            let ids = Tensor::from_i32(&self.gpu, &[b * l], &ids)?;
            let positions = self.position_embedding.slice(0, 0, l)?;
            let mut x = self
                .token_embedding
                .embedding(&ids)?
                .reshape(&[b, l, d])?
                .add(&positions)?;
            let causal = self.causal_bias(l)?;
            let mask = match attention_mask {
                Some(m) => {
                    let m: Vec<f32> = m.iter().flatten().map(|&v| v as f32).collect();
                    Some(Tensor::from_f32(&self.gpu, &[b, l], &m)?)
                }
                None => None,
            };
            let args = ClipLayerArgs {
                heads: c.num_attention_heads,
                act: self.act,
                bias: Some(&causal),
                key_mask: mask.as_ref(),
            };
            for layer in &self.layers {
                x = layer.forward(&x, &args)?;
            }
            let last_hidden_state = self.final_norm.layer_norm(&x)?;
            let rows = Tensor::from_i32(&self.gpu, &[b], &pooled_rows)?;
            let pooler_output = last_hidden_state.reshape(&[b * l, d])?.embedding(&rows)?;
            Ok(ClipTextOutput {
                last_hidden_state,
                pooler_output,
            })
        })
    }

    /// transformers' rule for the pooled token of one row: with a legacy config
    /// (`eos_token_id` 2) the first position of the largest id; otherwise the first position of
    /// `eos_token_id`, or 0 when the row has none.
    fn pooled_position(&self, ids: &[u32]) -> usize {
        if self.config.eos_token_id == LEGACY_EOS_TOKEN_ID {
            let max = ids.iter().copied().max().unwrap_or(0);
            ids.iter().position(|&t| t == max).unwrap_or(0)
        } else {
            let eos = self.config.eos_token_id;
            ids.iter().position(|&t| t == eos).unwrap_or(0)
        }
    }

    /// `[1, heads, L, L]`: 0 where key j ≤ query i, [`MASKED`] above the diagonal.
    fn causal_bias(&self, l: usize) -> Result<Tensor> {
        let h = self.config.num_attention_heads;
        let one_head = (0..l * l).map(|e| if e % l > e / l { MASKED } else { 0.0 });
        let bias: Vec<f32> = std::iter::repeat_n(one_head, h).flatten().collect();
        Ok(Tensor::from_f32(&self.gpu, &[1, h, l, l], &bias)?)
    }
}
