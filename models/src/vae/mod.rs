//! The VAE of the SD x4 upscaler (diffusers' `AutoencoderKL`): an encoder from images to a
//! diagonal Gaussian over latents (mean, std), and a decoder from latents to images. Forward
//! only: the cascade encodes its target and decodes its results, and never differentiates through
//! the VAE, so both run under `no_grad`.
//!
//! Weights stay in their stored precision; activations are always f32 (the spec's "must decode in
//! f32": fp16 activations overflow in this decoder, which is why diffusers has `force_upcast`).

mod attention;
mod blocks;
mod coder;

use std::path::Path;

use iterinv_engine::{grad, Gpu, Tensor};

use crate::config::VaeConfig;
use crate::error::{Error, Result};
use crate::nn::Conv2d;
use crate::weights::{load_network, NetworkFiles, Weights, DIFFUSERS_STEM};
use coder::{Decoder, Encoder};

/// A pipeline folder keeps the VAE in this subfolder.
pub const SUBFOLDER: &str = "vae";
const FILES: NetworkFiles = NetworkFiles {
    subfolder: SUBFOLDER,
    stem: DIFFUSERS_STEM,
    name: "the VAE",
};

/// diffusers clamps the log-variance to this range before taking `std = exp(logvar / 2)`.
const LOGVAR_RANGE: (f32, f32) = (-30.0, 20.0);

/// The encoder's latent distribution, unscaled (multiply by `scaling_factor` for the diffusion
/// model's latent space), each `[B, latent_channels, H/f, W/f]`.
pub struct LatentDist {
    pub mean: Tensor,
    pub std: Tensor,
}

/// An `AutoencoderKL` with its weights on the GPU.
pub struct Vae {
    config: VaeConfig,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
}

impl Vae {
    /// Load from a model folder (`config.json` + `diffusion_pytorch_model[.variant].safetensors`, single or
    /// sharded) or a pipeline folder with `vae/`. Unused checkpoint keys are logged once.
    pub fn load(gpu: &Gpu, dir: &Path, variant: Option<&str>) -> Result<Vae> {
        load_network(gpu, dir, variant, FILES, VaeConfig::load, |c, w| {
            Vae::from_weights(c, w)
        })
    }

    /// Build from a config, taking each weight from `w` (either attention key naming).
    pub fn from_weights(config: VaeConfig, w: &Weights) -> Result<Vae> {
        config.validate()?;
        let c = &config;
        let moments = 2 * c.latent_channels;
        Ok(Vae {
            encoder: Encoder::load(&w.at("encoder"), c)?,
            decoder: Decoder::load(&w.at("decoder"), c)?,
            quant_conv: c
                .use_quant_conv
                .then(|| Conv2d::load(&w.at("quant_conv"), moments, moments, 1))
                .transpose()?,
            post_quant_conv: c
                .use_post_quant_conv
                .then(|| {
                    let l = c.latent_channels;
                    Conv2d::load(&w.at("post_quant_conv"), l, l, 1)
                })
                .transpose()?,
            config,
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The factor between image and latent sides (8 for SD's VAEs, 4 for the x4 upscaler's).
    pub fn downscale(&self) -> usize {
        self.config.size_multiple()
    }

    /// The latent distribution of `image [B, in_channels, H, W]` (values in [−1, 1]); H and W
    /// must be positive multiples of [`downscale`](Self::downscale).
    pub fn encode(&self, image: &Tensor) -> Result<LatentDist> {
        let f = self.downscale();
        let cin = self.config.in_channels;
        check_input(
            "image",
            image,
            cin,
            f,
            format!("this VAE halves the sides {} times", f.trailing_zeros()),
        )?;
        grad::no_grad(|| {
            let mut moments = self.encoder.forward(image)?;
            if let Some(q) = &self.quant_conv {
                moments = q.forward(&moments)?;
            }
            let l = self.config.latent_channels;
            let mean = moments.slice(1, 0, l)?;
            let (lo, hi) = LOGVAR_RANGE;
            let std = moments
                .slice(1, l, 2 * l)?
                .clamp(lo, hi)?
                .mul_scalar(0.5)?
                .exp()?;
            Ok(LatentDist { mean, std })
        })
    }

    /// `vae.decode(latent).sample`: the image `[B, out_channels, h·f, w·f]` of an unscaled
    /// `latent [B, latent_channels, h, w]` (divide a diffusion latent by `scaling_factor`
    /// first). Not clamped.
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let l = self.config.latent_channels;
        check_input("latent", latent, l, 1, String::new())?;
        grad::no_grad(|| {
            let z = match &self.post_quant_conv {
                Some(p) => p.forward(latent)?,
                None => latent.clone(),
            };
            self.decoder.forward(&z)
        })
    }
}

/// `x` must be `[B, channels, H, W]` with positive sizes, H and W multiples of `multiple`.
fn check_input(
    what: &str,
    x: &Tensor,
    channels: usize,
    multiple: usize,
    why: String,
) -> Result<()> {
    let bad = |detail: String| {
        Err(Error::Input {
            what: what.into(),
            detail,
        })
    };
    let s = x.shape();
    let &[b, c, h, w] = s else {
        return bad(format!("must be [B, {channels}, H, W], got shape {s:?}"));
    };
    if c != channels {
        return bad(format!(
            "has {c} channels; this VAE takes {channels} (shape {s:?})"
        ));
    }
    if b == 0 || h == 0 || w == 0 {
        return bad(format!("must not be empty, got shape {s:?}"));
    }
    if h % multiple != 0 || w % multiple != 0 {
        return bad(format!(
            "is {h}×{w}: height and width must be multiples of {multiple} ({why}); \
             crop or resize it to e.g. {}×{}",
            h / multiple * multiple,
            w / multiple * multiple
        ));
    }
    Ok(())
}
