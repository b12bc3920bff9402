//! diffusers' `ResnetBlock2D`: the residual block of every UNet here, with its optional
//! resampling (IF's `ResnetDownsample`/`ResnetUpsample` blocks resample inside a resnet) and
//! time conditioning (IF: FiLM-style scale/shift; SD: an added bias; the VAE: none).

use iterinv_engine::ops::norm::{GroupNormArgs, ScaleShift};
use iterinv_engine::{Activation, Tensor};

use super::{Conv2d, Linear, Norm};
use crate::error::{Error, Result};
use crate::weights::Weights;

/// Resampling inside the block, applied to both branches after `norm1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    None,
    /// `AvgPool2d(2)`.
    Down,
    /// Nearest-neighbour ×2.
    Up,
}

/// How the time embedding enters the block (`resnet_time_scale_shift`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeConditioning {
    /// `"default"`: `h = conv1(h) + proj(emb)`, before `norm2`.
    Add,
    /// `"scale_shift"`: `h = norm2(h)·(1 + scale) + shift` with `(scale, shift) = proj(emb)`.
    ScaleShift,
    /// No time embedding (`temb_channels=None`, the VAE): no `time_emb_proj` weights.
    None,
}

/// The configuration a UNet gives all its resnets.
#[derive(Clone, Copy, Debug)]
pub struct ResnetOptions {
    pub groups: usize,
    pub eps: f32,
    pub act: Activation,
    /// Width of the time embedding.
    pub temb: usize,
    pub time: TimeConditioning,
    /// `skip_time_act`: project the embedding as it is instead of `act(emb)`.
    pub skip_time_act: bool,
    /// The output is divided by this.
    pub output_scale: f32,
}

/// One `ResnetBlock2D`.
pub struct Resnet {
    norm1: Norm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: Norm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    resample: Resample,
    opts: ResnetOptions,
    out_channels: usize,
}

impl Resnet {
    /// The block at `w` (`down_blocks.0.resnets.1`, `...downsamplers.0`, ...). A 1×1
    /// `conv_shortcut` exists exactly when the channel count changes.
    pub fn load(
        w: &Weights,
        inputs: usize,
        outputs: usize,
        resample: Resample,
        opts: ResnetOptions,
    ) -> Result<Resnet> {
        let temb_out = match opts.time {
            TimeConditioning::Add => Some(outputs),
            TimeConditioning::ScaleShift => Some(2 * outputs),
            TimeConditioning::None => None,
        };
        Ok(Resnet {
            norm1: Norm::load(&w.at("norm1"), inputs, opts.eps)?,
            conv1: Conv2d::load(&w.at("conv1"), inputs, outputs, 3)?,
            time_emb_proj: temb_out
                .map(|o| Linear::load(&w.at("time_emb_proj"), opts.temb, o))
                .transpose()?,
            norm2: Norm::load(&w.at("norm2"), outputs, opts.eps)?,
            conv2: Conv2d::load(&w.at("conv2"), outputs, outputs, 3)?,
            conv_shortcut: if inputs != outputs {
                Some(Conv2d::load(&w.at("conv_shortcut"), inputs, outputs, 1)?)
            } else {
                None
            },
            resample,
            opts,
            out_channels: outputs,
        })
    }

    /// `x [B, Cin, H, W]` → `[B, Cout, H', W']`. `emb` is the time embedding `[B, T]` and
    /// `emb_act` is `act(emb)`; the block uses whichever its `skip_time_act` says (the caller
    /// computes `act(emb)` once for all blocks). A block without time conditioning ignores both.
    pub fn forward(&self, x: &Tensor, emb: &Tensor, emb_act: &Tensor) -> Result<Tensor> {
        let t = self
            .time_emb_proj
            .as_ref()
            .map(|proj| {
                proj.forward(if self.opts.skip_time_act {
                    emb
                } else {
                    emb_act
                })
            })
            .transpose()?;
        self.run(x, t.as_ref())
    }

    /// The block without a time embedding (built with [`TimeConditioning::None`]: the VAE's).
    pub fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None)
    }

    /// `t`: the projected time embedding, `None` exactly when the block has no `time_emb_proj`.
    fn run(&self, x: &Tensor, t: Option<&Tensor>) -> Result<Tensor> {
        let act = self.opts.act;
        let mut h = self.norm1.group_norm(x, self.opts.groups, act)?;
        let mut x = x.clone();
        match self.resample {
            Resample::None => {}
            Resample::Down => {
                h = h.avg_pool2x2()?;
                x = x.avg_pool2x2()?;
            }
            Resample::Up => {
                h = h.upsample_nearest2x()?;
                x = x.upsample_nearest2x()?;
            }
        }
        let h = self.conv1.forward(&h)?;
        let h = match (self.opts.time, t) {
            (TimeConditioning::Add, Some(t)) => {
                let b = t.dim(0);
                let h = h.add(&t.reshape(&[b, self.out_channels, 1, 1])?)?;
                self.norm2.group_norm(&h, self.opts.groups, act)?
            }
            (TimeConditioning::ScaleShift, Some(t)) => {
                // `scale, shift = t.chunk(2, dim=1)`, read in place by the norm.
                let args = GroupNormArgs {
                    scale_shift: Some(ScaleShift::Packed(t)),
                    activation: act,
                    ..self.norm2.group_args(self.opts.groups)
                };
                h.group_norm(&args)?
            }
            (TimeConditioning::None, None) => self.norm2.group_norm(&h, self.opts.groups, act)?,
            (time, _) => {
                let detail = format!(
                    "given or missing for a resnet with time conditioning {time:?}: \
                     needed by Add and ScaleShift, unused by None"
                );
                return Err(Error::Input {
                    what: "time embedding".into(),
                    detail,
                });
            }
        };
        let shortcut = match &self.conv_shortcut {
            Some(c) => c.forward(&x)?,
            None => x,
        };
        // The skip connection is added in conv2's epilogue.
        let out = self.conv2.forward_plus(&h, &shortcut)?;
        Ok(if self.opts.output_scale == 1.0 {
            out
        } else {
            out.div_scalar(self.opts.output_scale)?
        })
    }
}
