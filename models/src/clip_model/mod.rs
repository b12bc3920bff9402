//! transformers' `CLIPModel` for CLIP score: the text tower ([`ClipTextEncoder`]) and the vision
//! tower ([`ClipVision`]), each followed by its bias-free projection (`text_projection`,
//! `visual_projection`) into the shared embedding space. torchmetrics' CLIPScore is
//! 100 · max(cos(image embedding, text embedding), 0) ([`clip_score`]).
//!
//! Loads a `CLIPModel` folder (`config.json` + `model.safetensors`, as save_pretrained writes it
//! and as openai/clip-vit-base-patch16 ships it); the `logit_scale` and any `position_ids`
//! buffers are not needed for the score and are skipped. Preprocessing the image
//! (CLIPProcessor's resize, crop and normalization) is the root crate's (`iterinv::clip_image`).

mod vision;

use std::path::Path;

use iterinv_engine::{grad, Gpu, Tensor};

use crate::clip_text::ClipTextEncoder;
use crate::config::ClipModelConfig;
use crate::error::Result;
use crate::nn::Linear;
use crate::weights::{build_from_checkpoint, Weights, TRANSFORMERS_STEM};

pub use vision::ClipVision;

pub struct ClipModel {
    config: ClipModelConfig,
    text: ClipTextEncoder,
    text_projection: Linear,
    vision: ClipVision,
    visual_projection: Linear,
}

impl ClipModel {
    /// Load from a CLIPModel folder.
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<ClipModel> {
        let config = ClipModelConfig::load(dir)?;
        build_from_checkpoint(gpu, dir, None, None, TRANSFORMERS_STEM, "CLIPModel", |w| {
            ClipModel::from_weights(gpu, config, w)
        })
    }

    pub fn from_weights(gpu: &Gpu, config: ClipModelConfig, w: &Weights) -> Result<ClipModel> {
        config.validate()?;
        let p = config.projection_dim;
        if w.contains("logit_scale") {
            w.skip("logit_scale");
        }
        let text =
            ClipTextEncoder::from_weights(gpu, config.text_config.clone(), &w.at("text_model"))?;
        let vision = ClipVision::from_weights(config.vision_config.clone(), &w.at("vision_model"))?;
        Ok(ClipModel {
            text_projection: Linear::load_no_bias(
                &w.at("text_projection"),
                config.text_config.hidden_size,
                p,
            )?,
            visual_projection: Linear::load_no_bias(
                &w.at("visual_projection"),
                config.vision_config.hidden_size,
                p,
            )?,
            text,
            vision,
            config,
        })
    }

    pub fn config(&self) -> &ClipModelConfig {
        &self.config
    }

    /// Image embeddings `[B, projection_dim]` of CLIPProcessor's pixel values `[B, 3, S, S]`.
    pub fn image_embeds(&self, pixels: &Tensor) -> Result<Tensor> {
        grad::no_grad(|| self.visual_projection.forward(&self.vision.pooled(pixels)?))
    }

    /// Text embeddings `[B, projection_dim]` of token ids (rows of equal length, at most the text
    /// tower's positions; all attended, as torchmetrics passes one prompt at a time).
    pub fn text_embeds(&self, input_ids: &[Vec<u32>]) -> Result<Tensor> {
        grad::no_grad(|| {
            let pooled = self.text.encode(input_ids, None)?.pooler_output;
            self.text_projection.forward(&pooled)
        })
    }
}

/// torchmetrics' CLIPScore of one image and one text embedding: 100 · max(cos, 0), in f64.
pub fn clip_score(image: &[f32], text: &[f32]) -> f64 {
    let dot: f64 = image
        .iter()
        .zip(text)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = dot / (norm(image) * norm(text));
    if cos.is_nan() {
        0.0
    } else {
        100.0 * cos.max(0.0)
    }
}
