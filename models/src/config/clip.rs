//! transformers' `CLIPTextConfig` (`text_encoder/config.json` of a Stable Diffusion pipeline), the
//! fields the text encoder uses, with transformers' defaults (OpenAI CLIP ViT-B/32's text tower).

use std::path::Path;

use iterinv_engine::Activation;
use serde::Deserialize;

use super::check::{finite_positive, in_range};
use super::config_err;
use super::limits::{MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH};
use crate::error::{Error, Result};

/// The most positions a CLIP text encoder may declare (CLIP: 77). Each position is a row of the
/// causal mask the encoder builds per call, `heads · L²` floats.
pub const MAX_POSITIONS: usize = 4096;

#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// `"clip_text_model"` in a text encoder's config; anything else is another network.
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default = "vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// `"quick_gelu"` (OpenAI CLIP) or `"gelu"` (exact; OpenCLIP towers such as SD 2's).
    #[serde(default = "hidden_act")]
    pub hidden_act: String,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Picks the pooled position: configs written before transformers fixed it say 2, and then
    /// the pooled token is the one with the largest id (the EOS of CLIP's vocabulary); otherwise
    /// it is the first `eos_token_id` of each row.
    #[serde(default = "eos_token_id")]
    pub eos_token_id: u32,
}

// transformers' CLIPTextConfig defaults.
fn vocab_size() -> usize {
    49408
}
fn hidden_size() -> usize {
    512
}
fn intermediate_size() -> usize {
    2048
}
fn num_hidden_layers() -> usize {
    12
}
fn num_attention_heads() -> usize {
    8
}
fn max_position_embeddings() -> usize {
    77
}
fn hidden_act() -> String {
    "quick_gelu".into()
}
fn layer_norm_eps() -> f64 {
    1e-5
}
fn eos_token_id() -> u32 {
    49407
}

/// The `eos_token_id` of configs saved before transformers' fix (PR #24773).
pub const LEGACY_EOS_TOKEN_ID: u32 = 2;

impl ClipTextConfig {
    /// Read, parse and validate `dir/config.json` (or `dir/subfolder/config.json`).
    pub fn load(dir: &Path, subfolder: Option<&str>) -> Result<ClipTextConfig> {
        let path = super::config_path(dir, subfolder);
        let config: ClipTextConfig = super::read(&path)?;
        config.validate().map_err(|e| Error::InFile {
            path,
            source: Box::new(e),
        })?;
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The feed-forward activation `hidden_act` names.
    pub fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            // transformers' "gelu" is the exact erf form.
            "gelu" => Ok(Activation::Gelu),
            "quick_gelu" => Ok(Activation::QuickGelu),
            other => Err(config_err(
                "hidden_act",
                other,
                "iterinv supports \"gelu\" (exact) and \"quick_gelu\"",
            )),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.model_type.as_deref() {
            if t != "clip_text_model" {
                return Err(config_err(
                    "model_type",
                    t,
                    "is not a CLIP text encoder (\"clip_text_model\"); is this the right folder?",
                ));
            }
        }
        for (field, v, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITIONS,
            ),
        ] {
            in_range(field, v, max)?;
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(config_err(
                "num_attention_heads",
                self.num_attention_heads,
                format!("must divide hidden_size ({})", self.hidden_size),
            ));
        }
        let max_head = iterinv_engine::ops::attention::MAX_HEAD_DIM;
        if self.head_dim() > max_head {
            return Err(config_err(
                "num_attention_heads",
                self.num_attention_heads,
                format!(
                    "gives heads of {} dimensions; iterinv's attention supports up to {max_head}",
                    self.head_dim()
                ),
            ));
        }
        finite_positive("layer_norm_eps", self.layer_norm_eps)?;
        self.activation()?;
        Ok(())
    }
}
