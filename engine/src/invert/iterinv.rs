//! Inverting a sampler step by step: at each timestep t (least noisy first), find z_t whose DDIM
//! step lands on the previous latent z_p (the image before the first step). Two solvers:
//!
//! - [`iterinv`]: IterInv (arXiv 2310.19540), gradient descent on z_t through the denoiser on
//!   `‖step(z_t) − z_p‖²`, warm-started from z_p. [`IterInvMode::Faithful`] is the reference
//!   code (fixed inner steps, step size 0.3·√linspace(1, 0.5, N)); its update has no convergence
//!   guarantee. [`IterInvMode::Safe`] reads the loss back after each update (one scalar) and
//!   halves the step and retries when the loss grew, and stops once it is below a tolerance.
//! - [`fixed_point`]: forward-only: solve the step equation for z_t with ε evaluated at the
//!   current estimate, and repeat (no backward pass).
//!
//! Both return the final latent and a per-timestep report.

use super::{Denoiser, Guidance, Progress, Update};
use crate::error::{invalid, Result};
use crate::grad::backward;
use crate::sched::{Scheduler, StepOptions};
use crate::tensor::Tensor;

/// The safe mode's step never grows beyond this multiple of the faithful step size.
const MAX_GROWTH: f64 = 16.0;
/// The fraction of the first-order decrease an update must achieve (Armijo's condition).
const ARMIJO: f64 = 0.5;

/// How one timestep's inner loop went.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub timestep: usize,
    /// Updates (IterInv) or passes (fixed point) made.
    pub iterations: usize,
    /// Sum of squared differences between the step from the found latent and its target.
    pub final_loss: f64,
}

#[derive(Clone, Copy, Debug)]
pub enum IterInvMode {
    /// The reference code: exactly `inner_steps` updates per timestep, no checks.
    Faithful,
    /// Backtracking line search: an update must lower the loss by half of what the gradient
    /// predicts (Armijo), else the step is halved (at most `max_halvings` times); a step
    /// accepted at once is doubled for the next update; the loop stops once the loss is below
    /// `tolerance` (raised, with f16 products, to u²·‖z_p‖², u = 2⁻¹¹: what operand rounding
    /// alone leaves), or when no halving is accepted (the loss no longer follows its gradient).
    /// Costs two scalar readbacks and an extra forward pass per update.
    Safe { tolerance: f64, max_halvings: usize },
}

#[derive(Clone, Copy, Debug)]
pub struct IterInvOptions {
    /// Gradient steps per timestep (the reference: 21).
    pub inner_steps: usize,
    /// The step size at the first (least noisy) timestep; it decays to 1/√2 of it at the last
    /// (the reference: 0.3).
    pub step_size: f64,
    pub mode: IterInvMode,
    /// Forward-only fixed-point passes that seed each timestep before the gradient steps (0: start
    /// from the previous latent, as the reference does). In the safe mode the seed is kept only
    /// if its loss is lower than the previous latent's, so a fixed point that does not converge
    /// costs time, never quality.
    pub warm_start: usize,
}

impl Default for IterInvOptions {
    fn default() -> Self {
        IterInvOptions {
            inner_steps: 21,
            step_size: 0.3,
            mode: IterInvMode::Safe {
                tolerance: 1e-8,
                max_halvings: 8,
            },
            warm_start: 0,
        }
    }
}

/// The reference's step sizes: `base·√linspace(1, 0.5, n)`.
pub fn step_sizes(base: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let f = if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.0
            };
            base * (1.0 - 0.5 * f).sqrt()
        })
        .collect()
}

/// `sum((step(z, t) − target)²)` as a tracked scalar (z tracked), and the step's x̂₀.
fn step_loss(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    guidance: Guidance,
    z: &Tensor,
    t: usize,
    target: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let out = guidance.predict(denoiser, z, t)?;
    let step = scheduler.step(&out, t, z, StepOptions::default())?;
    let d = step.prev_sample.sub(target)?;
    let all: Vec<usize> = (0..d.rank()).collect();
    Ok((d.square()?.sum(&all, false)?, step.pred_original_sample))
}

/// A loss read back, and the x̂₀ of the step it measured.
struct Measured {
    loss: f64,
    x0: Tensor,
}

/// After the `iterations`-th update at timestep `t` (`loss`: NaN where not read back).
fn inner_update(t: usize, iterations: usize, loss: f64) -> Update<'static> {
    Update {
        report: StepReport {
            timestep: t,
            iterations,
            final_loss: loss,
        },
        inner: Some(iterations),
        estimate: None,
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_vec()?[0] as f64)
}

/// IterInv from `z0` (the clean image or latent) to the latent at the schedule's first timestep.
pub fn iterinv(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    z0: &Tensor,
    guidance: Guidance,
    opts: IterInvOptions,
    progress: Progress,
) -> Result<(Tensor, Vec<StepReport>)> {
    let timesteps: Vec<usize> = scheduler.timesteps().iter().rev().copied().collect();
    if timesteps.is_empty() {
        return invalid(
            "IterInv",
            "the scheduler has no timesteps: call set_timesteps first",
        );
    }
    let sizes = step_sizes(opts.step_size, timesteps.len());
    let mut target = z0.detach();
    let mut reports = Vec::with_capacity(timesteps.len());
    let (tolerance, max_halvings) = match opts.mode {
        IterInvMode::Safe {
            tolerance,
            max_halvings,
        } => (Some(tolerance), max_halvings),
        IterInvMode::Faithful => (None, 0),
    };
    // The loss read back, and the x̂₀ of the step it measured (the timestep's estimate).
    let no_grad_loss = |z: &Tensor, t: usize, target: &Tensor| {
        let (loss, x0) =
            crate::grad::no_grad(|| step_loss(denoiser, scheduler, guidance, z, t, target))?;
        Ok::<_, crate::Error>(Measured {
            loss: scalar(&loss)?,
            x0,
        })
    };
    // The unit roundoff of the matrix products' operands: the step error that rounding alone
    // leaves is about u²·‖z_p‖², and a tolerance below it cannot be met (at f16 it would run
    // every timestep to its inner-step cap for nothing).
    let unit_roundoff = match z0.gpu().precision() {
        crate::Precision::F32 => f64::from(f32::EPSILON) / 2.0,
        crate::Precision::F16 => 2f64.powi(-11),
    };
    for (i, &t) in timesteps.iter().enumerate() {
        let mut z = target.clone();
        let tolerance = match tolerance {
            Some(tol) if unit_roundoff > 1e-5 => {
                let all: Vec<usize> = (0..target.rank()).collect();
                let norm2 = scalar(&target.square()?.sum(&all, false)?)?;
                Some(tol.max(unit_roundoff * unit_roundoff * norm2))
            }
            tol => tol,
        };
        // The loss at z when known (safe mode), so that no forward pass is spent twice on it,
        // and the x̂₀ of z's step when known (the timestep's estimate).
        let mut z_loss = None;
        let mut estimate = None;
        if opts.warm_start > 0 {
            let mut seed = solve_step(denoiser, scheduler, guidance, &target, t, opts.warm_start)?;
            match tolerance {
                None => z = seed,
                Some(tol) => {
                    let seeded = no_grad_loss(&seed, t, &target)?;
                    let kept = if seeded.loss < tol {
                        seeded
                    } else {
                        let start = no_grad_loss(&target, t, &target)?;
                        if seeded.loss < start.loss {
                            seeded
                        } else {
                            seed = target.clone();
                            start
                        }
                    };
                    (z, z_loss, estimate) = (seed, Some(kept.loss), Some(kept.x0));
                }
            }
        }
        let mut lr = sizes[i];
        let mut iterations = 0;
        for _ in 0..opts.inner_steps {
            if let (Some(tol), Some(l)) = (tolerance, z_loss) {
                if l < tol {
                    break;
                }
            }
            let zt = z.requires_grad();
            let (loss, x0) = step_loss(denoiser, scheduler, guidance, &zt, t, &target)?;
            let Some(tol) = tolerance else {
                let g = backward(&loss, &[&zt])?.remove(0);
                iterations += 1;
                z = z.sub(&g.mul_scalar(lr as f32)?)?;
                progress(&inner_update(t, iterations, f64::NAN))?;
                continue;
            };
            let loss_value = match z_loss {
                Some(l) => l,
                None => {
                    estimate = Some(x0.detach());
                    scalar(&loss)?
                }
            };
            if loss_value < tol {
                z_loss = Some(loss_value);
                break;
            }
            let g = backward(&loss, &[&zt])?.remove(0);
            iterations += 1;
            // Armijo backtracking: accept the update only if it lowers the loss by at least
            // half of what the gradient promises (a bare decrease lets a step that overshoots
            // to the other side of the minimum be accepted forever); else halve. A step
            // accepted at once is doubled for the next update (up to MAX_GROWTH × the base), so
            // one steep region does not leave the rest of the loop crawling.
            let all: Vec<usize> = (0..g.rank()).collect();
            let g2 = scalar(&g.square()?.sum(&all, false)?)?;
            let mut accepted = None;
            for halving in 0..=max_halvings {
                let candidate = z.sub(&g.mul_scalar(lr as f32)?)?;
                let m = no_grad_loss(&candidate, t, &target)?;
                if m.loss <= loss_value - ARMIJO * lr * g2 {
                    accepted = Some((halving, candidate, m));
                    break;
                }
                if halving < max_halvings {
                    lr *= 0.5;
                }
            }
            match accepted {
                Some((halving, candidate, m)) => {
                    if halving == 0 {
                        lr = (lr * 2.0).min(MAX_GROWTH * sizes[i]);
                    }
                    (z, z_loss, estimate) = (candidate, Some(m.loss), Some(m.x0));
                }
                // No step size down to 2^-max_halvings of this one lowers the loss as its
                // gradient says: the loss has reached the noise floor of the arithmetic (f16
                // products leave a step error near 1e-6 per element; f32 right at the solution).
                // z is unchanged, so another update would take the same gradient: the timestep
                // is done.
                None => {
                    z_loss = Some(loss_value);
                    progress(&inner_update(t, iterations, loss_value))?;
                    break;
                }
            }
            progress(&inner_update(t, iterations, z_loss.unwrap_or(f64::NAN)))?;
        }
        let (final_loss, estimate) = match (z_loss, estimate) {
            (Some(l), Some(x0)) => (l, x0),
            _ => {
                let m = no_grad_loss(&z, t, &target)?;
                (m.loss, m.x0)
            }
        };
        let report = StepReport {
            timestep: t,
            iterations,
            final_loss,
        };
        progress(&Update::step(report.clone(), Some(&estimate)))?;
        reports.push(report);
        target = z;
    }
    Ok((target, reports))
}

/// Forward-only inversion: at each timestep, `passes` rounds of solving the DDIM step (no
/// thresholding) for z_t with the model output evaluated at the current estimate. With epsilon
/// prediction that is `z_t ← √ᾱ_t·(z_p − √(1−ᾱ_p)·ε)/√ᾱ_p + √(1−ᾱ_t)·ε`; with v or x₀
/// prediction the step is `z_p = a·z_t + b·m` in the output m, solved as `z_t ← (z_p − b·m)/a`.
/// The first round, from z_t = z_p, is plain DDIM inversion.
pub fn fixed_point(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    z0: &Tensor,
    guidance: Guidance,
    passes: usize,
    progress: Progress,
) -> Result<(Tensor, Vec<StepReport>)> {
    let mut target = z0.detach();
    let mut reports = Vec::new();
    for &t in scheduler.timesteps().iter().rev() {
        let z = solve_step(denoiser, scheduler, guidance, &target, t, passes)?;
        let (loss, x0) =
            crate::grad::no_grad(|| step_loss(denoiser, scheduler, guidance, &z, t, &target))?;
        let report = StepReport {
            timestep: t,
            iterations: passes,
            final_loss: scalar(&loss)?,
        };
        progress(&Update::step(report.clone(), Some(&x0)))?;
        reports.push(report);
        target = z;
    }
    Ok((target, reports))
}

/// `passes` fixed-point rounds for the latent at `t` whose DDIM step lands on `target`.
fn solve_step(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    guidance: Guidance,
    target: &Tensor,
    t: usize,
    passes: usize,
) -> Result<Tensor> {
    if passes == 0 {
        return invalid(
            "fixed-point inversion",
            "needs at least 1 pass per timestep",
        );
    }
    let ac = scheduler.alphas_cumprod();
    let ap = match scheduler.try_previous_timestep(t)? {
        Some(p) => ac[p],
        None => scheduler.final_alpha_cumprod(),
    };
    let at = ac[t];
    let (sap, sbp) = ((ap as f32).sqrt(), ((1.0 - ap) as f32).sqrt());
    let (sat, sbt) = ((at as f32).sqrt(), ((1.0 - at) as f32).sqrt());
    let channels = target.dim(1);
    let prediction = scheduler.config().prediction_type.as_str();
    // z_p = a·z_t + b·m for the model output m (epsilon keeps the reference's own formula below).
    let (a, b) = match prediction {
        "epsilon" => (sap / sat, sbp - sap * sbt / sat),
        "v_prediction" => (sap * sat + sbp * sbt, sbp * sat - sap * sbt),
        "sample" => (sbp / sbt, sap - sbp * sat / sbt),
        other => {
            return invalid(
                "fixed-point inversion",
                format!("prediction type {other:?} is not supported"),
            )
        }
    };
    if !(a.is_finite() && b.is_finite() && a != 0.0) {
        return invalid(
            "fixed-point inversion",
            format!("the step at timestep {t} cannot be solved for its input (ᾱ_t = {at})"),
        );
    }
    let mut z = target.clone();
    for _ in 0..passes {
        let m = guidance.predict(denoiser, &z, t)?.slice(1, 0, channels)?;
        z = if prediction == "epsilon" {
            let x0 = target.sub(&m.mul_scalar(sbp)?)?.div_scalar(sap)?;
            x0.mul_scalar(sat)?.add(&m.mul_scalar(sbt)?)?
        } else {
            target.sub(&m.mul_scalar(b)?)?.div_scalar(a)?
        };
    }
    Ok(z)
}
