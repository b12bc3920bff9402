//! The UNets' down, mid and up blocks: resnets, each optionally followed by an attention layer,
//! and a resampler at the end. IF's blocks (`ResnetDownsampleBlock2D`,
//! `SimpleCrossAttnDownBlock2D`, `UNetMidBlock2DSimpleCrossAttn`, `SimpleCrossAttnUpBlock2D`,
//! `ResnetUpsampleBlock2D`) attend with added-KV attention and resample inside a resnet; SD's
//! (`DownBlock2D`, `CrossAttnDownBlock2D`, `UNetMidBlock2DCrossAttn`, `CrossAttnUpBlock2D`,
//! `UpBlock2D`) attend with a transformer and resample with a convolution.

use iterinv_engine::Tensor;

use super::attention::{AddedKvAttention, AttentionShape};
use super::context::Context;
use super::transformer::{Transformer2D, TransformerShape};
use crate::error::Result;
use crate::nn::{Conv2d, Resample, Resnet, ResnetOptions};
use crate::weights::Weights;

/// Which attention layer a block has.
#[derive(Clone, Copy, Debug)]
pub enum AttentionKind {
    /// IF: image tokens attend to the text and to themselves in one softmax.
    AddedKv(AttentionShape),
    /// SD: a transformer layer (self-attention, cross-attention, GEGLU).
    Transformer(TransformerShape),
}

// Boxed: the layers are few and loaded once; the box keeps the enum as small as its pointer.
enum LayerAttention {
    AddedKv(Box<AddedKvAttention>),
    Transformer(Box<Transformer2D>),
}

impl LayerAttention {
    fn load(w: &Weights, kind: AttentionKind) -> Result<LayerAttention> {
        Ok(match kind {
            AttentionKind::AddedKv(s) => {
                LayerAttention::AddedKv(Box::new(AddedKvAttention::load(w, s)?))
            }
            AttentionKind::Transformer(s) => {
                LayerAttention::Transformer(Box::new(Transformer2D::load(w, s)?))
            }
        })
    }

    fn forward(&self, x: &Tensor, context: &Context) -> Result<Tensor> {
        match self {
            LayerAttention::AddedKv(a) => a.forward(x, context),
            LayerAttention::Transformer(t) => t.forward(x, context),
        }
    }
}

/// How a block resamples at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResamplerKind {
    /// IF: a resnet that average-pools or upsamples both of its branches.
    Resnet,
    /// SD: a 3×3 convolution of stride 2 (down), or nearest ×2 then a 3×3 convolution (up).
    Conv,
}

enum Resampler {
    Resnet(Box<Resnet>),
    Conv(Conv2d),
}

impl Resampler {
    /// The resampler at `w` (`downsamplers.0` / `upsamplers.0`) of a block of `c` channels.
    fn load(
        w: &Weights,
        kind: ResamplerKind,
        c: usize,
        direction: Resample,
        resnet: ResnetOptions,
    ) -> Result<Resampler> {
        Ok(match (kind, direction) {
            (ResamplerKind::Resnet, _) => {
                Resampler::Resnet(Box::new(Resnet::load(w, c, c, direction, resnet)?))
            }
            (ResamplerKind::Conv, Resample::Down) => {
                Resampler::Conv(Conv2d::load_strided(&w.at("conv"), c, c, 3, 2, 1)?)
            }
            (ResamplerKind::Conv, _) => Resampler::Conv(Conv2d::load(&w.at("conv"), c, c, 3)?),
        })
    }

    fn forward(&self, x: &Tensor, emb: &Emb, direction: Resample) -> Result<Tensor> {
        match self {
            Resampler::Resnet(r) => r.forward(x, emb.raw, emb.act),
            Resampler::Conv(c) if direction == Resample::Up => c.forward(&x.upsample_nearest2x()?),
            Resampler::Conv(c) => c.forward(x),
        }
    }
}

/// The time embedding, as it is and after the activation, shared by every resnet.
pub struct Emb<'a> {
    pub raw: &'a Tensor,
    pub act: &'a Tensor,
}

/// A resnet and the attention layer after it, if the block has attention.
struct Layer {
    resnet: Resnet,
    attention: Option<LayerAttention>,
}

impl Layer {
    fn forward(&self, x: &Tensor, emb: &Emb, context: &Context) -> Result<Tensor> {
        let h = self.resnet.forward(x, emb.raw, emb.act)?;
        match &self.attention {
            Some(a) => a.forward(&h, context),
            None => Ok(h),
        }
    }
}

fn load_layer(
    w: &Weights,
    j: usize,
    inputs: usize,
    outputs: usize,
    resnet: ResnetOptions,
    attention: Option<AttentionKind>,
) -> Result<Layer> {
    Ok(Layer {
        resnet: Resnet::load(
            &w.at(format_args!("resnets.{j}")),
            inputs,
            outputs,
            Resample::None,
            resnet,
        )?,
        attention: attention
            .map(|kind| LayerAttention::load(&w.at(format_args!("attentions.{j}")), kind))
            .transpose()?,
    })
}

/// What one down or up block is built from.
#[derive(Clone, Copy, Debug)]
pub struct BlockSpec {
    pub layers: usize,
    pub inputs: usize,
    pub outputs: usize,
    /// Resample at the end of the block (all blocks but the deepest down / the last up block).
    pub resample: Option<ResamplerKind>,
    pub resnet: ResnetOptions,
    /// The attention layers (channels = `outputs`), for blocks with attention.
    pub attention: Option<AttentionKind>,
}

pub struct DownBlock {
    layers: Vec<Layer>,
    downsampler: Option<Resampler>,
}

impl DownBlock {
    pub fn load(w: &Weights, s: BlockSpec) -> Result<DownBlock> {
        let layers = (0..s.layers)
            .map(|j| {
                let inputs = if j == 0 { s.inputs } else { s.outputs };
                load_layer(w, j, inputs, s.outputs, s.resnet, s.attention)
            })
            .collect::<Result<_>>()?;
        let downsampler = s
            .resample
            .map(|kind| {
                let at = w.at("downsamplers.0");
                Resampler::load(&at, kind, s.outputs, Resample::Down, s.resnet)
            })
            .transpose()?;
        Ok(DownBlock {
            layers,
            downsampler,
        })
    }

    /// Runs the block, pushing every layer's output and the downsampler's onto `skips`.
    pub fn forward(
        &self,
        mut x: Tensor,
        emb: &Emb,
        context: &Context,
        skips: &mut Vec<Tensor>,
    ) -> Result<Tensor> {
        for layer in &self.layers {
            x = layer.forward(&x, emb, context)?;
            skips.push(x.clone());
        }
        if let Some(ds) = &self.downsampler {
            x = ds.forward(&x, emb, Resample::Down)?;
            skips.push(x.clone());
        }
        Ok(x)
    }
}

/// resnet → attention → resnet, at the deepest level.
pub struct MidBlock {
    first: Resnet,
    attention: LayerAttention,
    second: Resnet,
}

impl MidBlock {
    pub fn load(
        w: &Weights,
        channels: usize,
        resnet: ResnetOptions,
        attention: AttentionKind,
    ) -> Result<MidBlock> {
        let r = |j: usize| {
            let at = w.at(format_args!("resnets.{j}"));
            Resnet::load(&at, channels, channels, Resample::None, resnet)
        };
        Ok(MidBlock {
            first: r(0)?,
            attention: LayerAttention::load(&w.at("attentions.0"), attention)?,
            second: r(1)?,
        })
    }

    pub fn forward(&self, x: &Tensor, emb: &Emb, context: &Context) -> Result<Tensor> {
        let h = self.first.forward(x, emb.raw, emb.act)?;
        let h = self.attention.forward(&h, context)?;
        self.second.forward(&h, emb.raw, emb.act)
    }
}

pub struct UpBlock {
    layers: Vec<Layer>,
    upsampler: Option<Resampler>,
}

impl UpBlock {
    /// `s.inputs` is the channel count arriving from the block below; `skips` holds the channel
    /// counts of the down path's skip tensors, and this block takes one from its end per layer.
    pub fn load(w: &Weights, s: BlockSpec, skips: &mut Vec<usize>) -> Result<UpBlock> {
        let mut layers = Vec::with_capacity(s.layers);
        for j in 0..s.layers {
            let below = if j == 0 { s.inputs } else { s.outputs };
            let skip = skips.pop().ok_or_else(|| {
                crate::config::config_err(
                    "layers_per_block",
                    s.layers,
                    "the up blocks use more skip connections than the down blocks make",
                )
            })?;
            layers.push(load_layer(
                w,
                j,
                below + skip,
                s.outputs,
                s.resnet,
                s.attention,
            )?);
        }
        let upsampler = s
            .resample
            .map(|kind| {
                let at = w.at("upsamplers.0");
                Resampler::load(&at, kind, s.outputs, Resample::Up, s.resnet)
            })
            .transpose()?;
        Ok(UpBlock { layers, upsampler })
    }

    /// Runs the block, each layer concatenating (on channels) the skip popped from `skips`.
    pub fn forward(
        &self,
        mut x: Tensor,
        emb: &Emb,
        context: &Context,
        skips: &mut Vec<Tensor>,
    ) -> Result<Tensor> {
        for layer in &self.layers {
            let skip = skips.pop().expect("the skip count is checked at load");
            x = layer.forward(&Tensor::concat(&[&x, &skip], 1)?, emb, context)?;
        }
        if let Some(us) = &self.upsampler {
            x = us.forward(&x, emb, Resample::Up)?;
        }
        Ok(x)
    }
}
