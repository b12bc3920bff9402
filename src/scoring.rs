//! The paper's scores of an image against its reference (spec/method.md, "Evaluation in the
//! paper"), for `iterinv score` and `iterinv eval`: MSE, PSNR (data range = the reference's
//! max − min) and SSIM (torchmetrics', data range 1) on [0, 1] pixels on the CPU ([`metrics`]);
//! LPIPS (VGG, inputs ×2 − 1) and the CLIP score of the image against a prompt on the GPU, each
//! when its model is given. The models load once and score any number of images.
//!
//! [`metrics`]: crate::metrics

use std::path::Path;

use iterinv_models::clip_model::clip_score;
use iterinv_models::text::ClipTokenizer;
use iterinv_models::{ClipModel, Error, Lpips, Result};

use crate::clip_image::ClipImageProcessor;
use crate::image_io::Rgb;
use crate::metrics::pixel_scores;
use crate::{Gpu, Tensor};

/// Scores of one image against its reference; LPIPS and CLIP when their models were given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub mse: f64,
    /// Infinite for equal images.
    pub psnr: f64,
    /// None when a side is 5 pixels or less.
    pub ssim: Option<f64>,
    pub lpips: Option<f64>,
    pub clip_score: Option<f64>,
}

/// The CLIP model, its image processor and tokenizer (one folder, e.g.
/// openai/clip-vit-base-patch16).
struct Clip {
    model: ClipModel,
    processor: ClipImageProcessor,
    tokenizer: ClipTokenizer,
}

/// The loaded metric networks.
pub struct Scorer {
    gpu: Gpu,
    lpips: Option<Lpips>,
    clip: Option<Clip>,
}

impl Scorer {
    /// `lpips`: the lpips state dict in one safetensors file
    /// (tools/reference/make_lpips_fixtures.py --real); `clip`: a CLIPModel folder.
    pub fn load(gpu: &Gpu, lpips: Option<&Path>, clip: Option<&Path>) -> Result<Scorer> {
        let lpips = lpips.map(|file| Lpips::load(gpu, file)).transpose()?;
        let clip = clip
            .map(|dir| -> Result<Clip> {
                Ok(Clip {
                    model: ClipModel::load(gpu, dir)?,
                    processor: ClipImageProcessor::load(dir)?,
                    tokenizer: ClipTokenizer::load(dir)?,
                })
            })
            .transpose()?;
        Ok(Scorer {
            gpu: gpu.clone(),
            lpips,
            clip,
        })
    }

    /// Every score this scorer has of `scored` against `reference` (both [0, 1], same size);
    /// the CLIP score is of `scored` against `prompt`.
    pub fn score(&self, reference: &Rgb, scored: &Rgb, prompt: &str) -> Result<Scores> {
        same_size(reference, scored)?;
        let s = pixel_scores(
            &reference.data,
            &scored.data,
            3,
            reference.height,
            reference.width,
        );
        Ok(Scores {
            mse: s.mse,
            psnr: s.psnr,
            ssim: s.ssim,
            lpips: self.lpips(reference, scored)?,
            clip_score: self.clip_score(scored, prompt)?,
        })
    }

    /// LPIPS between two images of the same size, if this scorer has the network.
    pub fn lpips(&self, a: &Rgb, b: &Rgb) -> Result<Option<f64>> {
        let Some(lpips) = &self.lpips else {
            return Ok(None);
        };
        same_size(a, b)?;
        let d = lpips.distance(&self.signed(a)?, &self.signed(b)?)?;
        Ok(Some(d.distance))
    }

    /// torchmetrics' CLIPScore of one image and one prompt, if this scorer has the model: the
    /// prompt's tokens are not padded and are cut to the text tower's positions, as torchmetrics
    /// does.
    pub fn clip_score(&self, img: &Rgb, prompt: &str) -> Result<Option<f64>> {
        let Some(clip) = &self.clip else {
            return Ok(None);
        };
        let mut ids = clip.tokenizer.encode_unpadded(prompt)?;
        ids.truncate(clip.model.config().text_config.max_position_embeddings);
        let text = clip.model.text_embeds(&[ids])?.to_vec()?;
        let (pixels, h, w) = clip.processor.preprocess(img);
        let image = clip
            .model
            .image_embeds(&Tensor::from_f32(&self.gpu, &[1, 3, h, w], &pixels)?)?
            .to_vec()?;
        Ok(Some(clip_score(&image, &text)))
    }

    /// `[1, 3, H, W]` in [−1, 1], LPIPS' range.
    fn signed(&self, img: &Rgb) -> Result<Tensor> {
        let data: Vec<f32> = img.data.iter().map(|v| v * 2.0 - 1.0).collect();
        Ok(Tensor::from_f32(
            &self.gpu,
            &[1, 3, img.height, img.width],
            &data,
        )?)
    }
}

fn same_size(a: &Rgb, b: &Rgb) -> Result<()> {
    if (a.height, a.width) != (b.height, b.width) {
        return Err(Error::Input {
            what: "images to score".into(),
            detail: format!(
                "are {}×{} and {}×{}: they must be the same size",
                a.width, a.height, b.width, b.height
            ),
        });
    }
    Ok(())
}
