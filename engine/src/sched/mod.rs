//! Diffusion schedulers: diffusers' `DDPMScheduler` and `DDIMScheduler` (0.42.1), matched to
//! their float32 results.
//!
//! Everything that depends only on the timestep — betas, alphas_cumprod, the timestep schedule and
//! each step's scalar coefficients — is computed on the CPU, reproducing torch's float32 arithmetic
//! op by op (diffusers computes these as 0-dim float32 tensors). The per-element math of a step is
//! engine tensor ops (affine, add, mul, exp, quantile, …), so a step runs on the GPU without reading
//! anything back, and records for autodiff whenever `model_output`, `sample` or `noise` is tracked:
//! the VJP of a step with respect to its inputs comes from [`crate::grad::grad`] like any op's.
//!
//! Matching: alphas_cumprod and the timestep schedules are bit-identical to diffusers' (torch's
//! float32 linspace is reproduced with its fused multiply-adds, the cumprod accumulates in f64 as
//! torch's CPU kernel does, NumPy's arange/linspace/round are followed). Step and add_noise outputs
//! agree to an ulp or two (tests/fixtures/schedulers, within 1e-6): torch's float32 sqrt is MKL's
//! and not correctly rounded, and x/c is computed as x·(1/c).
//!
//! Differences from diffusers, all on inputs diffusers mishandles: noise is passed in, never drawn;
//! an unsupported config value, a timestep outside the schedule, a missing noise tensor or a
//! coefficient that would be NaN or infinite (e.g. epsilon prediction where ᾱ_t = 0) is an error
//! rather than an exception or NaNs; a `model_output` with twice the sample's channels has its second
//! half ignored where diffusers would fail to broadcast (DDIM, and DDPM without a learned variance),
//! as IF's pipelines slice it off themselves; a "trailing" schedule whose NumPy arange comes out one
//! element long (62 of the 1000 step counts) ends without diffusers' extra timestep −1.

mod config;
mod ddim;
mod ddpm;
mod schedule;
mod threshold;

pub use config::{SchedulerConfig, MAX_TRAIN_TIMESTEPS};
pub use threshold::dynamic_threshold;

use config::config_err;

use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;

/// Which diffusers scheduler a [`Scheduler`] reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    Ddpm,
    Ddim,
}

/// Options of one [`Scheduler::step`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StepOptions<'a> {
    /// DDPM: the variance noise (shaped as the sample), required when t > 0. DDIM: the
    /// `variance_noise`, required when eta > 0. Ignored otherwise.
    pub noise: Option<&'a Tensor>,
    /// DDIM's η (0 = deterministic DDIM, 1 = DDPM-like variance). Ignored by DDPM.
    pub eta: f32,
}

/// The result of one step.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// x_{t−1}.
    pub prev_sample: Tensor,
    /// x0 as predicted and then thresholded or clipped per the config.
    pub pred_original_sample: Tensor,
}

/// A DDPM or DDIM scheduler for one config. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Scheduler {
    kind: SchedulerKind,
    config: SchedulerConfig,
    /// diffusers' float32 alphas_cumprod; the steps use these.
    ac32: Vec<f32>,
    /// The same values widened to f64 (what [`Scheduler::alphas_cumprod`] returns).
    ac64: Vec<f64>,
    /// DDIM's ᾱ after the last step: 1 (set_alpha_to_one) or ᾱ_0.
    final_alpha_cumprod: f32,
    timesteps: Vec<usize>,
    num_inference_steps: Option<usize>,
    /// DDPM: the schedule came from [`Scheduler::set_custom_timesteps`].
    custom: bool,
}

impl Scheduler {
    /// A scheduler for a validated config. Before [`set_timesteps`](Self::set_timesteps) the
    /// timesteps are num_train_timesteps − 1 … 0 (as diffusers'); DDIM cannot step until then.
    pub fn new(kind: SchedulerKind, config: SchedulerConfig) -> Result<Scheduler> {
        config.validate()?;
        if kind == SchedulerKind::Ddpm && config.variance_type_or_default() == "fixed_large_log" {
            return config_err(
                "variance_type",
                "\"fixed_large_log\"",
                "unsupported by DDPM: diffusers' step takes the square root of log β (NaN); \
                 use fixed_large, fixed_small_log or learned_range",
            );
        }
        let betas = schedule::betas(&config);
        let ac32 = schedule::alphas_cumprod(&betas);
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            ac32[0]
        };
        let n = config.num_train_timesteps;
        Ok(Scheduler {
            kind,
            ac64: ac32.iter().map(|&a| a as f64).collect(),
            ac32,
            final_alpha_cumprod,
            timesteps: (0..n).rev().collect(),
            num_inference_steps: None,
            custom: false,
            config,
        })
    }

    pub fn kind(&self) -> SchedulerKind {
        self.kind
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The schedule for `num_inference_steps` steps per the config's timestep_spacing (and
    /// steps_offset for "leading"), exactly diffusers' `set_timesteps(n)`.
    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let total = self.config.num_train_timesteps;
        if num_inference_steps == 0 || num_inference_steps > total {
            return invalid(
                "set_timesteps",
                format!(
                    "num_inference_steps = {num_inference_steps}: must be between 1 and the \
                     config's num_train_timesteps ({total})"
                ),
            );
        }
        self.timesteps = schedule::timesteps(&self.config, num_inference_steps);
        self.num_inference_steps = Some(num_inference_steps);
        self.custom = false;
        Ok(())
    }

    /// DDPM only: an explicit schedule (diffusers' `set_timesteps(timesteps=…)`, e.g. IF's
    /// `fast27_timesteps`): strictly descending, the first below num_train_timesteps.
    pub fn set_custom_timesteps(&mut self, timesteps: &[usize]) -> Result<()> {
        const OP: &str = "set_custom_timesteps";
        if self.kind != SchedulerKind::Ddpm {
            return invalid(
                OP,
                "diffusers' DDIMScheduler has no custom timesteps; use a DDPM scheduler",
            );
        }
        let total = self.config.num_train_timesteps;
        match timesteps.first() {
            None => return invalid(OP, "the timesteps are empty"),
            Some(&t) if t >= total => {
                return invalid(
                    OP,
                    format!("the first timestep {t} is not below num_train_timesteps ({total})"),
                )
            }
            _ => {}
        }
        if let Some(w) = timesteps.windows(2).find(|w| w[1] >= w[0]) {
            return invalid(
                OP,
                format!(
                    "the timesteps must be strictly descending, but {} is followed by {}",
                    w[0], w[1]
                ),
            );
        }
        self.timesteps = timesteps.to_vec();
        self.num_inference_steps = Some(timesteps.len());
        self.custom = true;
        Ok(())
    }

    /// The current schedule, first step first.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The step count [`set_timesteps`](Self::set_timesteps) was given (the length of a custom
    /// schedule), `None` before.
    pub fn num_inference_steps(&self) -> Option<usize> {
        self.num_inference_steps
    }

    /// ᾱ_t for every training timestep: the float32 values diffusers computes (an f64 cumprod of
    /// float32 1 − β, rounded to f32 at each step), widened to f64 without change.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.ac64
    }

    /// DDIM's ᾱ after the last step (1, or ᾱ_0 when set_alpha_to_one is false).
    pub fn final_alpha_cumprod(&self) -> f64 {
        self.final_alpha_cumprod as f64
    }

    /// The timestep a step from `t` lands on, `None` for "before 0" (diffusers' −1), or an error
    /// where diffusers has none: DDPM with a schedule set and `t` not in it, DDIM before
    /// set_timesteps.
    pub fn try_previous_timestep(&self, t: usize) -> Result<Option<usize>> {
        match self.kind {
            SchedulerKind::Ddpm => {
                if !self.custom && self.num_inference_steps.is_none() {
                    return Ok(t.checked_sub(1));
                }
                let Some(i) = self.timesteps.iter().position(|&s| s == t) else {
                    return invalid(
                        "previous_timestep",
                        format!("timestep {t} is not in the schedule {:?}", self.timesteps),
                    );
                };
                Ok(self.timesteps.get(i + 1).copied())
            }
            SchedulerKind::Ddim => {
                let Some(n) = self.num_inference_steps else {
                    return invalid(
                        "previous_timestep",
                        "DDIM needs set_timesteps before it can step",
                    );
                };
                Ok(t.checked_sub(self.config.num_train_timesteps / n))
            }
        }
    }

    /// [`try_previous_timestep`](Self::try_previous_timestep), with `None` also for the error
    /// cases (which [`step`](Self::step) reports).
    pub fn previous_timestep(&self, t: usize) -> Option<usize> {
        self.try_previous_timestep(t).ok().flatten()
    }

    /// One reverse step from `t`. `model_output` is [B, C, …] or [B, 2C, …] (the second half is
    /// DDPM's learned / learned_range variance, and is ignored otherwise), `sample` is [B, C, …].
    /// See [`StepOptions`] for the noise each kind needs.
    pub fn step(
        &self,
        model_output: &Tensor,
        t: usize,
        sample: &Tensor,
        opts: StepOptions,
    ) -> Result<StepOutput> {
        self.check_step_inputs(model_output, t, sample, opts.noise)?;
        match self.kind {
            SchedulerKind::Ddpm => ddpm::step(self, model_output, t, sample, opts.noise),
            SchedulerKind::Ddim => ddim::step(self, model_output, t, sample, opts),
        }
    }

    /// The forward process: √ᾱ_t·original + √(1 − ᾱ_t)·noise with one t per sample (dim 0), or
    /// one t for all. The coefficients are diffusers' float32 ones; different per-sample values
    /// travel to the GPU as a small [B, 1, …] tensor (an upload, no readback).
    pub fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timesteps: &[usize],
    ) -> Result<Tensor> {
        const OP: &str = "add_noise";
        let shape = original.shape();
        if noise.shape() != shape {
            return shape_err(
                OP,
                format!(
                    "noise {:?} must have the shape of the original {shape:?}",
                    noise.shape()
                ),
            );
        }
        let batch = shape.first().copied().unwrap_or(1);
        if timesteps.len() != 1 && (shape.is_empty() || timesteps.len() != batch) {
            return shape_err(
                OP,
                format!(
                    "{} timesteps for a batch of {batch} (shape {shape:?}): give one per sample \
                     or one for all",
                    timesteps.len()
                ),
            );
        }
        for &t in timesteps {
            self.check_t(OP, t)?;
        }
        let coef = |t: usize| (self.ac32[t].sqrt(), (1.0 - self.ac32[t]).sqrt());
        if timesteps.iter().all(|&t| t == timesteps[0]) {
            let (a, b) = coef(timesteps[0]);
            return original.mul_scalar(a)?.add(&noise.mul_scalar(b)?);
        }
        let mut cshape = vec![1; shape.len()];
        cshape[0] = batch;
        let (a, b): (Vec<f32>, Vec<f32>) = timesteps.iter().map(|&t| coef(t)).unzip();
        let a = Tensor::from_f32(original.gpu(), &cshape, &a)?;
        let b = Tensor::from_f32(original.gpu(), &cshape, &b)?;
        original.mul(&a)?.add(&noise.mul(&b)?)
    }

    pub(crate) fn check_t(&self, op: &'static str, t: usize) -> Result<()> {
        let total = self.config.num_train_timesteps;
        if t >= total {
            return invalid(
                op,
                format!(
                    "timestep {t} is not below num_train_timesteps ({total}); a \"leading\" \
                     schedule with steps_offset > 0 can produce it (diffusers fails there too)"
                ),
            );
        }
        Ok(())
    }

    fn check_step_inputs(
        &self,
        model_output: &Tensor,
        t: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<()> {
        const OP: &str = "scheduler step";
        self.check_t(OP, t)?;
        let s = sample.shape();
        let m = model_output.shape();
        if s.len() < 2 || s[0] == 0 || s[1] == 0 {
            return shape_err(OP, format!("sample must be [B, C, ...], got {s:?}"));
        }
        let same_but_channels = m.len() == s.len()
            && m[0] == s[0]
            && m[2..] == s[2..]
            && (m[1] == s[1] || m[1] == 2 * s[1]);
        if !same_but_channels {
            return shape_err(
                OP,
                format!("model_output {m:?} must match sample {s:?} with C or 2C channels (dim 1)"),
            );
        }
        if let Some(n) = noise {
            if n.shape() != s {
                return shape_err(
                    OP,
                    format!("noise {:?} must have the sample's shape {s:?}", n.shape()),
                );
            }
        }
        Ok(())
    }
}

/// An error unless every per-step coefficient is finite (diffusers would produce NaN or inf).
pub(crate) fn check_finite(t: usize, coefs: &[(&str, f32)]) -> Result<()> {
    if let Some((name, v)) = coefs.iter().find(|(_, v)| !v.is_finite()) {
        return invalid(
            "scheduler step",
            format!(
                "at timestep {t} the coefficient {name} is {v} (e.g. epsilon prediction where \
                 alphas_cumprod[t] = 0 under rescale_betas_zero_snr: use v_prediction)"
            ),
        );
    }
    Ok(())
}

/// x0 from the model output per prediction_type (before thresholding or clipping), as diffusers
/// computes it; a division by a coefficient is a multiplication by its f32 reciprocal (within an
/// ulp or so of torch's division, and the same on every GPU).
pub(crate) fn predict_x0(
    prediction_type: &str,
    model_output: &Tensor,
    sample: &Tensor,
    alpha_prod_t: f32,
    t: usize,
) -> Result<Tensor> {
    let beta_prod_t = 1.0 - alpha_prod_t;
    let (sa, sb) = (alpha_prod_t.sqrt(), beta_prod_t.sqrt());
    match prediction_type {
        "epsilon" => {
            let inv = 1.0 / sa;
            check_finite(t, &[("1/sqrt(alpha_prod_t)", inv)])?;
            sample.sub(&model_output.mul_scalar(sb)?)?.mul_scalar(inv)
        }
        "v_prediction" => sample.mul_scalar(sa)?.sub(&model_output.mul_scalar(sb)?),
        // "sample" (validate() admits nothing else).
        _ => model_output.to_f32(),
    }
}
