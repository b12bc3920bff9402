//! `config.json` of diffusers' `AutoencoderKL` (the SD x4 upscaler's `vae/`). Field names and
//! defaults follow `AutoencoderKL.__init__`; see the project's spec/models.md §4.

use std::path::Path;

use iterinv_engine::Activation;
use serde::{Deserialize, Serialize};

use super::check::{at_most, finite_positive, in_range, must_be_null};
use super::limits::{MAX_BLOCKS, MAX_LAYERS_PER_BLOCK, MAX_SAMPLE_SIZE, MAX_WIDTH};
use super::{activation, config_err};
use crate::error::Result;

/// The class name diffusers writes into an `AutoencoderKL`'s `config.json`.
pub const VAE_CLASS: &str = "AutoencoderKL";
const DOWN_BLOCK: &str = "DownEncoderBlock2D";
const UP_BLOCK: &str = "UpDecoderBlock2D";

/// diffusers' `AutoencoderKL` config. Absent fields take diffusers' defaults. Call
/// [`validate`](Self::validate) before building a model.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct VaeConfig {
    /// `_class_name`: absent in hand-written configs; when present it must be `AutoencoderKL`.
    #[serde(default, rename = "_class_name")]
    pub class_name: Option<String>,
    #[serde(default = "d::three")]
    pub in_channels: usize,
    #[serde(default = "d::three")]
    pub out_channels: usize,
    #[serde(default = "d::down_block_types")]
    pub down_block_types: Vec<String>,
    #[serde(default = "d::up_block_types")]
    pub up_block_types: Vec<String>,
    #[serde(default = "d::block_out_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "d::one")]
    pub layers_per_block: usize,
    #[serde(default = "d::silu")]
    pub act_fn: String,
    #[serde(default = "d::four")]
    pub latent_channels: usize,
    #[serde(default = "d::groups")]
    pub norm_num_groups: usize,
    #[serde(default = "d::sample_size")]
    pub sample_size: usize,
    #[serde(default = "d::scaling_factor")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default)]
    pub latents_mean: Option<Vec<f64>>,
    #[serde(default)]
    pub latents_std: Option<Vec<f64>>,
    /// Whether diffusers runs the VAE in f32 even in an fp16 pipeline. iterinv always computes in
    /// f32, so it is read and not used.
    #[serde(default = "d::yes")]
    pub force_upcast: bool,
    #[serde(default = "d::yes")]
    pub use_quant_conv: bool,
    #[serde(default = "d::yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "d::yes")]
    pub mid_block_add_attention: bool,
}

/// diffusers' `AutoencoderKL.__init__` defaults.
mod d {
    pub fn three() -> usize {
        3
    }
    pub fn four() -> usize {
        4
    }
    pub fn one() -> usize {
        1
    }
    pub fn groups() -> usize {
        32
    }
    pub fn sample_size() -> usize {
        32
    }
    pub fn scaling_factor() -> f64 {
        0.18215
    }
    pub fn yes() -> bool {
        true
    }
    pub fn silu() -> String {
        "silu".into()
    }
    pub fn down_block_types() -> Vec<String> {
        vec![super::DOWN_BLOCK.into()]
    }
    pub fn up_block_types() -> Vec<String> {
        vec![super::UP_BLOCK.into()]
    }
    pub fn block_out_channels() -> Vec<usize> {
        vec![64]
    }
}

impl VaeConfig {
    /// Parse a JSON value (not validated).
    pub fn from_value(value: serde_json::Value, origin: &Path) -> Result<VaeConfig> {
        super::parse_value(value, origin)
    }

    /// Read, parse and validate `dir/config.json` (or `dir/subfolder/config.json`).
    pub fn load(dir: &Path, subfolder: Option<&str>) -> Result<VaeConfig> {
        super::load_validated(dir, subfolder, Self::validate)
    }

    /// The resnets' activation (the encoder's and decoder's output activation is always SiLU).
    pub fn act(&self) -> Result<Activation> {
        activation("act_fn", &self.act_fn)
    }

    /// How many times the encoder halves the image (and the decoder doubles the latent):
    /// one downsampler per block but the last.
    pub fn downsamplers(&self) -> usize {
        self.block_out_channels.len().saturating_sub(1)
    }

    /// The factor image sides must be multiples of: 2^downsamplers.
    pub fn size_multiple(&self) -> usize {
        1 << self.downsamplers()
    }

    /// Check everything iterinv relies on; the first problem found is returned, naming the field
    /// and its value.
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = self.class_name.as_deref().filter(|&n| n != VAE_CLASS) {
            return Err(config_err(
                "_class_name",
                name,
                format!(
                    "this folder holds a {name}; the VAE iterinv runs is an {VAE_CLASS} \
                     (a pipeline's vae/ folder)"
                ),
            ));
        }
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(config_err(
                "block_out_channels",
                &self.block_out_channels,
                "needs at least one block",
            ));
        }
        at_most("block_out_channels (its length)", n, MAX_BLOCKS)?;
        for (field, types, kind) in [
            ("down_block_types", &self.down_block_types, DOWN_BLOCK),
            ("up_block_types", &self.up_block_types, UP_BLOCK),
        ] {
            if types.len() != n {
                return Err(config_err(
                    field,
                    types,
                    format!("needs one entry per block_out_channels entry ({n})"),
                ));
            }
            if let Some((i, t)) = types.iter().enumerate().find(|(_, t)| *t != kind) {
                return Err(config_err(
                    &format!("{field}[{i}]"),
                    t,
                    format!("iterinv's VAE runs \"{kind}\""),
                ));
            }
        }
        in_range("in_channels", self.in_channels, MAX_WIDTH)?;
        in_range("out_channels", self.out_channels, MAX_WIDTH)?;
        in_range("latent_channels", self.latent_channels, MAX_WIDTH)?;
        in_range(
            "layers_per_block",
            self.layers_per_block,
            MAX_LAYERS_PER_BLOCK,
        )?;
        in_range("sample_size", self.sample_size, MAX_SAMPLE_SIZE)?;
        in_range("norm_num_groups", self.norm_num_groups, MAX_WIDTH)?;
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            in_range(&format!("block_out_channels[{i}]"), c, MAX_WIDTH)?;
            if !c.is_multiple_of(self.norm_num_groups) {
                return Err(config_err(
                    &format!("block_out_channels[{i}]"),
                    c,
                    format!(
                        "not divisible by norm_num_groups ({})",
                        self.norm_num_groups
                    ),
                ));
            }
        }
        self.act()?;
        finite_positive("scaling_factor", self.scaling_factor)?;
        // Latent normalisations the SD x4 upscaler does not use (SD3, Flux): refused rather than
        // silently ignored by a caller that scales latents by scaling_factor alone.
        must_be_null("shift_factor", &self.shift_factor)?;
        must_be_null("latents_mean", &self.latents_mean)?;
        must_be_null("latents_std", &self.latents_std)?;
        Ok(())
    }
}
