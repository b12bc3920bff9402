//! `config.json` of diffusers' `UNet2DConditionModel`, as DeepFloyd IF (stage I M/L/XL, stage II
//! M/L) and the SD x4 upscaler write it. Field names, defaults and the meaning of absent or null
//! values follow diffusers' `UNet2DConditionModel.__init__`; see the project's spec/models.md §1.

use std::path::Path;

use iterinv_engine::Activation;
use serde::{Deserialize, Serialize};

use super::blocks::{ClassEmbedding, DownBlockType, MidBlockType, UpBlockType};
use super::check::{
    at_most, finite_positive, in_range, must_be_false, must_be_null, one_of, one_value,
};
use super::limits::{
    MAX_BLOCKS, MAX_CLASS_EMBEDS, MAX_LAYERS_PER_BLOCK, MAX_SAMPLE_SIZE, MAX_WIDTH,
};
use super::{activation, config_err, OneOrMany};
use crate::error::Result;

/// diffusers' `UNet2DConditionModel` config. Absent fields take diffusers' defaults; fields that
/// diffusers writes as `null` are `None`. Call [`validate`](Self::validate) before building a model.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct UNetConfig {
    #[serde(default)]
    pub sample_size: Option<OneOrMany<usize>>,
    #[serde(default = "d::four")]
    pub in_channels: usize,
    #[serde(default = "d::four")]
    pub out_channels: usize,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default = "d::yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "d::down_block_types")]
    pub down_block_types: Vec<String>,
    #[serde(default = "d::mid_block_type")]
    pub mid_block_type: Option<String>,
    #[serde(default = "d::up_block_types")]
    pub up_block_types: Vec<String>,
    #[serde(default = "d::no_per_block")]
    pub only_cross_attention: OneOrMany<bool>,
    #[serde(default = "d::block_out_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "d::two_per_block")]
    pub layers_per_block: OneOrMany<usize>,
    #[serde(default = "d::one")]
    pub downsample_padding: usize,
    #[serde(default = "d::unit")]
    pub mid_block_scale_factor: f64,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "d::silu")]
    pub act_fn: String,
    #[serde(default = "d::groups")]
    pub norm_num_groups: Option<usize>,
    #[serde(default = "d::eps")]
    pub norm_eps: f64,
    #[serde(default = "d::cross_attention_dim")]
    pub cross_attention_dim: OneOrMany<usize>,
    #[serde(default = "d::one_per_block")]
    pub transformer_layers_per_block: OneOrMany<usize>,
    #[serde(default)]
    pub reverse_transformer_layers_per_block: Option<serde_json::Value>,
    #[serde(default)]
    pub encoder_hid_dim: Option<usize>,
    #[serde(default)]
    pub encoder_hid_dim_type: Option<String>,
    /// Per-head dimension for IF's SimpleCrossAttn blocks; number of heads for SD's CrossAttn
    /// blocks (diffusers' historical naming).
    #[serde(default = "d::eight_per_block")]
    pub attention_head_dim: OneOrMany<usize>,
    #[serde(default)]
    pub num_attention_heads: Option<OneOrMany<usize>>,
    #[serde(default)]
    pub dual_cross_attention: bool,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub addition_time_embed_dim: Option<usize>,
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    #[serde(default)]
    pub upcast_attention: bool,
    #[serde(default = "d::default_str")]
    pub resnet_time_scale_shift: String,
    #[serde(default)]
    pub resnet_skip_time_act: bool,
    #[serde(default = "d::unit")]
    pub resnet_out_scale_factor: f64,
    #[serde(default = "d::positional")]
    pub time_embedding_type: String,
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    #[serde(default)]
    pub time_embedding_act_fn: Option<String>,
    #[serde(default)]
    pub timestep_post_act: Option<String>,
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    #[serde(default = "d::three")]
    pub conv_in_kernel: usize,
    #[serde(default = "d::three")]
    pub conv_out_kernel: usize,
    #[serde(default)]
    pub projection_class_embeddings_input_dim: Option<usize>,
    #[serde(default = "d::default_str")]
    pub attention_type: String,
    #[serde(default)]
    pub class_embeddings_concat: bool,
    #[serde(default)]
    pub mid_block_only_cross_attention: Option<bool>,
    #[serde(default)]
    pub cross_attention_norm: Option<String>,
    #[serde(default = "d::sixty_four")]
    pub addition_embed_type_num_heads: usize,
}

use super::unet_defaults as d;

/// GroupNorm groups of the attention's `norm_cross` (diffusers' `Attention` default).
const CROSS_NORM_GROUPS: usize = 32;

impl UNetConfig {
    /// Parse `config.json` text (not validated).
    pub fn from_json_str(text: &str, origin: &Path) -> Result<UNetConfig> {
        super::parse_str(text, origin)
    }

    /// Parse a JSON value (not validated).
    pub fn from_value(value: serde_json::Value, origin: &Path) -> Result<UNetConfig> {
        super::parse_value(value, origin)
    }

    /// Read, parse and validate `dir/config.json` (or `dir/subfolder/config.json`).
    pub fn load(dir: &Path, subfolder: Option<&str>) -> Result<UNetConfig> {
        super::load_validated(dir, subfolder, Self::validate)
    }

    /// The one square `sample_size` the IF pipelines need (an int, or `[s, s]`).
    pub fn square_sample_size(&self) -> Result<usize> {
        match &self.sample_size {
            Some(OneOrMany::One(s)) => Ok(*s),
            Some(OneOrMany::Many(v)) if v.len() == 2 && v[0] == v[1] => Ok(v[0]),
            other => Err(config_err(
                "sample_size",
                other,
                "the IF pipelines need one square sample size",
            )),
        }
    }

    /// Number of down (and up) blocks.
    pub fn num_blocks(&self) -> usize {
        self.down_block_types.len()
    }

    pub fn down_blocks(&self) -> Result<Vec<DownBlockType>> {
        self.down_block_types
            .iter()
            .enumerate()
            .map(|(i, n)| {
                DownBlockType::parse(n).ok_or_else(|| {
                    config_err(
                        &format!("down_block_types[{i}]"),
                        n,
                        format!("iterinv runs {}", DownBlockType::NAMES.join(", ")),
                    )
                })
            })
            .collect()
    }

    pub fn up_blocks(&self) -> Result<Vec<UpBlockType>> {
        self.up_block_types
            .iter()
            .enumerate()
            .map(|(i, n)| {
                UpBlockType::parse(n).ok_or_else(|| {
                    config_err(
                        &format!("up_block_types[{i}]"),
                        n,
                        format!("iterinv runs {}", UpBlockType::NAMES.join(", ")),
                    )
                })
            })
            .collect()
    }

    pub fn mid_block(&self) -> Result<MidBlockType> {
        let name = self.mid_block_type.as_deref();
        name.and_then(MidBlockType::parse).ok_or_else(|| {
            config_err(
                "mid_block_type",
                name,
                format!("iterinv runs {}", MidBlockType::NAMES.join(", ")),
            )
        })
    }

    /// The resnets' and output's activation.
    pub fn act(&self) -> Result<Activation> {
        activation("act_fn", &self.act_fn)
    }

    /// The activation applied to the summed embedding before the resnets (IF-II: gelu), if any.
    pub fn time_embedding_act(&self) -> Result<Option<Activation>> {
        self.time_embedding_act_fn
            .as_deref()
            .map(|n| activation("time_embedding_act_fn", n))
            .transpose()
    }

    /// Width of the time embedding: `time_embedding_dim`, or 4 × the first block's channels.
    pub fn time_embed_dim(&self) -> usize {
        self.time_embedding_dim
            .unwrap_or_else(|| 4 * self.block_out_channels.first().copied().unwrap_or(0))
    }

    /// `encoder_hid_dim_type`, with diffusers' rule: absent but `encoder_hid_dim` set → "text_proj".
    pub fn encoder_hid_dim_type(&self) -> Option<&str> {
        match (&self.encoder_hid_dim_type, self.encoder_hid_dim) {
            (Some(t), _) => Some(t.as_str()),
            (None, Some(_)) => Some("text_proj"),
            (None, None) => None,
        }
    }

    pub fn class_embedding(&self) -> ClassEmbedding {
        match (self.class_embed_type.as_deref(), self.num_class_embeds) {
            (Some("timestep"), _) => ClassEmbedding::Timestep,
            (None, Some(n)) => ClassEmbedding::Table(n),
            _ => ClassEmbedding::None,
        }
    }

    /// True for FiLM-style `norm2(h)·(1+scale)+shift` conditioning in the resnets.
    pub fn scale_shift(&self) -> bool {
        self.resnet_time_scale_shift == "scale_shift"
    }

    /// Whether the text-pooling embedding (`add_embedding`) is present.
    pub fn has_text_embedding(&self) -> bool {
        self.addition_embed_type.as_deref() == Some("text")
    }

    /// The width of the text the UNet is given (the encoder's hidden size): `encoder_hid_dim`,
    /// else the cross-attention width.
    pub fn text_dim(&self) -> Option<usize> {
        self.encoder_hid_dim.or(match self.cross_attention_dim {
            OneOrMany::One(c) => Some(c),
            OneOrMany::Many(_) => None,
        })
    }

    pub fn layers_per_block(&self) -> Result<Vec<usize>> {
        self.layers_per_block
            .per_block(self.num_blocks(), "layers_per_block")
    }

    pub fn attention_head_dims(&self) -> Result<Vec<usize>> {
        self.attention_head_dim
            .per_block(self.num_blocks(), "attention_head_dim")
    }

    pub fn cross_attention_dims(&self) -> Result<Vec<usize>> {
        self.cross_attention_dim
            .per_block(self.num_blocks(), "cross_attention_dim")
    }

    pub fn only_cross_attention(&self) -> Result<Vec<bool>> {
        self.only_cross_attention
            .per_block(self.num_blocks(), "only_cross_attention")
    }

    /// Check everything iterinv relies on; the first problem found is returned, naming the field
    /// and its value. A config that passes has consistent per-block lists and known block types.
    pub fn validate(&self) -> Result<()> {
        let n = self.num_blocks();
        if n == 0 {
            return Err(config_err(
                "down_block_types",
                &self.down_block_types,
                "needs at least one block",
            ));
        }
        at_most("down_block_types (its length)", n, MAX_BLOCKS)?;
        if self.block_out_channels.len() != n {
            return Err(config_err(
                "block_out_channels",
                &self.block_out_channels,
                format!("needs one entry per down block ({n})"),
            ));
        }
        if self.up_block_types.len() != n {
            return Err(config_err(
                "up_block_types",
                &self.up_block_types,
                format!("needs as many blocks as down_block_types ({n})"),
            ));
        }
        let downs = self.down_blocks()?;
        let ups = self.up_blocks()?;
        let mid = self.mid_block()?;
        self.act()?;
        self.time_embedding_act()?;

        in_range("in_channels", self.in_channels, MAX_WIDTH)?;
        in_range("out_channels", self.out_channels, MAX_WIDTH)?;
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            in_range(&format!("block_out_channels[{i}]"), c, MAX_WIDTH)?;
        }
        let layers = self.layers_per_block()?;
        for (i, &l) in layers.iter().enumerate() {
            in_range(&format!("layers_per_block[{i}]"), l, MAX_LAYERS_PER_BLOCK)?;
        }
        let heads = self.attention_head_dims()?;
        for (i, &h) in heads.iter().enumerate() {
            in_range(&format!("attention_head_dim[{i}]"), h, MAX_WIDTH)?;
        }
        let cross = self.cross_attention_dims()?;
        for (i, &c) in cross.iter().enumerate() {
            in_range(&format!("cross_attention_dim[{i}]"), c, MAX_WIDTH)?;
        }
        if let Some(size) = &self.sample_size {
            for (i, s) in size.values().into_iter().enumerate() {
                in_range(&format!("sample_size[{i}]"), s, MAX_SAMPLE_SIZE)?;
            }
        }
        if let Some(d) = self.encoder_hid_dim {
            in_range("encoder_hid_dim", d, MAX_WIDTH)?;
        }
        let only_cross = self.only_cross_attention()?;
        let transformer_layers = self
            .transformer_layers_per_block
            .per_block(n, "transformer_layers_per_block")?;
        if transformer_layers.iter().any(|&l| l != 1) {
            return Err(config_err(
                "transformer_layers_per_block",
                &self.transformer_layers_per_block,
                "iterinv runs one transformer layer per attention",
            ));
        }

        // Normalization.
        let Some(groups) = self.norm_num_groups.filter(|&g| g > 0) else {
            return Err(config_err(
                "norm_num_groups",
                self.norm_num_groups,
                "iterinv needs GroupNorm (a positive group count)",
            ));
        };
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if !c.is_multiple_of(groups) {
                return Err(config_err(
                    &format!("block_out_channels[{i}]"),
                    c,
                    format!("not divisible by norm_num_groups ({groups})"),
                ));
            }
        }
        finite_positive("norm_eps", self.norm_eps)?;
        finite_positive("resnet_out_scale_factor", self.resnet_out_scale_factor)?;
        finite_positive("mid_block_scale_factor", self.mid_block_scale_factor)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(config_err("dropout", self.dropout, "must be in [0, 1)"));
        }
        one_of(
            "resnet_time_scale_shift",
            &self.resnet_time_scale_shift,
            &["default", "scale_shift"],
        )?;
        match self.cross_attention_norm.as_deref() {
            None => {}
            Some("group_norm") => {
                for (i, &c) in cross.iter().enumerate() {
                    if !c.is_multiple_of(CROSS_NORM_GROUPS) {
                        return Err(config_err(
                            &format!("cross_attention_dim[{i}]"),
                            c,
                            format!(
                                "cross_attention_norm \"group_norm\" needs a multiple of {CROSS_NORM_GROUPS}"
                            ),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(config_err(
                    "cross_attention_norm",
                    other,
                    "iterinv supports null and \"group_norm\"",
                ))
            }
        }

        // Time, class and text embeddings.
        one_of(
            "time_embedding_type",
            &self.time_embedding_type,
            &["positional"],
        )?;
        if let Some(t) = self.time_embedding_dim {
            in_range("time_embedding_dim", t, MAX_WIDTH)?;
        }
        if !self.block_out_channels[0].is_multiple_of(2) {
            return Err(config_err(
                "block_out_channels[0]",
                self.block_out_channels[0],
                "the sinusoidal timestep embedding needs an even width",
            ));
        }
        must_be_null("timestep_post_act", &self.timestep_post_act)?;
        must_be_null("time_cond_proj_dim", &self.time_cond_proj_dim)?;
        must_be_null("addition_time_embed_dim", &self.addition_time_embed_dim)?;
        must_be_null(
            "projection_class_embeddings_input_dim",
            &self.projection_class_embeddings_input_dim,
        )?;
        match self.class_embed_type.as_deref() {
            None | Some("timestep") => {}
            Some(other) => {
                return Err(config_err(
                    "class_embed_type",
                    other,
                    "iterinv supports null and \"timestep\"",
                ))
            }
        }
        if let Some(k) = self.num_class_embeds {
            in_range("num_class_embeds", k, MAX_CLASS_EMBEDS)?;
        }
        match self.encoder_hid_dim_type() {
            None | Some("text_proj") => {}
            Some(other) => {
                return Err(config_err(
                    "encoder_hid_dim_type",
                    other,
                    "iterinv supports \"text_proj\" (or null)",
                ))
            }
        }
        if self.encoder_hid_dim_type.is_some() && self.encoder_hid_dim.is_none() {
            return Err(config_err(
                "encoder_hid_dim",
                None::<usize>,
                "encoder_hid_dim_type is set, so encoder_hid_dim must be too",
            ));
        }
        match self.addition_embed_type.as_deref() {
            None => {}
            Some("text") => {
                let h = self.addition_embed_type_num_heads;
                in_range("addition_embed_type_num_heads", h, MAX_WIDTH)?;
                let Some(dim) = self.text_dim() else {
                    return Err(config_err(
                        "addition_embed_type",
                        "text",
                        "needs encoder_hid_dim or a single cross_attention_dim as the text width",
                    ));
                };
                if !dim.is_multiple_of(h) {
                    return Err(config_err(
                        "addition_embed_type_num_heads",
                        h,
                        format!("must divide the text width {dim}"),
                    ));
                }
            }
            Some(other) => {
                return Err(config_err(
                    "addition_embed_type",
                    other,
                    "iterinv supports \"text\" and null",
                ))
            }
        }

        // Attention.
        must_be_null("num_attention_heads", &self.num_attention_heads)?;
        must_be_null(
            "reverse_transformer_layers_per_block",
            &self.reverse_transformer_layers_per_block,
        )?;
        one_of("attention_type", &self.attention_type, &["default"])?;
        must_be_false("dual_cross_attention", self.dual_cross_attention)?;
        must_be_false("class_embeddings_concat", self.class_embeddings_concat)?;
        must_be_false("center_input_sample", self.center_input_sample)?;
        if self.mid_block_only_cross_attention == Some(true) {
            return Err(config_err(
                "mid_block_only_cross_attention",
                true,
                "iterinv supports null and false",
            ));
        }
        // Level i: down block i and up block n-1-i (diffusers reverses the per-block lists for
        // the up path, so both use entry i).
        for i in 0..n {
            let c = self.block_out_channels[i];
            let kinds = [
                downs[i]
                    .has_attention()
                    .then_some(downs[i] == DownBlockType::SimpleCrossAttn),
                ups[n - 1 - i]
                    .has_attention()
                    .then_some(ups[n - 1 - i] == UpBlockType::SimpleCrossAttn),
            ];
            for simple in kinds {
                self.check_attention(i, c, heads[i], simple)?;
                if only_cross[i] && simple == Some(true) {
                    return Err(config_err(
                        &format!("only_cross_attention[{i}]"),
                        true,
                        "iterinv supports it only on CrossAttn blocks (SD), not SimpleCrossAttn (IF)",
                    ));
                }
            }
        }
        let last = n - 1;
        self.check_attention(
            last,
            self.block_out_channels[last],
            heads[last],
            Some(mid == MidBlockType::SimpleCrossAttn),
        )?;

        // Convolutions.
        one_value("conv_in_kernel", self.conv_in_kernel, 3)?;
        one_value("conv_out_kernel", self.conv_out_kernel, 3)?;
        one_value("downsample_padding", self.downsample_padding, 1)?;
        Ok(())
    }

    /// `simple`: Some(true) for IF's added-KV attention (attention_head_dim is the per-head width),
    /// Some(false) for SD's transformer (attention_head_dim is the head count), None for none.
    fn check_attention(&self, i: usize, c: usize, head: usize, simple: Option<bool>) -> Result<()> {
        let what = match simple {
            Some(true) => "the per-head width",
            Some(false) => "the head count",
            None => return Ok(()),
        };
        if !c.is_multiple_of(head) {
            return Err(config_err(
                &format!("attention_head_dim[{i}]"),
                head,
                format!("{what} must divide the block's {c} channels"),
            ));
        }
        Ok(())
    }
}
