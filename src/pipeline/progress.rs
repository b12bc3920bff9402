//! What a long inversion, reconstruction or generation tells its caller as it runs: [`Event`]s,
//! each a point where a host may pause the work (see [`crate::session`]), with the active
//! stage's current [`Estimate`] of its image for a preview.

use std::sync::Arc;

use iterinv_engine::invert::{StepReport, Update};
use iterinv_models::Result;

use crate::Tensor;

/// A progress notice: the stage, what it is doing, and the timesteps done of `total` (with the
/// last step's final inner loss, for the inner-loop methods). Sent at each phase's start, after
/// each timestep and, within a timestep of NTI or IterInv, after each inner iteration.
#[derive(Clone, Debug)]
pub struct Event {
    /// The stage's number in the cascade, from 1.
    pub stage: usize,
    pub phase: &'static str,
    pub step: usize,
    pub total: usize,
    pub loss: Option<f64>,
    /// Within timestep `step + 1`: the inner iterations done (NTI's Adam steps, IterInv's
    /// updates); `None` at a timestep's end and at a phase's start.
    pub inner: Option<usize>,
    /// The stage's current estimate of its clean image, once the phase has one (its latest
    /// timestep's x̂₀).
    pub estimate: Option<Estimate>,
}

impl Event {
    /// The first event of stage `stage`: its models are about to load.
    pub fn loading(stage: usize) -> Event {
        Event {
            stage,
            ..Event::phase("loading", 0)
        }
    }

    /// The start of `phase`, of `total` timesteps (0: none), at stage 1 (a [`StageRun`] sets
    /// its own).
    pub fn phase(phase: &'static str, total: usize) -> Event {
        Event {
            stage: 1,
            phase,
            step: 0,
            total,
            loss: None,
            inner: None,
            estimate: None,
        }
    }
}

/// The phase of a generation's denoising loop.
pub const SAMPLING: &str = "sampling";

/// Turns a latent estimate into pixels (the upscaler stage's VAE decode).
pub type Decoder = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// A stage's estimate of its clean image at one point of its loop: x̂₀ as the scheduler's step
/// predicted it. Holding one is cheap (a handle to a tensor the loop made anyway); [`Self::image`]
/// makes the picture, which for the upscaler's latent stage costs one VAE decode.
#[derive(Clone)]
pub struct Estimate {
    x0: Tensor,
    decoder: Option<Decoder>,
}

impl std::fmt::Debug for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Estimate({:?}, latent: {})",
            self.x0,
            self.decoder.is_some()
        )
    }
}

impl Estimate {
    /// The estimate in the stage's own space: pixels in [−1, 1] for IF's stages, the VAE's
    /// scaled latent for the upscaler.
    pub fn tensor(&self) -> &Tensor {
        &self.x0
    }

    /// The estimate as an image, `[1, 3, H, W]` clamped to [−1, 1] (what [`crate::image_io`]
    /// saves).
    pub fn image(&self) -> Result<Tensor> {
        let pixels = match &self.decoder {
            Some(decode) => decode(&self.x0)?,
            None => self.x0.clone(),
        };
        Ok(pixels.clamp(-1.0, 1.0)?)
    }
}

/// Called with each [`Event`]; an error (e.g. `engine::Error::Interrupted` on Ctrl-C) stops
/// the run and is returned by it.
pub type Progress<'a> = &'a mut dyn FnMut(&Event) -> iterinv_engine::Result<()>;

/// The engine's per-step callback, boxed.
pub(crate) type StepCallback<'a> = Box<dyn FnMut(&Update) -> iterinv_engine::Result<()> + 'a>;

/// One stage's progress and per-step record while it runs.
pub struct StageRun<'a> {
    stage: usize,
    current: Event,
    progress: &'a mut dyn FnMut(&Event) -> iterinv_engine::Result<()>,
    decoder: Option<Decoder>,
    pub(crate) steps: Vec<StepReport>,
}

impl<'a> StageRun<'a> {
    pub(crate) fn new(
        stage: usize,
        progress: &'a mut dyn FnMut(&Event) -> iterinv_engine::Result<()>,
    ) -> Self {
        StageRun {
            stage,
            current: Event::phase("", 0),
            progress,
            decoder: None,
            steps: Vec::new(),
        }
    }

    /// The stage's estimates are latents that `decoder` turns into pixels.
    pub(crate) fn decode_estimates_with(&mut self, decoder: Decoder) {
        self.decoder = Some(decoder);
    }

    pub(crate) fn event(&mut self, mut e: Event) -> iterinv_engine::Result<()> {
        e.stage = self.stage;
        self.current = e.clone();
        (self.progress)(&e)
    }

    /// A callback for the engine's per-step updates: a timestep's end counts a step and keeps
    /// its loss and estimate; an inner iteration is passed on as such.
    pub(crate) fn on_step(&mut self) -> StepCallback<'_> {
        Box::new(move |u| {
            let current = &mut self.current;
            current.inner = u.inner;
            if u.inner.is_none() {
                current.step += 1;
                current.loss = (!u.final_loss.is_nan()).then_some(u.final_loss);
            }
            if let Some(x0) = u.estimate {
                current.estimate = Some(Estimate {
                    x0: x0.clone(),
                    decoder: self.decoder.clone(),
                });
            }
            (self.progress)(current)
        })
    }

    pub(crate) fn record_steps(&mut self, reports: &[StepReport]) {
        self.steps = reports.to_vec();
    }
}
