//! The IF cascade, text to image: T5 encodes the prompt, stage I samples a 64 px image (the
//! fixture: 16 px), stage II upscales it ×4, and an optional stage III — the SD x4 upscaler, as
//! DeepFloyd-IF's documentation chains it — upscales that ×4 again (256 → 1024 px), each stage
//! exactly as diffusers' pipelines do it.
//!
//! Components are loaded when a stage starts and dropped (their GPU memory returned with
//! `trim_pool`) when it ends, so peak GPU memory is the largest stage, not the sum.

use std::path::PathBuf;

use iterinv_engine::sched::SchedulerKind;
use iterinv_models::t5::T5Encoder;
use iterinv_models::text::caption::preprocess;
use iterinv_models::text::tokenizer::T5Tokenizer;
use iterinv_models::{Result, UNet};

use super::folder::{PipelineFolder, Stage};
use super::guidance::TextCondition;
use super::noise::NoiseSource;
use super::sampling::{denoise, LowResCondition, StageSettings};
use super::upscaler::{self, UpscalerOptions};
use crate::{Gpu, Tensor};

/// Everything a text-to-image run needs; `Default` gives diffusers' IF defaults.
#[derive(Clone, Debug)]
pub struct CascadeOptions {
    pub prompt: String,
    pub negative_prompt: String,
    /// IF's caption cleaning (diffusers' `clean_caption=True`, its default); else lower().strip().
    pub clean_caption: bool,
    pub stage1: PathBuf,
    /// Without it, the run stops after stage I.
    pub stage2: Option<PathBuf>,
    /// The SD x4 upscaler's folder (`StableDiffusionUpscalePipeline`); it upscales the last IF
    /// stage's image with its own CLIP text encoding of the prompt (given as is, no caption
    /// cleaning).
    pub stage3: Option<PathBuf>,
    /// Stage III's steps, guidance and noise level (the folder's `variant` is `variant`).
    pub stage3_settings: StageSettings,
    pub stage3_noise_level: usize,
    /// Weight file variant (`fp16`) for every component.
    pub variant: Option<String>,
    pub stage1_settings: StageSettings,
    pub stage2_settings: StageSettings,
    /// Noise added to the upscaled stage-I image (a timestep of the image-noising scheduler).
    pub noise_level: usize,
    /// Overrides the schedulers' own kind (their config's `_class_name`).
    pub sampler: Option<SchedulerKind>,
}

impl Default for CascadeOptions {
    fn default() -> Self {
        CascadeOptions {
            prompt: String::new(),
            negative_prompt: String::new(),
            clean_caption: true,
            stage1: PathBuf::new(),
            stage2: None,
            variant: None,
            stage1_settings: StageSettings {
                steps: 100,
                guidance: 7.0,
                eta: 0.0,
            },
            stage2_settings: StageSettings {
                steps: 50,
                guidance: 4.0,
                eta: 0.0,
            },
            noise_level: 250,
            sampler: None,
            stage3: None,
            // The upscaler pipeline's own defaults are 75 steps, guidance 9 and noise level 20;
            // DeepFloyd-IF chains it with noise level 100.
            stage3_settings: StageSettings {
                steps: 75,
                guidance: 9.0,
                eta: 0.0,
            },
            stage3_noise_level: 100,
        }
    }
}

/// Progress of a run: (stage, steps done, total).
pub type CascadeProgress<'a> = &'a mut dyn FnMut(Stage, usize, usize);

/// The images of each stage, `[1, 3, H, W]` in about [−1, 1] (not clamped).
pub struct CascadeOutput {
    pub stage1: Tensor,
    pub stage2: Option<Tensor>,
    pub stage3: Option<Tensor>,
}

/// IF's text length: 77 tokens (76 pieces and `</s>`).
pub const MAX_TOKENS: usize = 77;

/// Encode the prompt and the negative prompt with stage I's tokenizer and T5, then free T5.
pub fn encode_text(
    gpu: &Gpu,
    folder: &PipelineFolder,
    prompt: &str,
    negative_prompt: &str,
    clean_caption: bool,
    variant: Option<&str>,
) -> Result<TextCondition> {
    let tokenizer = T5Tokenizer::load(&folder.component("tokenizer")?)?;
    let texts = [
        preprocess(prompt, clean_caption),
        preprocess(negative_prompt, clean_caption),
    ];
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = tokenizer.encode(&refs, MAX_TOKENS)?;
    let encoder = T5Encoder::load(gpu, &folder.component("text_encoder")?, variant)?;
    let embeddings = encoder.encode(&tokens.input_ids, &tokens.attention_mask)?;
    drop(encoder);
    gpu.trim_pool();
    let rows = embeddings.split(0, &[1, 1])?;
    Ok(TextCondition {
        cond: rows[0].clone(),
        uncond: Some(rows[1].clone()),
    })
}

/// Stage I: noise to a `[1, 3, S, S]` image, S the UNet's `sample_size`.
pub fn run_stage1(
    gpu: &Gpu,
    folder: &PipelineFolder,
    text: &TextCondition,
    opts: &CascadeOptions,
    noise: &mut dyn NoiseSource,
    progress: CascadeProgress,
) -> Result<Tensor> {
    let unet = UNet::load(gpu, &folder.component("unet")?, opts.variant.as_deref())?;
    let mut scheduler = folder.scheduler("scheduler", opts.sampler)?;
    let size = unet.sample_size()?;
    let channels = unet.config().in_channels;
    let x = noise.noise("stage1_initial", &[1, channels, size, size])?;
    let image = denoise(
        &unet,
        &mut scheduler,
        x,
        text,
        None,
        opts.stage1_settings,
        Stage::One.name(),
        noise,
        &mut |i, n| progress(Stage::One, i, n),
    )?;
    drop(unet);
    gpu.trim_pool();
    Ok(image)
}

/// Stage II: the stage-I image upscaled (bilinear, align_corners) to the UNet's `sample_size`,
/// noised once at `noise_level`, conditions the sampling of the high-resolution image.
pub fn run_stage2(
    gpu: &Gpu,
    folder: &PipelineFolder,
    low_res: &Tensor,
    text: &TextCondition,
    opts: &CascadeOptions,
    noise: &mut dyn NoiseSource,
    progress: CascadeProgress,
) -> Result<Tensor> {
    let unet = UNet::load(gpu, &folder.component("unet")?, opts.variant.as_deref())?;
    let mut scheduler = folder.scheduler("scheduler", opts.sampler)?;
    let noising = folder.scheduler("image_noising_scheduler", Some(SchedulerKind::Ddpm))?;
    let size = unet.sample_size()?;
    let channels = unet.config().in_channels / 2;
    let x = noise.noise("stage2_initial", &[1, channels, size, size])?;
    let upscaled = low_res.resize_bilinear(size, size)?;
    let condition_noise = noise.noise("stage2_condition", upscaled.shape())?;
    let upscaled = noising.add_noise(&upscaled, &condition_noise, &[opts.noise_level])?;
    let condition = LowResCondition {
        upscaled,
        noise_level: opts.noise_level,
    };
    let image = denoise(
        &unet,
        &mut scheduler,
        x,
        text,
        Some(&condition),
        opts.stage2_settings,
        Stage::Two.name(),
        noise,
        &mut |i, n| progress(Stage::Two, i, n),
    )?;
    drop(unet);
    gpu.trim_pool();
    Ok(image)
}

/// The whole cascade: text, stage I, and stage II when `opts.stage2` is set.
pub fn generate(
    gpu: &Gpu,
    opts: &CascadeOptions,
    noise: &mut dyn NoiseSource,
    progress: CascadeProgress,
) -> Result<CascadeOutput> {
    let stage1 = PipelineFolder::open(&opts.stage1, Stage::One)?;
    let stage2 = opts
        .stage2
        .as_deref()
        .map(|d| PipelineFolder::open(d, Stage::Two))
        .transpose()?;
    let stage3 = opts
        .stage3
        .as_deref()
        .map(|d| PipelineFolder::open(d, Stage::Upscaler))
        .transpose()?;
    let text = encode_text(
        gpu,
        &stage1,
        &opts.prompt,
        &opts.negative_prompt,
        opts.clean_caption,
        opts.variant.as_deref(),
    )?;
    let image1 = run_stage1(gpu, &stage1, &text, opts, noise, progress)?;
    let image2 = match &stage2 {
        Some(folder) => Some(run_stage2(
            gpu, folder, &image1, &text, opts, noise, progress,
        )?),
        None => None,
    };
    let image3 = match &stage3 {
        Some(folder) => {
            let variant = opts.variant.as_deref();
            let text =
                upscaler::encode_text(gpu, folder, &opts.prompt, &opts.negative_prompt, variant)?;
            let upscaler_opts = UpscalerOptions {
                settings: opts.stage3_settings,
                noise_level: opts.stage3_noise_level,
                variant: opts.variant.clone(),
            };
            let low_res = image2.as_ref().unwrap_or(&image1);
            let out = upscaler::upscale(
                gpu,
                folder,
                low_res,
                &text,
                &upscaler_opts,
                noise,
                &mut |i, n| progress(Stage::Upscaler, i, n),
            )?;
            Some(out.image)
        }
        None => None,
    };
    Ok(CascadeOutput {
        stage1: image1,
        stage2: image2,
        stage3: image3,
    })
}
