//! transformers' `CLIPConfig` (a `CLIPModel` folder's `config.json`, e.g. openai/clip-vit-base-
//! patch16, the paper's CLIP score model): the text tower's [`ClipTextConfig`], the vision tower's
//! [`ClipVisionConfig`] and the shared `projection_dim`, with transformers' defaults.

use std::path::Path;

use iterinv_engine::Activation;
use serde::Deserialize;

use super::check::{finite_positive, in_range};
use super::config_err;
use super::limits::{MAX_HEADS, MAX_LAYERS, MAX_SAMPLE_SIZE, MAX_WIDTH};
use super::ClipTextConfig;
use crate::error::Result;

#[derive(Clone, Debug, Deserialize)]
pub struct ClipModelConfig {
    /// `"clip"`; anything else is another network.
    #[serde(default)]
    pub model_type: Option<String>,
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    #[serde(default = "projection_dim")]
    pub projection_dim: usize,
}

/// transformers' `CLIPVisionConfig`: a ViT over `image_size`² pixels in `patch_size`² patches.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default = "hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "num_channels")]
    pub num_channels: usize,
    #[serde(default = "image_size")]
    pub image_size: usize,
    #[serde(default = "patch_size")]
    pub patch_size: usize,
    #[serde(default = "hidden_act")]
    pub hidden_act: String,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
}

// transformers' CLIPConfig / CLIPVisionConfig defaults (ViT-B/32).
fn projection_dim() -> usize {
    512
}
fn hidden_size() -> usize {
    768
}
fn intermediate_size() -> usize {
    3072
}
fn num_hidden_layers() -> usize {
    12
}
fn num_attention_heads() -> usize {
    12
}
fn num_channels() -> usize {
    3
}
fn image_size() -> usize {
    224
}
fn patch_size() -> usize {
    32
}
fn hidden_act() -> String {
    "quick_gelu".into()
}
fn layer_norm_eps() -> f64 {
    1e-5
}

impl ClipModelConfig {
    /// Read, parse and validate `dir/config.json`.
    pub fn load(dir: &Path) -> Result<ClipModelConfig> {
        super::load_validated(dir, None, ClipModelConfig::validate)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.model_type.as_deref() {
            if t != "clip" {
                return Err(config_err(
                    "model_type",
                    t,
                    "is not a CLIPModel (\"clip\"); CLIP score needs both towers, as \
                     openai/clip-vit-base-patch16's folder holds them",
                ));
            }
        }
        in_range("projection_dim", self.projection_dim, MAX_WIDTH)?;
        self.text_config.validate()?;
        self.vision_config.validate()
    }
}

impl ClipVisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "quick_gelu" => Ok(Activation::QuickGelu),
            other => Err(config_err(
                "vision_config.hidden_act",
                other,
                "iterinv supports \"gelu\" (exact) and \"quick_gelu\"",
            )),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.model_type.as_deref() {
            if t != "clip_vision_model" {
                return Err(config_err(
                    "vision_config.model_type",
                    t,
                    "is not a CLIP vision tower (\"clip_vision_model\")",
                ));
            }
        }
        for (field, v, max) in [
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            ("image_size", self.image_size, MAX_SAMPLE_SIZE),
            ("patch_size", self.patch_size, MAX_SAMPLE_SIZE),
        ] {
            in_range(&format!("vision_config.{field}"), v, max)?;
        }
        if self.num_channels != 3 {
            return Err(config_err(
                "vision_config.num_channels",
                self.num_channels,
                "must be 3 (RGB)",
            ));
        }
        if self.patch_size > self.image_size {
            return Err(config_err(
                "vision_config.patch_size",
                self.patch_size,
                format!("is larger than image_size ({})", self.image_size),
            ));
        }
        let max_head = iterinv_engine::ops::attention::MAX_HEAD_DIM;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) || self.head_dim() > max_head
        {
            return Err(config_err(
                "vision_config.num_attention_heads",
                self.num_attention_heads,
                format!(
                    "must divide hidden_size ({}) into heads of at most {max_head} dimensions",
                    self.hidden_size
                ),
            ));
        }
        finite_positive("vision_config.layer_norm_eps", self.layer_norm_eps)?;
        self.activation()?;
        Ok(())
    }
}
