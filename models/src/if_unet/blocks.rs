//! IF's down, mid and up blocks: resnets, each optionally followed by an added-KV attention
//! layer, and a resnet that resamples (`ResnetDownsampleBlock2D`, `SimpleCrossAttnDownBlock2D`,
//! `UNetMidBlock2DSimpleCrossAttn`, `SimpleCrossAttnUpBlock2D`, `ResnetUpsampleBlock2D`).

use iterinv_engine::Tensor;

use super::attention::{AddedKvAttention, AttentionShape};
use crate::error::Result;
use crate::nn::{Resample, Resnet, ResnetOptions};
use crate::weights::Weights;

/// The time embedding, as it is and after the activation, shared by every resnet.
pub struct Emb<'a> {
    pub raw: &'a Tensor,
    pub act: &'a Tensor,
}

/// A resnet and the attention layer after it, if the block has attention.
struct Layer {
    resnet: Resnet,
    attention: Option<AddedKvAttention>,
}

impl Layer {
    fn forward(&self, x: &Tensor, emb: &Emb, context: &Tensor) -> Result<Tensor> {
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
    attention: Option<AttentionShape>,
) -> Result<Layer> {
    Ok(Layer {
        resnet: Resnet::load(
            &w.at(format_args!("resnets.{j}")),
            inputs,
            outputs,
            Resample::None,
            resnet,
        )?,
        attention: match attention {
            Some(s) => Some(AddedKvAttention::load(
                &w.at(format_args!("attentions.{j}")),
                s,
            )?),
            None => None,
        },
    })
}

/// What one down or up block is built from.
#[derive(Clone, Copy, Debug)]
pub struct BlockSpec {
    pub layers: usize,
    pub inputs: usize,
    pub outputs: usize,
    /// Resample at the end of the block (all blocks but the deepest down / the last up block).
    pub resample: bool,
    pub resnet: ResnetOptions,
    /// The attention layers' shape (channels = `outputs`), for blocks with attention.
    pub attention: Option<AttentionShape>,
}

pub struct DownBlock {
    layers: Vec<Layer>,
    downsampler: Option<Resnet>,
}

impl DownBlock {
    pub fn load(w: &Weights, s: BlockSpec) -> Result<DownBlock> {
        let layers = (0..s.layers)
            .map(|j| {
                let inputs = if j == 0 { s.inputs } else { s.outputs };
                load_layer(w, j, inputs, s.outputs, s.resnet, s.attention)
            })
            .collect::<Result<_>>()?;
        let downsampler = if s.resample {
            let ds = w.at("downsamplers.0");
            Some(Resnet::load(
                &ds,
                s.outputs,
                s.outputs,
                Resample::Down,
                s.resnet,
            )?)
        } else {
            None
        };
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
        context: &Tensor,
        skips: &mut Vec<Tensor>,
    ) -> Result<Tensor> {
        for layer in &self.layers {
            x = layer.forward(&x, emb, context)?;
            skips.push(x.clone());
        }
        if let Some(ds) = &self.downsampler {
            x = ds.forward(&x, emb.raw, emb.act)?;
            skips.push(x.clone());
        }
        Ok(x)
    }
}

/// resnet → attention → resnet, at the deepest level.
pub struct MidBlock {
    first: Resnet,
    attention: AddedKvAttention,
    second: Resnet,
}

impl MidBlock {
    pub fn load(
        w: &Weights,
        channels: usize,
        resnet: ResnetOptions,
        attention: AttentionShape,
    ) -> Result<MidBlock> {
        let r = |j: usize| {
            let at = w.at(format_args!("resnets.{j}"));
            Resnet::load(&at, channels, channels, Resample::None, resnet)
        };
        Ok(MidBlock {
            first: r(0)?,
            attention: AddedKvAttention::load(&w.at("attentions.0"), attention)?,
            second: r(1)?,
        })
    }

    pub fn forward(&self, x: &Tensor, emb: &Emb, context: &Tensor) -> Result<Tensor> {
        let h = self.first.forward(x, emb.raw, emb.act)?;
        let h = self.attention.forward(&h, context)?;
        self.second.forward(&h, emb.raw, emb.act)
    }
}

pub struct UpBlock {
    layers: Vec<Layer>,
    upsampler: Option<Resnet>,
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
        let upsampler = if s.resample {
            let us = w.at("upsamplers.0");
            Some(Resnet::load(
                &us,
                s.outputs,
                s.outputs,
                Resample::Up,
                s.resnet,
            )?)
        } else {
            None
        };
        Ok(UpBlock { layers, upsampler })
    }

    /// Runs the block, each layer concatenating (on channels) the skip popped from `skips`.
    pub fn forward(
        &self,
        mut x: Tensor,
        emb: &Emb,
        context: &Tensor,
        skips: &mut Vec<Tensor>,
    ) -> Result<Tensor> {
        for layer in &self.layers {
            let skip = skips.pop().expect("the skip count is checked at load");
            x = layer.forward(&Tensor::concat(&[&x, &skip], 1)?, emb, context)?;
        }
        if let Some(us) = &self.upsampler {
            x = us.forward(&x, emb.raw, emb.act)?;
        }
        Ok(x)
    }
}
