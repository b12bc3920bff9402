//! Inversion: finding the noise (and per-step state) from which a sampler regenerates a given
//! image. Written against the [`Denoiser`] trait, not a concrete network, so the algorithms are
//! testable with analytic denoisers and reusable for every stage of a cascade.
//!
//! - [`ddim`]: DDIM inversion (the image to x_T along the deterministic sampler's path) and DDIM
//!   reconstruction (x_T back to the image), with classifier-free guidance.
//! - [`iterinv`]: per-timestep inversion that makes the sampler's step land on the previous
//!   latent: IterInv's gradient descent (faithful and safe modes) and the forward-only fixed point.
//! - [`nti`]: null-text inversion (and the NPI recipe) for guided sampling.

pub mod ddim;
pub mod iterinv;
pub mod nti;

use crate::error::Result;
use crate::tensor::Tensor;

pub use iterinv::StepReport;

/// Called after each timestep of a long loop and, in the inner-loop methods (NTI, IterInv), after
/// each inner iteration; an error (e.g. [`crate::Error::Interrupted`]) stops the loop and is
/// returned by it. Each call is a point where a host may pause the work (see `iterinv::session`).
pub type Progress<'a> = &'a mut dyn FnMut(&Update) -> Result<()>;

/// What a long loop tells its [`Progress`]: the timestep's report (dereferences to it), whether
/// the call comes from inside the timestep's inner loop, and the loop's current estimate of the
/// clean sample, for a preview.
pub struct Update<'a> {
    /// At the end of a timestep, its report; within it, the iterations so far (`final_loss` is
    /// NaN where the loop has not read its loss back: reading it would stall the GPU queue).
    pub report: StepReport,
    /// `Some(k)` after the k-th inner iteration of the timestep (from 1); `None` at its end.
    pub inner: Option<usize>,
    /// x̂₀ as the loop's last scheduler step predicted it (thresholded as the scheduler does),
    /// where the loop has one at no extra cost; the same shape as the sample.
    pub estimate: Option<&'a Tensor>,
}

impl<'a> Update<'a> {
    /// The end of a timestep.
    pub fn step(report: StepReport, estimate: Option<&'a Tensor>) -> Update<'a> {
        Update {
            report,
            inner: None,
            estimate,
        }
    }
}

impl std::ops::Deref for Update<'_> {
    type Target = StepReport;
    fn deref(&self) -> &StepReport {
        &self.report
    }
}

/// A noise-prediction network seen by the algorithms: its raw output for `x_t` at timestep `t`
/// under a text `context` (`[B, L, D]`, one row per sample of `x_t`). The first `C` channels
/// (C = `x_t`'s) are the scheduler's prediction (ε, v or x₀); any further channels (IF's learned
/// variance) are passed on to the scheduler as they are.
pub trait Denoiser {
    fn predict(&self, x_t: &Tensor, t: usize, context: &Tensor) -> Result<Tensor>;
}

/// Text conditioning with classifier-free guidance: `uncond + w·(cond − uncond)` on the
/// prediction channels, the conditional pass's extra channels kept (IF's rule). Guidance ≤ 1 or
/// no `uncond` runs the conditional pass alone.
#[derive(Clone, Copy)]
pub struct Guidance<'a> {
    pub cond: &'a Tensor,
    pub uncond: Option<&'a Tensor>,
    pub scale: f32,
}

impl Guidance<'_> {
    /// The guided model output for `x_t` at `t`: one batched `[uncond; cond]` pass.
    pub fn predict(&self, denoiser: &dyn Denoiser, x_t: &Tensor, t: usize) -> Result<Tensor> {
        let uncond = match self.uncond {
            Some(u) if self.scale > 1.0 => u,
            _ => return denoiser.predict(x_t, t, self.cond),
        };
        let b = x_t.dim(0);
        let both = denoiser.predict(
            &Tensor::concat(&[x_t, x_t], 0)?,
            t,
            &Tensor::concat(&[uncond, self.cond], 0)?,
        )?;
        let halves = both.split(0, &[b, b])?;
        let (u, c) = (&halves[0], &halves[1]);
        let (channels, total) = (x_t.dim(1), both.dim(1));
        let (pu, pc) = (u.slice(1, 0, channels)?, c.slice(1, 0, channels)?);
        let guided = pu.add(&pc.sub(&pu)?.mul_scalar(self.scale)?)?;
        if total == channels {
            return Ok(guided);
        }
        Tensor::concat(&[&guided, &c.slice(1, channels, total)?], 1)
    }
}
