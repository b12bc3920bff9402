//! transformers' `T5Config` (`text_encoder/config.json`), the fields the encoder uses.

use std::path::Path;

use iterinv_engine::Activation;
use serde::Deserialize;

use super::check::{finite_positive, in_range};
use super::config_err;
use super::limits::{MAX_BUCKETS, MAX_DISTANCE, MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH};
use crate::error::Result;

#[derive(Clone, Debug, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    #[serde(default = "d_model")]
    pub d_model: usize,
    #[serde(default = "d_kv")]
    pub d_kv: usize,
    #[serde(default = "d_ff")]
    pub d_ff: usize,
    #[serde(default = "num_layers")]
    pub num_layers: usize,
    #[serde(default = "num_heads")]
    pub num_heads: usize,
    #[serde(default = "buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    /// `"gated-gelu"` (T5 v1.1: gelu_new gate), `"relu"` (T5 v1.0) or `"gated-relu"`.
    #[serde(default = "relu")]
    pub feed_forward_proj: String,
}

// transformers' T5Config defaults.
fn d_model() -> usize {
    512
}
fn d_kv() -> usize {
    64
}
fn d_ff() -> usize {
    2048
}
fn num_layers() -> usize {
    6
}
fn num_heads() -> usize {
    8
}
fn buckets() -> usize {
    32
}
fn max_distance() -> usize {
    128
}
fn eps() -> f64 {
    1e-6
}
fn relu() -> String {
    "relu".into()
}

impl T5Config {
    /// Read, parse and validate `dir/config.json` (or `dir/subfolder/config.json`).
    pub fn load(dir: &Path, subfolder: Option<&str>) -> Result<T5Config> {
        super::load_validated(dir, subfolder, Self::validate)
    }

    /// Width of the attention's projections (`num_heads · d_kv`; may differ from `d_model`).
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    /// The feed-forward activation and whether it is gated (`wi_0`, `wi_1`) or not (`wi`).
    pub fn feed_forward(&self) -> Result<(Activation, bool)> {
        match self.feed_forward_proj.as_str() {
            // transformers maps "gated-gelu" to gelu_new, the tanh approximation.
            "gated-gelu" => Ok((Activation::GeluTanh, true)),
            "gated-relu" => Ok((Activation::Relu, true)),
            "relu" => Ok((Activation::Relu, false)),
            other => Err(config_err(
                "feed_forward_proj",
                other,
                "iterinv supports \"gated-gelu\", \"gated-relu\" and \"relu\"",
            )),
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (field, v, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("d_model", self.d_model, MAX_WIDTH),
            ("d_kv", self.d_kv, MAX_WIDTH),
            ("d_ff", self.d_ff, MAX_WIDTH),
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("num_heads", self.num_heads, MAX_HEADS),
            (
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
                MAX_BUCKETS,
            ),
            (
                "relative_attention_max_distance",
                self.relative_attention_max_distance,
                MAX_DISTANCE,
            ),
        ] {
            in_range(field, v, max)?;
        }
        // Bidirectional buckets: half per direction, half of those exact.
        if self.relative_attention_num_buckets < 4
            || !self.relative_attention_num_buckets.is_multiple_of(4)
        {
            return Err(config_err(
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
                "must be a multiple of 4 (two directions, exact and logarithmic halves)",
            ));
        }
        if self.relative_attention_max_distance <= self.relative_attention_num_buckets / 4 {
            return Err(config_err(
                "relative_attention_max_distance",
                self.relative_attention_max_distance,
                "must exceed a quarter of relative_attention_num_buckets",
            ));
        }
        let max_head = iterinv_engine::ops::attention::MAX_HEAD_DIM;
        if self.d_kv > max_head {
            return Err(config_err(
                "d_kv",
                self.d_kv,
                format!("iterinv's attention supports head dimensions up to {max_head}"),
            ));
        }
        finite_positive("layer_norm_epsilon", self.layer_norm_epsilon)?;
        self.feed_forward()?;
        Ok(())
    }
}
