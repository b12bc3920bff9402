//! The blocks the VAE's encoder and decoder are built from: `DownEncoderBlock2D` (resnets, then a
//! strided-conv downsampler), `UpDecoderBlock2D` (resnets, then nearest ×2 and a conv) and
//! `UNetMidBlock2D` (resnet, attention, resnet). No time embedding anywhere.

use iterinv_engine::ops::conv::Conv2dOptions;
use iterinv_engine::Tensor;

use super::attention::MidAttention;
use crate::error::Result;
use crate::nn::{Conv2d, Resample, Resnet, ResnetOptions};
use crate::weights::Weights;

/// `resnets.0 .. resnets.{layers-1}` of a block, the first taking `inputs` channels.
fn load_resnets(
    w: &Weights,
    layers: usize,
    inputs: usize,
    outputs: usize,
    opts: ResnetOptions,
) -> Result<Vec<Resnet>> {
    (0..layers)
        .map(|j| {
            let cin = if j == 0 { inputs } else { outputs };
            Resnet::load(
                &w.at(format_args!("resnets.{j}")),
                cin,
                outputs,
                Resample::None,
                opts,
            )
        })
        .collect()
}

fn run_resnets(resnets: &[Resnet], mut x: Tensor) -> Result<Tensor> {
    for r in resnets {
        x = r.forward_plain(&x)?;
    }
    Ok(x)
}

/// diffusers' `Downsample2D` with `padding=0`, as the VAE encoder uses it: zero-pad one row at
/// the bottom and one column at the right (`F.pad(x, (0, 1, 0, 1))`), then a 3×3 convolution of
/// stride 2 without padding. The engine's convolution pads symmetrically, so the asymmetric pad
/// is built by concatenating zeros (a copy of the activation; no new kernel for one layer).
struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [b, c, h, w] = [x.dim(0), x.dim(1), x.dim(2), x.dim(3)];
        let gpu = x.gpu();
        let right = Tensor::zeros(gpu, &[b, c, h, 1])?;
        let x = Tensor::concat(&[x, &right], 3)?;
        let bottom = Tensor::zeros(gpu, &[b, c, 1, w + 1])?;
        let x = Tensor::concat(&[&x, &bottom], 2)?;
        let opts = Conv2dOptions {
            stride: 2,
            padding: 0,
            ..Default::default()
        };
        Ok(x.conv2d(&self.conv.weight, self.conv.bias.as_ref(), opts)?)
    }
}

/// `DownEncoderBlock2D`.
pub struct DownBlock {
    resnets: Vec<Resnet>,
    downsampler: Option<Downsample>,
}

impl DownBlock {
    pub fn load(
        w: &Weights,
        layers: usize,
        inputs: usize,
        outputs: usize,
        downsample: bool,
        opts: ResnetOptions,
    ) -> Result<DownBlock> {
        Ok(DownBlock {
            resnets: load_resnets(w, layers, inputs, outputs, opts)?,
            downsampler: if downsample {
                let conv = Conv2d::load(&w.at("downsamplers.0.conv"), outputs, outputs, 3)?;
                Some(Downsample { conv })
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: Tensor) -> Result<Tensor> {
        let x = run_resnets(&self.resnets, x)?;
        match &self.downsampler {
            Some(d) => d.forward(&x),
            None => Ok(x),
        }
    }
}

/// `UpDecoderBlock2D`.
pub struct UpBlock {
    resnets: Vec<Resnet>,
    /// `upsamplers.0.conv`, run after a nearest-neighbour ×2.
    upsampler: Option<Conv2d>,
}

impl UpBlock {
    pub fn load(
        w: &Weights,
        layers: usize,
        inputs: usize,
        outputs: usize,
        upsample: bool,
        opts: ResnetOptions,
    ) -> Result<UpBlock> {
        Ok(UpBlock {
            resnets: load_resnets(w, layers, inputs, outputs, opts)?,
            upsampler: if upsample {
                Some(Conv2d::load(
                    &w.at("upsamplers.0.conv"),
                    outputs,
                    outputs,
                    3,
                )?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: Tensor) -> Result<Tensor> {
        let x = run_resnets(&self.resnets, x)?;
        match &self.upsampler {
            Some(conv) => conv.forward(&x.upsample_nearest2x()?),
            None => Ok(x),
        }
    }
}

/// `UNetMidBlock2D` without time embedding: resnet, attention (unless `mid_block_add_attention`
/// is false), resnet, all at `channels`.
pub struct MidBlock {
    first: Resnet,
    attention: Option<MidAttention>,
    second: Resnet,
}

impl MidBlock {
    pub fn load(
        w: &Weights,
        channels: usize,
        attention: bool,
        opts: ResnetOptions,
    ) -> Result<MidBlock> {
        let resnet = |j: usize| {
            Resnet::load(
                &w.at(format_args!("resnets.{j}")),
                channels,
                channels,
                Resample::None,
                opts,
            )
        };
        Ok(MidBlock {
            first: resnet(0)?,
            attention: if attention {
                // The attention's GroupNorm has the resnets' groups and eps (diffusers passes
                // `resnet_eps` and `resnet_groups` to it).
                Some(MidAttention::load(
                    &w.at("attentions.0"),
                    channels,
                    opts.groups,
                    opts.eps,
                )?)
            } else {
                None
            },
            second: resnet(1)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.first.forward_plain(x)?;
        if let Some(a) = &self.attention {
            h = a.forward(&h)?;
        }
        self.second.forward_plain(&h)
    }
}
