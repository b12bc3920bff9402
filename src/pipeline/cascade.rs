//! The cascade, text to image: T5 encodes the prompt, IF stage I samples a 64 px image (the
//! fixture: 16 px), and each super-resolution stage after it upscales the previous stage's image:
//! IF stage II (×4 in pixels) or the SD x4 upscaler (×4 through a latent, as DeepFloyd-IF's
//! stage III and the IterInv paper's stages II and III), each exactly as diffusers' pipelines do it.
//!
//! Components are loaded when a stage starts and dropped (their GPU memory returned with
//! `trim_pool`) when it ends, so peak GPU memory is the largest stage, not the sum.

use std::path::{Path, PathBuf};

use iterinv_engine::sched::SchedulerKind;
use iterinv_models::t5::T5Encoder;
use iterinv_models::text::caption::preprocess;
use iterinv_models::text::tokenizer::T5Tokenizer;
use iterinv_models::{Result, UNet};

use super::folder::{PipelineFolder, Stage};
use super::guidance::TextCondition;
use super::noise::NoiseSource;
use super::progress::{Event, Progress, StageRun, SAMPLING};
use super::sampling::{denoise, LowResCondition, StageSettings};
use super::upscaler::{self, UpscalerOptions};
use crate::{Gpu, Tensor};

/// One super-resolution stage of a text-to-image run.
#[derive(Clone, Debug)]
pub struct CascadeStage {
    /// An IF stage-II folder (`IFSuperResolutionPipeline`) or the SD x4 upscaler's
    /// (`StableDiffusionUpscalePipeline`; it encodes the prompt with its own CLIP, as given: no
    /// caption cleaning).
    pub folder: PathBuf,
    pub settings: StageSettings,
    /// Noise added once to the previous stage's image before it conditions this stage (a
    /// timestep of the stage's noising scheduler; for the upscaler also the UNet's class label).
    pub noise_level: usize,
}

impl CascadeStage {
    /// The stage in `folder` with its kind's defaults: IF stage II as diffusers runs it (50
    /// steps, guidance 4, noise level 250), the x4 upscaler as DeepFloyd-IF chains it (75 steps,
    /// guidance 9, noise level 100; the upscaler pipeline alone uses 20).
    pub fn with_defaults(folder: &Path) -> Result<CascadeStage> {
        let kind = PipelineFolder::open_super_resolution(folder)?.stage();
        let (steps, guidance, noise_level) = match kind {
            Stage::Upscaler => (75, 9.0, 100),
            _ => (50, 4.0, 250),
        };
        Ok(CascadeStage {
            folder: folder.to_path_buf(),
            settings: StageSettings {
                steps,
                guidance,
                eta: 0.0,
            },
            noise_level,
        })
    }
}

/// Everything a text-to-image run needs; `Default` gives diffusers' IF defaults for stage I.
#[derive(Clone, Debug)]
pub struct CascadeOptions {
    pub prompt: String,
    pub negative_prompt: String,
    /// IF's caption cleaning (diffusers' `clean_caption=True`, its default); else lower().strip().
    pub clean_caption: bool,
    pub stage1: PathBuf,
    pub stage1_settings: StageSettings,
    /// The stages after stage I, in order (none: the run stops after stage I).
    pub super_resolution: Vec<CascadeStage>,
    /// Weight file variant (`fp16`) for every component.
    pub variant: Option<String>,
    /// Overrides the IF schedulers' own kind (their config's `_class_name`).
    pub sampler: Option<SchedulerKind>,
}

impl Default for CascadeOptions {
    fn default() -> Self {
        CascadeOptions {
            prompt: String::new(),
            negative_prompt: String::new(),
            clean_caption: true,
            stage1: PathBuf::new(),
            stage1_settings: StageSettings {
                steps: 100,
                guidance: 7.0,
                eta: 0.0,
            },
            super_resolution: Vec::new(),
            variant: None,
            sampler: None,
        }
    }
}

/// The image of each stage, stage I first, `[1, 3, H, W]` in about [−1, 1] (not clamped); into
/// a texture of the host application with [`crate::texture::write_texture`].
pub struct CascadeOutput {
    pub images: Vec<Tensor>,
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
    let rows = encode_texts(
        gpu,
        folder,
        &[prompt, negative_prompt],
        clean_caption,
        variant,
    )?;
    Ok(TextCondition {
        cond: rows[0].clone(),
        uncond: Some(rows[1].clone()),
    })
}

/// Encode `texts` with stage I's tokenizer and T5 in one batch, then free T5: one `[1, 77, D]`
/// embedding per text.
pub fn encode_texts(
    gpu: &Gpu,
    folder: &PipelineFolder,
    texts: &[&str],
    clean_caption: bool,
    variant: Option<&str>,
) -> Result<Vec<Tensor>> {
    let tokenizer = T5Tokenizer::load(&folder.component("tokenizer")?)?;
    let cleaned: Vec<String> = texts.iter().map(|t| preprocess(t, clean_caption)).collect();
    let refs: Vec<&str> = cleaned.iter().map(String::as_str).collect();
    let tokens = tokenizer.encode(&refs, MAX_TOKENS)?;
    let encoder = T5Encoder::load(gpu, &folder.component("text_encoder")?, variant)?;
    let embeddings = encoder.encode(&tokens.input_ids, &tokens.attention_mask)?;
    drop(encoder);
    gpu.trim_pool();
    Ok(embeddings.split(0, &vec![1; texts.len()])?)
}

/// Stage I: noise to a `[1, 3, S, S]` image, S the UNet's `sample_size`.
pub fn run_stage1(
    gpu: &Gpu,
    folder: &PipelineFolder,
    text: &TextCondition,
    opts: &CascadeOptions,
    noise: &mut dyn NoiseSource,
    progress: Progress,
) -> Result<Tensor> {
    let mut run = StageRun::new(1, progress);
    run.event(Event::loading(1))?;
    let unet = UNet::load(gpu, &folder.component("unet")?, opts.variant.as_deref())?;
    let mut scheduler = folder.scheduler("scheduler", opts.sampler)?;
    let size = unet.sample_size()?;
    let channels = unet.config().in_channels;
    let x = noise.noise("stage1_initial", &[1, channels, size, size])?;
    run.event(Event::phase(SAMPLING, opts.stage1_settings.steps))?;
    let image = denoise(
        &unet,
        &mut scheduler,
        x,
        text,
        None,
        opts.stage1_settings,
        Stage::One.name(),
        noise,
        &mut *run.on_step(),
    )?;
    drop(unet);
    gpu.trim_pool();
    Ok(image)
}

/// An IF super-resolution stage, number `number` of the cascade: the previous stage's image
/// upscaled (bilinear, align_corners) to the UNet's `sample_size`, noised once at the stage's
/// noise level, conditions the sampling of the high-resolution image. Its random draws are
/// `stage{number}_initial`, `stage{number}_condition` and `stage{number}_step_{i}`.
#[allow(clippy::too_many_arguments)]
pub fn run_if_super_resolution(
    gpu: &Gpu,
    folder: &PipelineFolder,
    stage: &CascadeStage,
    number: usize,
    low_res: &Tensor,
    text: &TextCondition,
    opts: &CascadeOptions,
    noise: &mut dyn NoiseSource,
    progress: Progress,
) -> Result<Tensor> {
    let mut run = StageRun::new(number, progress);
    run.event(Event::loading(number))?;
    let unet = UNet::load(gpu, &folder.component("unet")?, opts.variant.as_deref())?;
    let mut scheduler = folder.scheduler("scheduler", opts.sampler)?;
    let noising = folder.scheduler("image_noising_scheduler", Some(SchedulerKind::Ddpm))?;
    let size = unet.sample_size()?;
    let channels = unet.config().in_channels / 2;
    let name = format!("stage{number}");
    let x = noise.noise(&format!("{name}_initial"), &[1, channels, size, size])?;
    let upscaled = low_res.resize_bilinear(size, size)?;
    let condition_noise = noise.noise(&format!("{name}_condition"), upscaled.shape())?;
    let upscaled = noising.add_noise(&upscaled, &condition_noise, &[stage.noise_level])?;
    let condition = LowResCondition {
        upscaled,
        noise_level: stage.noise_level,
    };
    run.event(Event::phase(SAMPLING, stage.settings.steps))?;
    let image = denoise(
        &unet,
        &mut scheduler,
        x,
        text,
        Some(&condition),
        stage.settings,
        &name,
        noise,
        &mut *run.on_step(),
    )?;
    drop(unet);
    gpu.trim_pool();
    Ok(image)
}

/// The whole cascade: text, stage I, then each super-resolution stage on the previous image.
/// The images stay on the GPU ([`CascadeOutput`]), ready for a texture.
pub fn generate(
    gpu: &Gpu,
    opts: &CascadeOptions,
    noise: &mut dyn NoiseSource,
    progress: Progress,
) -> Result<CascadeOutput> {
    // Open every folder first: a wrong one fails before any model loads.
    let stage1 = PipelineFolder::open(&opts.stage1, Stage::One)?;
    let folders = opts
        .super_resolution
        .iter()
        .map(|s| PipelineFolder::open_super_resolution(&s.folder))
        .collect::<Result<Vec<_>>>()?;
    // Stage I's text encoder first.
    progress(&Event::loading(1))?;
    let text = encode_text(
        gpu,
        &stage1,
        &opts.prompt,
        &opts.negative_prompt,
        opts.clean_caption,
        opts.variant.as_deref(),
    )?;
    let mut images = vec![run_stage1(
        gpu,
        &stage1,
        &text,
        opts,
        noise,
        &mut *progress,
    )?];
    for (i, (stage, folder)) in opts.super_resolution.iter().zip(&folders).enumerate() {
        let number = i + 2;
        let low_res = images.last().expect("stage I ran");
        let image = match folder.stage() {
            Stage::Upscaler => {
                let variant = opts.variant.as_deref();
                let text = upscaler::encode_text(
                    gpu,
                    folder,
                    &opts.prompt,
                    &opts.negative_prompt,
                    variant,
                )?;
                let upscaler_opts = UpscalerOptions {
                    settings: stage.settings,
                    noise_level: stage.noise_level,
                    variant: opts.variant.clone(),
                };
                upscaler::upscale(
                    gpu,
                    folder,
                    low_res,
                    &text,
                    &upscaler_opts,
                    (number, &format!("stage{number}")),
                    noise,
                    &mut *progress,
                )?
                .image
            }
            _ => run_if_super_resolution(
                gpu,
                folder,
                stage,
                number,
                low_res,
                &text,
                opts,
                noise,
                &mut *progress,
            )?,
        };
        images.push(image);
    }
    Ok(CascadeOutput { images })
}
