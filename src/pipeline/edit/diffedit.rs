//! DiffEdit on IF stage I, as the IterInv paper's code runs it (its `IFDiffEditPipeline`:
//! `generate_mask`, `invert`, then the masked denoising), on pixels:
//!
//! 1. **Mask**: the image is noised at the timestep `encode_strength` of the way into the DDIM
//!    schedule (30 steps, 0.1: t = 66) with `maps` noise draws; for each, the UNet's guided ε under
//!    the source and the edit prompt; the map is |ε_edit − ε_source| averaged over the draws and
//!    the channels; a pixel is edited where the map, clamped to c = mean(map)·`mask_ratio`, is
//!    above c/2.
//! 2. **Partial inversion**: guided DDIM inversion with the source prompt over the first
//!    ⌊`inpaint_strength`·steps⌋ timesteps (the least noisy), every latent kept.
//! 3. **Masked denoising**: from the most noisy of them, guided DDIM with the edit prompt; after
//!    each step the pixels outside the mask are replaced by the inverted latent of the same index
//!    (`x·m + inv[i]·(1 − m)`, the paper's code's indexing), so outside the mask the result is the
//!    inversion's least noisy latent, exactly.

use iterinv_engine::invert::{ddim, Guidance};
use iterinv_engine::sched::{Scheduler, StepOptions};
use iterinv_models::{Error, Result, UNet, UNetInputs};
use serde::{Deserialize, Serialize};

use crate::pipeline::denoiser::IfDenoiser;
use crate::pipeline::guidance::guides;
use crate::pipeline::noise::NoiseSource;
use crate::{Gpu, Tensor};

/// DiffEdit's settings; `Default` gives the IterInv paper's code (diffusers' SD DiffEdit defaults,
/// for comparison: 50 steps, guidance 7.5, 10 maps, encode strength 0.5, ratio 3.0, inpaint
/// strength 0.8).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffEditSettings {
    /// DDIM steps of the schedule all three parts use.
    pub steps: usize,
    /// Classifier-free guidance of all three parts (the negative prompt is "").
    pub guidance: f32,
    /// Noise draws averaged into the mask.
    pub maps: usize,
    /// How far into the schedule the mask's noise goes (0..1).
    pub encode_strength: f64,
    /// The map is clamped to its mean times this before the 0.5 threshold.
    pub mask_ratio: f64,
    /// The share of the schedule that is inverted and re-denoised (0..1).
    pub inpaint_strength: f64,
}

impl Default for DiffEditSettings {
    fn default() -> Self {
        DiffEditSettings {
            steps: 30,
            guidance: 3.0,
            maps: 10,
            encode_strength: 0.1,
            mask_ratio: 1.0,
            inpaint_strength: 0.8,
        }
    }
}

impl DiffEditSettings {
    /// Every setting in range, before any work.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, detail: String| {
            Err(Error::Input {
                what: what.into(),
                detail,
            })
        };
        if self.steps == 0 || self.maps == 0 {
            return bad(
                "DiffEdit steps and maps",
                format!(
                    "are {} and {}; both must be at least 1",
                    self.steps, self.maps
                ),
            );
        }
        for (what, v) in [
            ("encode strength", self.encode_strength),
            ("inpaint strength", self.inpaint_strength),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(what, format!("is {v}; it must be in (0, 1]"));
            }
        }
        if !(self.mask_ratio.is_finite() && self.mask_ratio > 0.0) {
            return bad(
                "mask ratio",
                format!("is {}; it must be above 0", self.mask_ratio),
            );
        }
        if !self.guidance.is_finite() {
            return bad("guidance", format!("is {}", self.guidance));
        }
        // diffusers' get_timesteps: int(steps · strength) timesteps, at least one for each.
        for (what, strength, verb) in [
            ("inpaint strength", self.inpaint_strength, "inverts"),
            ("encode strength", self.encode_strength, "noises to"),
        ] {
            if self.count(strength) == 0 {
                return bad(
                    what,
                    format!(
                        "{strength} of {} steps {verb} no timestep; raise it or the steps",
                        self.steps
                    ),
                );
            }
        }
        Ok(())
    }

    /// How many of the schedule's timesteps a strength covers (diffusers' `int(steps·strength)`).
    fn count(&self, strength: f64) -> usize {
        ((self.steps as f64 * strength) as usize).min(self.steps)
    }
}

/// The three prompts' embeddings `[1, L, D]` (stage I's T5).
pub struct EditTexts<'a> {
    pub source: &'a Tensor,
    pub edit: &'a Tensor,
    /// The embedding of "" (classifier-free guidance's unconditional text).
    pub negative: &'a Tensor,
}

/// What DiffEdit finds and makes at stage I.
pub struct DiffEditOutput {
    /// The averaged |ε_edit − ε_source| per pixel, `[1, 1, H, W]`.
    pub mask_map: Tensor,
    /// 1 where the image is edited, 0 where it is kept, `[1, 1, H, W]`.
    pub mask: Tensor,
    /// The partial inversion's latents, most noisy first (`inverted.last()`: the least noisy).
    pub inverted: Vec<Tensor>,
    /// The edited image `[1, 3, H, W]`, about [−1, 1].
    pub edited: Tensor,
}

/// Run DiffEdit on `image` (`[1, 3, S, S]`, S the UNet's size) with `scheduler` (DDIM from the
/// stage-I folder, its thresholding as configured, set to `settings.steps`). The mask's noise
/// draws are `diffedit_mask_{k}`.
pub fn diffedit(
    gpu: &Gpu,
    unet: &UNet,
    scheduler: &Scheduler,
    image: &Tensor,
    texts: &EditTexts,
    settings: &DiffEditSettings,
    noise: &mut dyn NoiseSource,
) -> Result<DiffEditOutput> {
    settings.check()?;
    if scheduler.timesteps().len() != settings.steps {
        return Err(Error::Input {
            what: "DiffEdit's scheduler".into(),
            detail: format!(
                "has {} timesteps; the settings ask for {}",
                scheduler.timesteps().len(),
                settings.steps
            ),
        });
    }
    let (mask_map, mask) = semantic_mask(gpu, unet, scheduler, image, texts, settings, noise)?;
    let denoiser = IfDenoiser {
        unet,
        low_res: None,
    };
    let n = settings.count(settings.inpaint_strength);
    let source = Guidance {
        cond: texts.source,
        uncond: Some(texts.negative),
        scale: settings.guidance,
    };
    let trace = ddim::invert_partially(&denoiser, scheduler, image, source, n, &mut |_| Ok(()))?;
    let inverted: Vec<Tensor> = trace[1..].iter().rev().cloned().collect();

    let edit = Guidance {
        cond: texts.edit,
        uncond: Some(texts.negative),
        scale: settings.guidance,
    };
    let channels = image.dim(1);
    let expand = |m: &Tensor| Tensor::concat(&vec![m; channels], 1);
    let keep = expand(&mask.neg()?.add_scalar(1.0)?)?;
    let change = expand(&mask)?;
    let timesteps = &scheduler.timesteps()[settings.steps - n..];
    let mut x = inverted[0].clone();
    for (i, &t) in timesteps.iter().enumerate() {
        let out = edit.predict(&denoiser, &x, t)?;
        x = scheduler
            .step(&out, t, &x, StepOptions::default())?
            .prev_sample;
        // x·m + inv·(1 − m): with m ∈ {0, 1} each pixel is exactly one of the two.
        x = x.mul(&change)?.add(&inverted[i].mul(&keep)?)?;
    }
    Ok(DiffEditOutput {
        mask_map,
        mask,
        inverted,
        edited: x,
    })
}

/// Step 1: the averaged guided-ε difference and its thresholded mask.
fn semantic_mask(
    gpu: &Gpu,
    unet: &UNet,
    scheduler: &Scheduler,
    image: &Tensor,
    texts: &EditTexts,
    settings: &DiffEditSettings,
    noise: &mut dyn NoiseSource,
) -> Result<(Tensor, Tensor)> {
    let timesteps = scheduler.timesteps();
    let t = timesteps[settings.steps - settings.count(settings.encode_strength)];
    let (c, h, w) = (image.dim(1), image.dim(2), image.dim(3));
    // The guided ε of either prompt shares the unconditional pass, which cancels in their
    // difference: ε_edit − ε_source = w·(ε(edit) − ε(source)) (w = 1 unguided). Two passes, not
    // the paper code's four; the same numbers up to f32 rounding.
    let scale = if guides(settings.guidance) {
        settings.guidance as f64
    } else {
        1.0
    };
    let context = Tensor::concat(&[texts.source, texts.edit], 0)?;
    let mut sum = vec![0f64; h * w];
    for k in 0..settings.maps {
        let draw = noise.noise(&format!("diffedit_mask_{k}"), image.shape())?;
        let noised = scheduler.add_noise(image, &draw, &[t])?;
        let out = unet.forward(&UNetInputs {
            sample: &Tensor::concat(&[&noised, &noised], 0)?,
            timesteps: &[t as f32],
            encoder_hidden_states: &context,
            class_labels: None,
        })?;
        let eps = out.slice(1, 0, c)?.split(0, &[1, 1])?;
        // One readback per draw, before the denoising: the mask is decided on the host in f64.
        let diff = eps[1].sub(&eps[0])?.to_vec()?;
        for (i, d) in diff.iter().enumerate() {
            sum[i % (h * w)] += (*d as f64).abs();
        }
    }
    let map: Vec<f64> = sum
        .iter()
        .map(|s| scale * s / (settings.maps * c) as f64)
        .collect();
    let clamp = map.iter().sum::<f64>() / map.len() as f64 * settings.mask_ratio;
    let mask: Vec<f32> = map
        .iter()
        .map(|&v| {
            if v.clamp(0.0, clamp) / clamp > 0.5 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let map32: Vec<f32> = map.iter().map(|&v| v as f32).collect();
    Ok((
        Tensor::from_f32(gpu, &[1, 1, h, w], &map32)?,
        Tensor::from_f32(gpu, &[1, 1, h, w], &mask)?,
    ))
}
