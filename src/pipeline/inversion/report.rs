//! A stage's entry in `report.json`: how close the reconstruction is to the input, what it cost,
//! and how each timestep's inner loop ended.

use iterinv_engine::invert::StepReport;
use iterinv_models::Result;
use serde::Serialize;

use crate::metrics;
use crate::Tensor;

#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    pub method: String,
    /// Against the input resized to the stage's resolution, on the reconstruction clamped to
    /// [−1, 1] (what the PNG shows, before 8-bit rounding); data range 2. None: identical.
    pub psnr: Option<f64>,
    pub ssim: Option<f64>,
    pub mse: f64,
    /// Wall time of the inversion (not of model loading or the reconstruction).
    pub seconds: f64,
    /// Inner iterations of all timesteps together (NTI's Adam steps, IterInv's gradient steps,
    /// fixed-point passes); 0 for the methods without an inner loop.
    pub iterations: usize,
    /// Per timestep, least noisy first for the super-resolution stage and in sampling order for
    /// NTI (as the methods walk them).
    pub timesteps: Vec<usize>,
    pub iterations_per_step: Vec<usize>,
    /// Sum of squared differences between each step's result and its target, after the step's
    /// inner loop (NTI-p2p: mean).
    pub final_losses: Vec<f64>,
    /// The latent stage: PSNR of the regenerated latent against the image's (data range 2),
    /// and the VAE round trip's PSNR in pixels — the most any latent inversion can reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latent_psnr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_psnr: Option<f64>,
}

impl StageReport {
    pub fn new(
        name: &str,
        method: &str,
        input: &Tensor,
        reconstruction: &Tensor,
        seconds: f64,
        steps: &[StepReport],
    ) -> Result<StageReport> {
        let a = input.to_vec()?;
        let b: Vec<f32> = reconstruction
            .to_vec()?
            .into_iter()
            .map(|v| v.clamp(-1.0, 1.0))
            .collect();
        let (c, h, w) = (input.dim(1), input.dim(2), input.dim(3));
        let psnr = metrics::psnr(&a, &b);
        Ok(StageReport {
            name: name.into(),
            method: method.into(),
            psnr: psnr.is_finite().then_some(psnr),
            ssim: metrics::ssim(&a, &b, c, h, w),
            mse: metrics::mse(&a, &b),
            seconds,
            iterations: steps.iter().map(|s| s.iterations).sum(),
            timesteps: steps.iter().map(|s| s.timestep).collect(),
            iterations_per_step: steps.iter().map(|s| s.iterations).collect(),
            final_losses: steps.iter().map(|s| s.final_loss).collect(),
            latent_psnr: None,
            round_trip_psnr: None,
        })
    }

    /// A latent stage's two extra measures: the regenerated latent against the image's, and the
    /// VAE round trip against the input (clamped as the reconstruction is).
    pub fn with_latent(
        mut self,
        latent: &Tensor,
        regenerated: &Tensor,
        input: &Tensor,
        round_trip: &Tensor,
    ) -> Result<StageReport> {
        let finite = |p: f64| p.is_finite().then_some(p);
        self.latent_psnr = finite(metrics::psnr(&latent.to_vec()?, &regenerated.to_vec()?));
        let rt: Vec<f32> = round_trip
            .to_vec()?
            .into_iter()
            .map(|v| v.clamp(-1.0, 1.0))
            .collect();
        self.round_trip_psnr = finite(metrics::psnr(&input.to_vec()?, &rt));
        Ok(self)
    }
}
