//! diffusers' `UNet2DConditionModel`, built from the checkpoint's `config.json` and weights, with
//! IF's blocks (DeepFloyd-IF stage I and II: added-KV attention, resampling resnets) or SD's (the
//! Stable Diffusion x4 upscaler: transformer layers, convolution resamplers, a class-embedding
//! table), or any mix of them. Forward only here; gradients with respect to the sample and the
//! text come from the engine's autodiff (track the inputs with `requires_grad` and call
//! `grad::grad`), the weights being constants.

mod attention;
mod blocks;
mod context;
mod embeddings;
mod transformer;

use std::path::Path;

use iterinv_engine::ops::elementwise::unary;
use iterinv_engine::{Activation, Gpu, Tensor};

use crate::config::{
    config_err, ClassEmbedding, DownBlockType, MidBlockType, UNetConfig, UpBlockType,
};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, Linear, Norm, ResnetOptions, TimeConditioning};
use crate::weights::{load_network, NetworkFiles, Weights, DIFFUSERS_STEM};
use attention::AttentionShape;
use blocks::{AttentionKind, BlockSpec, DownBlock, Emb, MidBlock, ResamplerKind, UpBlock};
use context::Context;
use embeddings::{sinusoid_tensor, TextPooling, TimestepMlp};
use transformer::TransformerShape;

pub use embeddings::timestep_sinusoid;

/// A pipeline folder keeps the UNet in this subfolder.
pub const SUBFOLDER: &str = "unet";
const FILES: NetworkFiles = NetworkFiles {
    subfolder: SUBFOLDER,
    stem: DIFFUSERS_STEM,
    name: "the UNet",
};

/// One evaluation's inputs.
#[derive(Clone, Copy, Debug)]
pub struct UNetInputs<'a> {
    /// Noisy image `[B, in_channels, H, W]` (stage II: the noisy image and the upscaled low-res
    /// image concatenated on channels). H and W must be multiples of 2^(number of downsamplers).
    pub sample: &'a Tensor,
    /// Timesteps, one per sample or one for all.
    pub timesteps: &'a [f32],
    /// Text encoder output `[B, L, text_dim]` (T5's last hidden state, before `encoder_hid_proj`;
    /// CLIP's for SD).
    pub encoder_hidden_states: &'a Tensor,
    /// The noise level of the low-res image (IF stage II, the x4 upscaler: an integer below
    /// `num_class_embeds`), one per sample or one for all.
    pub class_labels: Option<&'a [f32]>,
}

/// What the UNet adds to the time embedding for `class_labels`.
enum ClassLabels {
    /// IF-II: the label's sinusoid through an MLP.
    Sinusoid(TimestepMlp),
    /// SD: a row of a table (`nn.Embedding`), indexed by the integer label.
    Table { table: Tensor, rows: usize },
}

/// A UNet with its weights on the GPU.
pub struct UNet {
    gpu: Gpu,
    config: UNetConfig,
    conv_in: Conv2d,
    time_embedding: TimestepMlp,
    class_embedding: Option<ClassLabels>,
    add_embedding: Option<TextPooling>,
    encoder_hid_proj: Option<Linear>,
    down: Vec<DownBlock>,
    mid: MidBlock,
    up: Vec<UpBlock>,
    conv_norm_out: Norm,
    conv_out: Conv2d,
    act: Activation,
    emb_act: Option<Activation>,
    groups: usize,
    downsamplers: usize,
}

impl UNet {
    /// Load from a model folder (`config.json` + `diffusion_pytorch_model[.variant].safetensors`, single or
    /// sharded) or a pipeline folder with `unet/`. Unused checkpoint keys are logged once.
    pub fn load(gpu: &Gpu, dir: &Path, variant: Option<&str>) -> Result<UNet> {
        load_network(gpu, dir, variant, FILES, UNetConfig::load, |c, w| {
            UNet::from_weights(gpu, c, w)
        })
    }

    /// Build from a validated config, taking each weight from `w`.
    pub fn from_weights(gpu: &Gpu, config: UNetConfig, w: &Weights) -> Result<UNet> {
        config.validate()?;
        let c = &config;
        let boc = &c.block_out_channels;
        let n = boc.len();
        let downs = c.down_blocks()?;
        let ups = c.up_blocks()?;
        let mid = c.mid_block()?;
        let layers = c.layers_per_block()?;
        let head_dims = c.attention_head_dims()?;
        let cross = c.cross_attention_dims()?;
        let only_cross = c.only_cross_attention()?;
        let act = c.act()?;
        let groups = c.norm_num_groups.unwrap_or(32);
        let eps = c.norm_eps as f32;
        let temb = c.time_embed_dim();
        // IF's blocks take resnet_out_scale_factor and resnet_skip_time_act; SD's blocks are
        // built without them (diffusers' get_down_block / get_up_block).
        let resnet = |if_block: bool, output_scale: f64| ResnetOptions {
            groups,
            eps,
            act,
            temb,
            time: if c.scale_shift() {
                TimeConditioning::ScaleShift
            } else {
                TimeConditioning::Add
            },
            skip_time_act: if_block && c.resnet_skip_time_act,
            output_scale: if if_block { output_scale as f32 } else { 1.0 },
        };
        // Level i's attention; diffusers reverses the per-block lists for the up path, so the up
        // block mirroring level i uses entry i too.
        let added_kv = |i: usize, channels: usize| {
            AttentionKind::AddedKv(AttentionShape {
                channels,
                head_dim: head_dims[i],
                context: cross[i],
                groups,
                norm_cross: c.cross_attention_norm.is_some(),
            })
        };
        let transformer = |i: usize, channels: usize, only_cross_attention: bool| {
            AttentionKind::Transformer(TransformerShape {
                channels,
                heads: head_dims[i],
                context: cross[i],
                groups,
                linear_projection: c.use_linear_projection,
                only_cross_attention,
            })
        };
        let sinusoid = boc[0];
        let text_dim = c.text_dim();

        let mut skips = vec![boc[0]];
        let mut down = Vec::with_capacity(n);
        for (i, kind) in downs.iter().enumerate() {
            let if_block = matches!(
                kind,
                DownBlockType::ResnetDownsample | DownBlockType::SimpleCrossAttn
            );
            let spec = BlockSpec {
                layers: layers[i],
                inputs: if i == 0 { boc[0] } else { boc[i - 1] },
                outputs: boc[i],
                resample: (i + 1 < n).then_some(if if_block {
                    ResamplerKind::Resnet
                } else {
                    ResamplerKind::Conv
                }),
                resnet: resnet(if_block, c.resnet_out_scale_factor),
                attention: match kind {
                    DownBlockType::SimpleCrossAttn => Some(added_kv(i, boc[i])),
                    DownBlockType::CrossAttn => Some(transformer(i, boc[i], only_cross[i])),
                    _ => None,
                },
            };
            down.push(DownBlock::load(
                &w.at(format_args!("down_blocks.{i}")),
                spec,
            )?);
            skips.extend(std::iter::repeat_n(
                boc[i],
                spec.layers + usize::from(spec.resample.is_some()),
            ));
        }
        let mut up = Vec::with_capacity(n);
        for (j, kind) in ups.iter().enumerate() {
            let i = n - 1 - j; // the level this up block mirrors
            let if_block = matches!(
                kind,
                UpBlockType::ResnetUpsample | UpBlockType::SimpleCrossAttn
            );
            let spec = BlockSpec {
                layers: layers[i] + 1,
                inputs: if j == 0 { boc[n - 1] } else { boc[i + 1] },
                outputs: boc[i],
                resample: (j + 1 < n).then_some(if if_block {
                    ResamplerKind::Resnet
                } else {
                    ResamplerKind::Conv
                }),
                resnet: resnet(if_block, c.resnet_out_scale_factor),
                attention: match kind {
                    UpBlockType::SimpleCrossAttn => Some(added_kv(i, boc[i])),
                    UpBlockType::CrossAttn => Some(transformer(i, boc[i], only_cross[i])),
                    _ => None,
                },
            };
            up.push(UpBlock::load(
                &w.at(format_args!("up_blocks.{j}")),
                spec,
                &mut skips,
            )?);
        }
        if !skips.is_empty() {
            return Err(config_err(
                "layers_per_block",
                &c.layers_per_block,
                "the down blocks make more skip connections than the up blocks use",
            ));
        }
        Ok(UNet {
            gpu: gpu.clone(),
            conv_in: Conv2d::load(&w.at("conv_in"), c.in_channels, boc[0], c.conv_in_kernel)?,
            time_embedding: TimestepMlp::load(&w.at("time_embedding"), sinusoid, temb, act)?,
            class_embedding: match c.class_embedding() {
                ClassEmbedding::Timestep => Some(ClassLabels::Sinusoid(TimestepMlp::load(
                    &w.at("class_embedding"),
                    sinusoid,
                    temb,
                    act,
                )?)),
                ClassEmbedding::Table(rows) => Some(ClassLabels::Table {
                    table: w.tensor("class_embedding.weight", &[rows, temb])?,
                    rows,
                }),
                ClassEmbedding::None => None,
            },
            add_embedding: match (c.has_text_embedding(), text_dim) {
                (true, Some(e)) => Some(TextPooling::load(
                    &w.at("add_embedding"),
                    e,
                    temb,
                    c.addition_embed_type_num_heads,
                )?),
                _ => None,
            },
            encoder_hid_proj: match (c.encoder_hid_dim_type(), c.encoder_hid_dim) {
                (Some(_), Some(e)) => Some(Linear::load(&w.at("encoder_hid_proj"), e, cross[0])?),
                _ => None,
            },
            down,
            mid: MidBlock::load(
                &w.at("mid_block"),
                boc[n - 1],
                // Both mid blocks take mid_block_scale_factor as their resnets' output scale.
                ResnetOptions {
                    output_scale: c.mid_block_scale_factor as f32,
                    ..resnet(mid == MidBlockType::SimpleCrossAttn, 1.0)
                },
                match mid {
                    MidBlockType::SimpleCrossAttn => added_kv(n - 1, boc[n - 1]),
                    // diffusers builds UNetMidBlock2DCrossAttn without only_cross_attention.
                    MidBlockType::CrossAttn => transformer(n - 1, boc[n - 1], false),
                },
            )?,
            up,
            conv_norm_out: Norm::load(&w.at("conv_norm_out"), boc[0], eps)?,
            conv_out: Conv2d::load(&w.at("conv_out"), boc[0], c.out_channels, c.conv_out_kernel)?,
            act,
            emb_act: c.time_embedding_act()?,
            groups,
            downsamplers: n - 1,
            config,
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// The width of the text the UNet takes (T5's hidden size for IF).
    pub fn text_dim(&self) -> usize {
        self.config.text_dim().unwrap_or(0)
    }

    /// The side of the square images the UNet was trained on (`sample_size`): the resolution its
    /// pipeline samples at.
    pub fn sample_size(&self) -> Result<usize> {
        self.config.square_sample_size()
    }

    /// Whether the UNet needs `class_labels` (IF stage II's noise level).
    pub fn needs_class_labels(&self) -> bool {
        self.class_embedding.is_some()
    }

    /// The model output `[B, out_channels, H, W]`: for IF, channels `0..3` are the predicted
    /// noise ε and `3..6` the learned-variance interpolation value.
    pub fn forward(&self, inputs: &UNetInputs) -> Result<Tensor> {
        let (sample, text) = (inputs.sample, inputs.encoder_hidden_states);
        let b = self.check_inputs(inputs)?;
        let c = &self.config;
        let dim = c.block_out_channels[0];
        let sinusoid = |values: &[f32]| {
            let values = per_sample(values, b);
            sinusoid_tensor(
                &self.gpu,
                &values,
                dim,
                c.flip_sin_to_cos,
                c.freq_shift as f32,
            )
        };
        let mut emb = self.time_embedding.forward(&sinusoid(inputs.timesteps)?)?;
        match (&self.class_embedding, inputs.class_labels) {
            (Some(ClassLabels::Sinusoid(mlp)), Some(labels)) => {
                emb = emb.add(&mlp.forward(&sinusoid(labels)?)?)?;
            }
            (Some(ClassLabels::Table { table, .. }), Some(labels)) => {
                let ids: Vec<i32> = per_sample(labels, b).iter().map(|&l| l as i32).collect();
                let ids = Tensor::from_i32(&self.gpu, &[b], &ids)?;
                emb = emb.add(&table.embedding(&ids)?)?;
            }
            _ => {}
        }
        if let Some(pool) = &self.add_embedding {
            emb = emb.add(&pool.forward(text)?)?;
        }
        if let Some(a) = self.emb_act {
            emb = unary(&emb, a.into())?;
        }
        let emb_act = unary(&emb, self.act.into())?;
        let emb = Emb {
            raw: &emb,
            act: &emb_act,
        };
        let context = Context::new(match &self.encoder_hid_proj {
            Some(p) => p.forward(text)?,
            None => text.clone(),
        });

        let mut h = self.conv_in.forward(sample)?;
        let mut skips = vec![h.clone()];
        for block in &self.down {
            h = block.forward(h, &emb, &context, &mut skips)?;
        }
        h = self.mid.forward(&h, &emb, &context)?;
        for block in &self.up {
            h = block.forward(h, &emb, &context, &mut skips)?;
        }
        let h = self.conv_norm_out.group_norm(&h, self.groups, self.act)?;
        self.conv_out.forward(&h)
    }

    /// Checks shapes against the config; returns the batch size.
    fn check_inputs(&self, inputs: &UNetInputs) -> Result<usize> {
        let c = &self.config;
        let s = inputs.sample.shape();
        let factor = 1usize << self.downsamplers;
        let bad = |what: &str, detail: String| {
            Err(Error::Input {
                what: what.to_string(),
                detail,
            })
        };
        let &[b, ch, h, w] = s else {
            return bad("sample", format!("must be [B, C, H, W], got shape {s:?}"));
        };
        if ch != c.in_channels {
            return bad(
                "sample",
                format!(
                    "has {ch} channels; this UNet takes {} (shape {s:?})",
                    c.in_channels
                ),
            );
        }
        if b == 0 || h == 0 || w == 0 || h % factor != 0 || w % factor != 0 {
            return bad(
                "sample",
                format!(
                    "is {h}×{w}: height and width must be positive multiples of {factor} \
                     (this UNet halves them {} times)",
                    self.downsamplers
                ),
            );
        }
        let t = inputs.encoder_hidden_states.shape();
        let text_dim = self.text_dim();
        if t.len() != 3 || t[0] != b || t[2] != text_dim || t[1] == 0 {
            return bad(
                "encoder_hidden_states",
                format!("must be [{b}, L, {text_dim}] for a sample of batch {b}, got shape {t:?}"),
            );
        }
        for (what, values) in [
            ("timestep", Some(inputs.timesteps)),
            ("class_labels", inputs.class_labels),
        ] {
            if let Some(v) = values {
                if v.len() != 1 && v.len() != b {
                    return bad(what, format!("has {} values for a batch of {b}", v.len()));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return bad(what, format!("must be finite, got {v:?}"));
                }
            }
        }
        if let (Some(ClassLabels::Table { rows, .. }), Some(labels)) =
            (&self.class_embedding, inputs.class_labels)
        {
            if let Some(l) = labels
                .iter()
                .find(|&&l| l < 0.0 || l.fract() != 0.0 || l >= *rows as f32)
            {
                return bad(
                    "class_labels",
                    format!(
                        "holds {l}; this UNet's class labels (noise levels) are integers in \
                         0..{rows}"
                    ),
                );
            }
        }
        match (self.needs_class_labels(), inputs.class_labels.is_some()) {
            (true, false) => bad(
                "class_labels",
                "this UNet (IF stage II, the x4 upscaler) needs the low-res image's noise level \
                 as class_labels"
                    .into(),
            ),
            (false, true) => bad(
                "class_labels",
                "this UNet has no class embedding; omit them".into(),
            ),
            _ => Ok(b),
        }
    }
}

/// One value per sample: `values` as they are, or its single value repeated.
fn per_sample(values: &[f32], b: usize) -> Vec<f32> {
    if values.len() == 1 {
        vec![values[0]; b]
    } else {
        values.to_vec()
    }
}
