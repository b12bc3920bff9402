//! Layers shared by the networks, each holding its weights as loaded (f32, f16 or bf16) and
//! running on the engine's ops with f32 activations.

mod clip_layer;
mod resnet;
mod tokens;

use iterinv_engine::ops::conv::{conv2d_with_residual, Conv2dOptions};
use iterinv_engine::ops::matmul::{matmul_with_residual, MatmulOptions};
use iterinv_engine::ops::norm::GroupNormArgs;
use iterinv_engine::{Activation, Tensor};

use crate::error::Result;
use crate::weights::Weights;

pub use clip_layer::{ClipLayer, ClipLayerArgs};
pub use resnet::{Resample, Resnet, ResnetOptions, TimeConditioning};
pub use tokens::check_token_batch;

/// `[B, C, H, W]` → `[B, H·W, C]`: a feature map as the tokens of an attention over its pixels.
pub fn to_tokens(x: &Tensor) -> Result<Tensor> {
    let [b, c, h, w] = [x.dim(0), x.dim(1), x.dim(2), x.dim(3)];
    Ok(x.reshape(&[b, c, h * w])?.permute(&[0, 2, 1])?)
}

/// `[B, H·W, C]` → `[B, C, H, W]`: an attention's tokens back as a feature map (the inverse of
/// [`to_tokens`]).
pub fn from_tokens(t: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let [b, _, c] = [t.dim(0), t.dim(1), t.dim(2)];
    Ok(t.permute(&[0, 2, 1])?.reshape(&[b, c, h, w])?)
}

/// `nn.Linear`: `x · weightᵀ + bias`, weight `[out, in]`.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `weight [out, in]` and `bias [out]` of module `w`.
    pub fn load(w: &Weights, inputs: usize, outputs: usize) -> Result<Linear> {
        Ok(Linear {
            weight: w.tensor("weight", &[outputs, inputs])?,
            bias: Some(w.tensor("bias", &[outputs])?),
        })
    }

    /// Without a bias (T5).
    pub fn load_no_bias(w: &Weights, inputs: usize, outputs: usize) -> Result<Linear> {
        Ok(Linear {
            weight: w.tensor("weight", &[outputs, inputs])?,
            bias: None,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::None)
    }

    /// The layer on inputs laid out channels first, `[..., in, L]` (a feature map `[B, C, H·W]`,
    /// the transpose of its tokens), giving `[..., L, out]` as [`Linear::forward`] does on the
    /// tokens: the matmul reads its left operand transposed, so no permute copies it first.
    pub fn forward_from_channels_first(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, true, false, None)
    }

    /// `residual + layer(x)`, the addition fused into the matmul's epilogue (a skip connection).
    pub fn forward_plus(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, false, false, Some(residual))
    }

    /// `residual + layer(x)` on tokens `[..., L, in]`, written channels first, `[..., out, L]`
    /// (a feature map's layout, `residual`'s): the matmul writes its product transposed instead
    /// of a permute after it, and adds the residual in its epilogue.
    pub fn forward_to_channels_first_plus(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, false, true, Some(residual))
    }

    fn run(
        &self,
        x: &Tensor,
        trans_a: bool,
        trans_out: bool,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let opts = MatmulOptions {
            trans_a,
            trans_b: true,
            trans_out,
            activation: Activation::None,
        };
        Ok(matmul_with_residual(
            x,
            &self.weight,
            self.bias.as_ref(),
            opts,
            residual,
        )?)
    }

    /// The layer followed by `act`, fused into the matmul's epilogue.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        Ok(x.linear_act(&self.weight, self.bias.as_ref(), act)?)
    }
}

/// `nn.Conv2d` with a square kernel and symmetric padding: stride 1 and "same" padding
/// (`(k−1)/2`) unless loaded with [`Conv2d::load_strided`].
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub padding: usize,
    pub stride: usize,
}

impl Conv2d {
    /// `weight [out, in, k, k]` and `bias [out]` of module `w`.
    pub fn load(w: &Weights, inputs: usize, outputs: usize, kernel: usize) -> Result<Conv2d> {
        Self::load_strided(w, inputs, outputs, kernel, 1, kernel.saturating_sub(1) / 2)
    }

    /// As [`Conv2d::load`], with a stride and padding (SD's downsampler: 3×3, stride 2, pad 1).
    pub fn load_strided(
        w: &Weights,
        inputs: usize,
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Conv2d> {
        Ok(Conv2d {
            weight: w.tensor("weight", &[outputs, inputs, kernel, kernel])?,
            bias: Some(w.tensor("bias", &[outputs])?),
            padding,
            stride,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None)
    }

    /// `residual + conv(x)`, the addition fused into the convolution's epilogue.
    pub fn forward_plus(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, Some(residual))
    }

    fn run(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let opts = Conv2dOptions {
            padding: self.padding,
            stride: self.stride,
            ..Default::default()
        };
        Ok(conv2d_with_residual(
            x,
            &self.weight,
            self.bias.as_ref(),
            opts,
            residual,
        )?)
    }
}

/// The affine weights of a `GroupNorm` or `LayerNorm`: `weight` (γ) and `bias` (β), both `[C]`.
pub struct Norm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl Norm {
    pub fn load(w: &Weights, channels: usize, eps: f32) -> Result<Norm> {
        Ok(Norm {
            weight: w.tensor("weight", &[channels])?,
            bias: w.tensor("bias", &[channels])?,
            eps,
        })
    }

    /// Group-norm arguments with this layer's affine, for `groups` groups.
    pub fn group_args(&self, groups: usize) -> GroupNormArgs<'_> {
        GroupNormArgs {
            gamma: Some(&self.weight),
            beta: Some(&self.bias),
            ..GroupNormArgs::new(groups, self.eps)
        }
    }

    /// `GroupNorm(groups)` over `[B, C, ...]`, then `act`.
    pub fn group_norm(&self, x: &Tensor, groups: usize, act: Activation) -> Result<Tensor> {
        let args = GroupNormArgs {
            activation: act,
            ..self.group_args(groups)
        };
        Ok(x.group_norm(&args)?)
    }

    /// `GroupNorm(groups)` of a feature map `[B, C, H, W]` as `[B, C, H·W]`: the tokens of an
    /// attention over its pixels, transposed, as [`Linear::forward_from_channels_first`] takes them.
    pub fn group_norm_channels_first(&self, x: &Tensor, groups: usize) -> Result<Tensor> {
        let [b, c] = [x.dim(0), x.dim(1)];
        let n = x.numel().checked_div(b * c).unwrap_or(0);
        Ok(self
            .group_norm(x, groups, Activation::None)?
            .reshape(&[b, c, n])?)
    }

    /// `LayerNorm` over the last dimension.
    pub fn layer_norm(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(Some(&self.weight), Some(&self.bias), self.eps)?)
    }
}
