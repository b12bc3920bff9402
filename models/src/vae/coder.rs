//! diffusers' VAE `Encoder` (image → `2·latent` moments) and `Decoder` (latent → image), as
//! `AutoencoderKL` builds them: block `i` of the encoder has `block_out_channels[i]` channels and
//! `layers_per_block` resnets; the decoder mirrors the widths with `layers_per_block + 1` resnets
//! per block. Both end in GroupNorm, SiLU and a 3×3 convolution.

use iterinv_engine::{Activation, Tensor};

use super::blocks::{DownBlock, MidBlock, UpBlock};
use crate::config::VaeConfig;
use crate::error::Result;
use crate::nn::{Conv2d, Norm, ResnetOptions, TimeConditioning};
use crate::weights::Weights;

/// GroupNorm eps of every norm in the VAE (diffusers hard-codes `resnet_eps=1e-6` in `Encoder`
/// and `Decoder`, and the mid attention and output norms use it too).
pub const EPS: f32 = 1e-6;

/// The resnets' options: no time embedding, output not rescaled.
pub fn resnet_options(c: &VaeConfig) -> Result<ResnetOptions> {
    Ok(ResnetOptions {
        groups: c.norm_num_groups,
        eps: EPS,
        act: c.act()?,
        temb: 0,
        time: TimeConditioning::None,
        skip_time_act: false,
        output_scale: 1.0,
    })
}

/// The tail both halves share: GroupNorm with SiLU (always SiLU: diffusers' `conv_act`
/// whatever `act_fn` says), then `conv_out`.
struct Head {
    norm: Norm,
    conv: Conv2d,
    groups: usize,
}

impl Head {
    fn load(w: &Weights, inputs: usize, outputs: usize, groups: usize) -> Result<Head> {
        Ok(Head {
            norm: Norm::load(&w.at("conv_norm_out"), inputs, EPS)?,
            conv: Conv2d::load(&w.at("conv_out"), inputs, outputs, 3)?,
            groups,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm.group_norm(x, self.groups, Activation::Silu)?;
        self.conv.forward(&h)
    }
}

pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<DownBlock>,
    mid: MidBlock,
    head: Head,
}

impl Encoder {
    /// The encoder at `w` (`encoder`), producing `2·latent_channels` moments (`double_z`).
    pub fn load(w: &Weights, c: &VaeConfig) -> Result<Encoder> {
        let boc = &c.block_out_channels;
        let n = boc.len();
        let opts = resnet_options(c)?;
        let down = (0..n)
            .map(|i| {
                let inputs = if i == 0 { boc[0] } else { boc[i - 1] };
                DownBlock::load(
                    &w.at(format_args!("down_blocks.{i}")),
                    c.layers_per_block,
                    inputs,
                    boc[i],
                    i + 1 < n,
                    opts,
                )
            })
            .collect::<Result<_>>()?;
        let last = boc[n - 1];
        Ok(Encoder {
            conv_in: Conv2d::load(&w.at("conv_in"), c.in_channels, boc[0], 3)?,
            down,
            mid: MidBlock::load(&w.at("mid_block"), last, c.mid_block_add_attention, opts)?,
            head: Head::load(w, last, 2 * c.latent_channels, c.norm_num_groups)?,
        })
    }

    /// `image [B, in_channels, H, W]` → moments `[B, 2·latent, H/f, W/f]`.
    pub fn forward(&self, image: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(image)?;
        for block in &self.down {
            h = block.forward(h)?;
        }
        let h = self.mid.forward(&h)?;
        self.head.forward(&h)
    }
}

pub struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<UpBlock>,
    head: Head,
}

impl Decoder {
    /// The decoder at `w` (`decoder`).
    pub fn load(w: &Weights, c: &VaeConfig) -> Result<Decoder> {
        let boc = &c.block_out_channels;
        let n = boc.len();
        let opts = resnet_options(c)?;
        let last = boc[n - 1];
        // Up block j mirrors level n-1-j and takes the previous up block's width.
        let up = (0..n)
            .map(|j| {
                let inputs = if j == 0 { last } else { boc[n - j] };
                UpBlock::load(
                    &w.at(format_args!("up_blocks.{j}")),
                    c.layers_per_block + 1,
                    inputs,
                    boc[n - 1 - j],
                    j + 1 < n,
                    opts,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Decoder {
            conv_in: Conv2d::load(&w.at("conv_in"), c.latent_channels, last, 3)?,
            mid: MidBlock::load(&w.at("mid_block"), last, c.mid_block_add_attention, opts)?,
            up,
            head: Head::load(w, boc[0], c.out_channels, c.norm_num_groups)?,
        })
    }

    /// `latent [B, latent, h, w]` (after `post_quant_conv`) → `[B, out_channels, h·f, w·f]`.
    pub fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        let h = self.conv_in.forward(latent)?;
        let mut h = self.mid.forward(&h)?;
        for block in &self.up {
            h = block.forward(h)?;
        }
        self.head.forward(&h)
    }
}
