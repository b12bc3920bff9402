//! Null-text inversion (NTI, Mokady et al.), as the IterInv reference code runs it at IF's stage
//! I: after a guidance-1 DDIM inversion, walk the schedule from x_T down; at each step optimize
//! the unconditional ("null") text embedding with Adam so that the guided DDIM step from the
//! current x lands on the inversion's trace, then take that step. The per-step embeddings and
//! x_T regenerate the image with guidance (see [`reconstruct`]).
//!
//! Negative-prompt inversion (NPI) needs no optimization: use the conditional embedding as the
//! null one, `Guidance { uncond: Some(cond), .. }`, which makes the guided prediction the
//! conditional one the inversion used.

use super::iterinv::StepReport;
use super::{Denoiser, Guidance, Progress, Update};
use crate::error::{invalid, Result};
use crate::grad::{backward, no_grad};
use crate::optim::Adam;
use crate::sched::{Scheduler, StepOptions, StepOutput};
use crate::tensor::Tensor;

/// How the inner loss is reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
}

#[derive(Clone, Copy, Debug)]
pub struct NtiOptions {
    /// Adam steps per timestep (IF reference: 51; prompt-to-prompt: 10).
    pub inner_steps: usize,
    /// Learning rate at step i: `lr·(1 − i/100)` (IF reference: 1e-3; prompt-to-prompt: 1e-2).
    pub lr: f64,
    pub guidance: f32,
    pub loss: Reduction,
    /// Prompt-to-prompt's early stop: leave the inner loop once the loss is below
    /// `base + i·slope` (1e-5, 2e-5); None (the IF reference) never stops early.
    pub early_stop: Option<(f64, f64)>,
    /// Untie the null embedding's tokens before optimizing them: `Some(r)` adds seeded Gaussian
    /// noise of `r` times the embedding's RMS; None optimizes it as given (the reference loop).
    /// An empty prompt's embedding has many identical rows (its padding tokens), and the loop's
    /// gradient is the same for identical rows (cross-attention does not tell keys apart by
    /// position), so in exact arithmetic they stay tied through the whole inversion: the
    /// optimization then has one row where it could have dozens. PyTorch's float32 CPU kernels
    /// untie them by rounding accident, and lower the loss that way (issue 17, BENCHMARKS.md).
    pub untie: Option<f32>,
}

impl Default for NtiOptions {
    /// The IterInv reference at IF's stage I.
    fn default() -> Self {
        NtiOptions {
            inner_steps: 51,
            lr: 1e-3,
            guidance: 3.0,
            loss: Reduction::Sum,
            early_stop: None,
            untie: None,
        }
    }
}

/// The seed of [`NtiOptions::untie`]'s noise.
const UNTIE_SEED: u64 = 0x004e_5449_2074_6965;

/// `null` with its rows untied: plus `r`·RMS(null) of seeded Gaussian noise (one scalar read
/// back, once per inversion).
fn untied(null: &Tensor, r: f32) -> Result<Tensor> {
    let all: Vec<usize> = (0..null.rank()).collect();
    let rms = null.square()?.mean(&all, false)?.to_vec()?[0].sqrt();
    let noise = Tensor::randn(null.gpu(), null.shape(), UNTIE_SEED, 0)?;
    null.add(&noise.mul_scalar(r * rms)?)
}

/// The per-step null embeddings (one per timestep, in sampling order) and a report per step.
/// `trace` is [`super::ddim::invert`]'s output for the same scheduler (guidance 1).
pub fn null_text_inversion(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    trace: &[Tensor],
    cond: &Tensor,
    null_init: &Tensor,
    opts: NtiOptions,
    progress: Progress,
) -> Result<(Vec<Tensor>, Vec<StepReport>)> {
    let timesteps = scheduler.timesteps();
    if trace.len() != timesteps.len() + 1 {
        return invalid(
            "null-text inversion",
            format!(
                "the trace has {} entries; the scheduler's {} timesteps need {}",
                trace.len(),
                timesteps.len(),
                timesteps.len() + 1
            ),
        );
    }
    // Updated in place by Adam: never the caller's tensor.
    let null = match opts.untie {
        Some(r) => untied(&null_init.detach(), r)?,
        None => null_init.detach().mul_scalar(1.0)?,
    };
    let mut x = trace[trace.len() - 1].clone();
    let mut nulls = Vec::with_capacity(timesteps.len());
    let mut reports = Vec::with_capacity(timesteps.len());
    for (i, &t) in timesteps.iter().enumerate() {
        let target = &trace[trace.len() - 2 - i];
        let (next, report) = nti_timestep(
            denoiser,
            scheduler,
            i,
            t,
            &x,
            target,
            cond,
            &null,
            opts,
            &mut *progress,
        )?;
        reports.push(report);
        nulls.push(null.mul_scalar(1.0)?);
        x = next;
    }
    Ok((nulls, reports))
}

/// One timestep of [`null_text_inversion`]: the `i`-th in sampling order, at `t`, from `x` towards
/// `target`. Optimizes `null` in place (a fresh Adam, lr `opts.lr·(1 − i/100)`), then takes the
/// guided step with it; returns the step's result and its report. `progress` hears of each Adam
/// step and of the timestep's end (with the guided step's x̂₀).
#[allow(clippy::too_many_arguments)]
pub fn nti_timestep(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    i: usize,
    t: usize,
    x: &Tensor,
    target: &Tensor,
    cond: &Tensor,
    null: &Tensor,
    opts: NtiOptions,
    progress: Progress,
) -> Result<(Tensor, StepReport)> {
    let lr = opts.lr * (1.0 - i as f64 / 100.0);
    let mut adam = Adam::new(&[null])?;
    let mut iterations = 0;
    let mut last_loss = f64::NAN;
    for _ in 0..opts.inner_steps {
        let uncond = null.requires_grad();
        let guidance = Guidance {
            cond,
            uncond: Some(&uncond),
            scale: opts.guidance,
        };
        let loss = step_loss(denoiser, scheduler, guidance, x, t, target, opts.loss)?;
        if let Some((base, slope)) = opts.early_stop {
            last_loss = loss.to_vec()?[0] as f64;
            if last_loss < base + i as f64 * slope {
                break;
            }
        }
        let g = backward(&loss, &[&uncond])?;
        adam.step(&[null], &g, lr.max(0.0))?;
        iterations += 1;
        progress(&Update {
            report: StepReport {
                timestep: t,
                iterations,
                final_loss: last_loss,
            },
            inner: Some(iterations),
            estimate: None,
        })?;
    }
    let guidance = Guidance {
        cond,
        uncond: Some(null),
        scale: opts.guidance,
    };
    let (step, loss) = no_grad(|| -> Result<(StepOutput, Tensor)> {
        let out = guidance.predict(denoiser, x, t)?;
        let step = scheduler.step(&out, t, x, StepOptions::default())?;
        let loss = reduce(&step.prev_sample.sub(target)?.square()?, opts.loss)?;
        Ok((step, loss))
    })?;
    if opts.early_stop.is_none() {
        last_loss = loss.to_vec()?[0] as f64;
    }
    let report = StepReport {
        timestep: t,
        iterations,
        final_loss: last_loss,
    };
    progress(&Update::step(
        report.clone(),
        Some(&step.pred_original_sample),
    ))?;
    Ok((step.prev_sample, report))
}

fn reduce(x: &Tensor, how: Reduction) -> Result<Tensor> {
    let all: Vec<usize> = (0..x.rank()).collect();
    match how {
        Reduction::Sum => x.sum(&all, false),
        Reduction::Mean => x.mean(&all, false),
    }
}

fn step_loss(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    guidance: Guidance,
    x: &Tensor,
    t: usize,
    target: &Tensor,
    how: Reduction,
) -> Result<Tensor> {
    let out = guidance.predict(denoiser, x, t)?;
    let prev = scheduler
        .step(&out, t, x, StepOptions::default())?
        .prev_sample;
    reduce(&prev.sub(target)?.square()?, how)
}

/// Guided DDIM sampling from `x_t` with a null embedding per step (NTI's output).
pub fn reconstruct(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: &Tensor,
    cond: &Tensor,
    nulls: &[Tensor],
    guidance: f32,
) -> Result<Tensor> {
    reconstruct_with(denoiser, scheduler, x_t, cond, nulls, guidance, &mut |_| {
        Ok(())
    })
}

/// [`reconstruct`], telling `progress` after each timestep (its estimate: the step's x̂₀).
pub fn reconstruct_with(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: &Tensor,
    cond: &Tensor,
    nulls: &[Tensor],
    guidance: f32,
    progress: Progress,
) -> Result<Tensor> {
    if nulls.len() != scheduler.timesteps().len() {
        return invalid(
            "null-text reconstruction",
            format!(
                "{} null embeddings for {} timesteps",
                nulls.len(),
                scheduler.timesteps().len()
            ),
        );
    }
    let mut x = x_t.clone();
    for (&t, null) in scheduler.timesteps().iter().zip(nulls) {
        let g = Guidance {
            cond,
            uncond: Some(null),
            scale: guidance,
        };
        let out = g.predict(denoiser, &x, t)?;
        let step = scheduler.step(&out, t, &x, StepOptions::default())?;
        x = step.prev_sample;
        progress(&Update::step(
            super::ddim::pass_report(t),
            Some(&step.pred_original_sample),
        ))?;
    }
    Ok(x)
}
