//! The Stable Diffusion x4 upscaler as a stage, text and a low-resolution image to an image four
//! times larger, exactly as diffusers' `StableDiffusionUpscalePipeline` runs it: CLIP encodes the
//! prompt and the negative prompt (77 tokens, no attention mask); the low-resolution image (about
//! [−1, 1], not re-normalised) is noised once at `noise_level` by the low-res DDPM scheduler and
//! concatenated to the latent at every step, its noise level also the UNet's class label; the
//! scheduler (DDIM, v-prediction) denoises a latent of the image's own size with batched
//! classifier-free guidance; the VAE decodes `latent / scaling_factor`.
//!
//! Components are loaded when needed and dropped (their GPU memory returned with `trim_pool`)
//! before the next one, so peak GPU memory is the UNet's or the VAE's, not their sum.

use std::sync::Arc;

use iterinv_models::text::tokenizer::ClipTokenizer;
use iterinv_models::{ClipTextEncoder, Error, Result, UNet, Vae};

use super::folder::PipelineFolder;
use super::guidance::TextCondition;
use super::inversion::latent::decoder;
use super::noise::NoiseSource;
use super::progress::{Event, Progress, StageRun, SAMPLING};
use super::sampling::{denoise, LowResCondition, StageSettings};
use crate::{Gpu, Tensor};

/// CLIP's text length.
pub const MAX_TOKENS: usize = 77;

/// A run's settings; `Default` gives diffusers' defaults (75 steps, guidance 9, noise level 20).
#[derive(Clone, Debug)]
pub struct UpscalerOptions {
    pub settings: StageSettings,
    /// Noise added to the low-resolution image (a timestep of the low-res scheduler, which is
    /// also the UNet's class label; the real upscaler's table has 1000 rows, diffusers allows at
    /// most its `max_noise_level`, 350).
    pub noise_level: usize,
    /// Weight file variant (`fp16`) for every component.
    pub variant: Option<String>,
}

impl Default for UpscalerOptions {
    fn default() -> Self {
        UpscalerOptions {
            settings: StageSettings {
                steps: 75,
                guidance: 9.0,
                eta: 0.0,
            },
            noise_level: 20,
            variant: None,
        }
    }
}

/// What [`upscale`] returns: the final latent and its decoding.
pub struct UpscalerOutput {
    /// `[1, latent_channels, h, w]`, h × w the low-resolution image's size.
    pub latents: Tensor,
    /// `[1, 3, f·h, f·w]` (f the VAE's factor, 4 for the upscaler), about [−1, 1], not clamped.
    pub image: Tensor,
}

/// Encode `prompt` and `negative_prompt` with the folder's CLIP tokenizer and text encoder, then
/// free the encoder. Both are padded to 77 tokens with the tokenizer's pad token and encoded
/// without an attention mask, as the pipeline does.
pub fn encode_text(
    gpu: &Gpu,
    folder: &PipelineFolder,
    prompt: &str,
    negative_prompt: &str,
    variant: Option<&str>,
) -> Result<TextCondition> {
    let tokenizer = ClipTokenizer::load(&folder.component("tokenizer")?)?;
    let tokens = tokenizer.encode(&[prompt, negative_prompt], MAX_TOKENS)?;
    let encoder = ClipTextEncoder::load(gpu, &folder.component("text_encoder")?, variant)?;
    let out = encoder.encode(&tokens.input_ids, None)?;
    drop(encoder);
    gpu.trim_pool();
    let rows = out.last_hidden_state.split(0, &[1, 1])?;
    Ok(TextCondition {
        cond: rows[0].clone(),
        uncond: Some(rows[1].clone()),
    })
}

/// Upscale `low_res` (`[1, 3, h, w]`, about [−1, 1]) with the text `text`. The random draws are
/// `{name}_condition` (the noise added to `low_res`, its shape) and `{name}_initial` (the
/// initial latent, `[1, latent_channels, h, w]`), and `{name}_step_{i}` for a stochastic sampler
/// (`name`: `upscaler` alone, `stage3` as a cascade's third stage). Its events are stage
/// `number`'s (1 alone); their estimates are decoded by the VAE, loaded first for them.
#[allow(clippy::too_many_arguments)]
pub fn upscale(
    gpu: &Gpu,
    folder: &PipelineFolder,
    low_res: &Tensor,
    text: &TextCondition,
    opts: &UpscalerOptions,
    (number, name): (usize, &str),
    noise: &mut dyn NoiseSource,
    progress: Progress,
) -> Result<UpscalerOutput> {
    let mut run = StageRun::new(number, progress);
    run.event(Event::loading(number))?;
    let variant = opts.variant.as_deref();
    let unet = UNet::load(gpu, &folder.component("unet")?, variant)?;
    let vae_dir = folder.component("vae")?;
    let vae_config = iterinv_models::config::VaeConfig::load(&vae_dir, None)?;
    let &[1, channels, h, w] = low_res.shape() else {
        return Err(Error::Input {
            what: "low-resolution image".into(),
            detail: format!("must be [1, C, H, W], got shape {:?}", low_res.shape()),
        });
    };
    let latent_channels = vae_config.latent_channels;
    if latent_channels + channels != unet.config().in_channels {
        return Err(Error::Input {
            what: "low-resolution image".into(),
            detail: format!(
                "has {channels} channels; with the VAE's {latent_channels} latent channels the \
                 UNet takes {} in all",
                unet.config().in_channels
            ),
        });
    }
    let mut scheduler = folder.scheduler("scheduler", None)?;
    let noising = folder.scheduler("low_res_scheduler", None)?;
    let condition_noise = noise.noise(&format!("{name}_condition"), low_res.shape())?;
    let condition = LowResCondition {
        upscaled: noising.add_noise(low_res, &condition_noise, &[opts.noise_level])?,
        noise_level: opts.noise_level,
    };
    // DDIM's and DDPM's initial noise sigma is 1.
    let x = noise.noise(&format!("{name}_initial"), &[1, latent_channels, h, w])?;
    let vae = Arc::new(Vae::load(gpu, &vae_dir, variant)?);
    run.decode_estimates_with(decoder(vae.clone()));
    run.event(Event::phase(SAMPLING, opts.settings.steps))?;
    let latents = denoise(
        &unet,
        &mut scheduler,
        x,
        text,
        Some(&condition),
        opts.settings,
        name,
        noise,
        &mut *run.on_step(),
    )?;
    drop((unet, run));
    gpu.trim_pool();
    let image = vae.decode(&latents.div_scalar(vae_config.scaling_factor as f32)?)?;
    drop(vae);
    gpu.trim_pool();
    Ok(UpscalerOutput { latents, image })
}
