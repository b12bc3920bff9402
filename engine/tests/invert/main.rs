//! DDIM inversion and reconstruction on analytic denoisers, against CPU f64 references.
//!
//! - A denoiser whose prediction ignores x (a fixed tensor per timestep): inversion and the
//!   DDIM step are then exact inverses, so reconstruction returns the image (up to f32 rounding).
//! - The exact denoiser of unit-Gaussian data (ε = √(1 − ᾱ_t)·x, v = 0): every step is a
//!   known scalar multiple, so inversion then reconstruction maps x to k·x with k computed here
//!   in f64; its distance from 1 is DDIM's discretization error, which must shrink with more
//!   steps.

mod noise_floor;
mod nti;

use std::sync::OnceLock;

use iterinv_engine::invert::{ddim, Denoiser, Guidance};
use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind};
use iterinv_engine::{Gpu, GpuOptions, Result, Tensor};

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            ..Default::default()
        })
        .expect("a GPU adapter (lavapipe in CI)")
    })
}

/// IF's cosine schedule without thresholding or clipping (inversion applies neither).
fn scheduler(steps: usize, prediction: &str) -> Scheduler {
    let config = SchedulerConfig {
        beta_schedule: "squaredcos_cap_v2".into(),
        prediction_type: prediction.into(),
        clip_sample: false,
        thresholding: false,
        ..Default::default()
    };
    let mut s = Scheduler::new(SchedulerKind::Ddim, config).unwrap();
    s.set_timesteps(steps).unwrap();
    s
}

/// ε(x, t) = a fixed random tensor per timestep, whatever x (and whatever the text).
struct IgnoresX;

impl Denoiser for IgnoresX {
    fn predict(&self, x_t: &Tensor, t: usize, _context: &Tensor) -> Result<Tensor> {
        Tensor::randn(x_t.gpu(), x_t.shape(), 11, t as u32)
    }
}

/// The exact denoiser of x₀ ~ N(0, I): E[ε | x_t] = √(1 − ᾱ_t)·x_t, and v = 0.
struct UnitGaussian {
    alphas: Vec<f64>,
    v_prediction: bool,
}

impl Denoiser for UnitGaussian {
    fn predict(&self, x_t: &Tensor, t: usize, _context: &Tensor) -> Result<Tensor> {
        if self.v_prediction {
            Tensor::zeros(x_t.gpu(), x_t.shape())
        } else {
            x_t.mul_scalar((1.0 - self.alphas[t]).sqrt() as f32)
        }
    }
}

impl UnitGaussian {
    fn new(s: &Scheduler, v_prediction: bool) -> UnitGaussian {
        UnitGaussian {
            alphas: s.alphas_cumprod().to_vec(),
            v_prediction,
        }
    }
}

/// The conditional prediction alone (guidance 1).
fn unguided(ctx: &Tensor) -> Guidance<'_> {
    Guidance {
        cond: ctx,
        uncond: None,
        scale: 1.0,
    }
}

fn image() -> Tensor {
    Tensor::randn(gpu(), &[2, 3, 8, 8], 5, 0).unwrap()
}

fn context() -> Tensor {
    Tensor::zeros(gpu(), &[2, 4, 8]).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn inversion_is_exact_when_the_prediction_ignores_x() {
    let (x0, ctx) = (image(), context());
    for prediction in ["epsilon", "sample"] {
        let s = Scheduler::new(
            SchedulerKind::Ddim,
            SchedulerConfig {
                beta_schedule: "squaredcos_cap_v2".into(),
                prediction_type: prediction.into(),
                clip_sample: false,
                set_alpha_to_one: false,
                ..Default::default()
            },
        );
        let mut s = s.unwrap();
        s.set_timesteps(20).unwrap();
        let g = unguided(&ctx);
        let trace = ddim::invert(&IgnoresX, &s, &x0, g).unwrap();
        assert_eq!(trace.len(), 21);
        let back = ddim::reconstruct(&IgnoresX, &s, trace.last().unwrap(), g).unwrap();
        let err = max_diff(&back.to_vec().unwrap(), &x0.to_vec().unwrap());
        eprintln!("{prediction}: reconstruction error {err:.2e}");
        assert!(err < 1e-4, "{prediction}: {err}");
    }
}

/// k for one inversion + reconstruction of the unit-Gaussian denoiser, in f64 (per element the
/// whole loop is multiplication by scalars).
fn gaussian_gain(s: &Scheduler, v_prediction: bool) -> f64 {
    let ac = s.alphas_cumprod();
    let prev = |t: usize| {
        s.previous_timestep(t)
            .map_or(s.final_alpha_cumprod(), |p| ac[p])
    };
    let mut k = 1.0f64;
    // Up: at t from p, x̂₀ and ε̂ use ᾱ_p; x ← √ᾱ_t x̂₀ + √(1−ᾱ_t) ε̂.
    for &t in s.timesteps().iter().rev() {
        let (ap, at) = (prev(t), ac[t]);
        let (x0, eps) = if v_prediction {
            (ap.sqrt(), (1.0 - ap).sqrt())
        } else {
            let e = (1.0 - at).sqrt();
            ((1.0 - (1.0 - ap).sqrt() * e) / ap.sqrt(), e)
        };
        k *= at.sqrt() * x0 + (1.0 - at).sqrt() * eps;
    }
    // Down: DDIM's step from t to p (eta 0).
    for &t in s.timesteps() {
        let (at, ap) = (ac[t], prev(t));
        let (x0, eps) = if v_prediction {
            (at.sqrt(), (1.0 - at).sqrt())
        } else {
            let e = (1.0 - at).sqrt();
            ((1.0 - (1.0 - at).sqrt() * e) / at.sqrt(), e)
        };
        k *= ap.sqrt() * x0 + (1.0 - ap).sqrt() * eps;
    }
    k
}

#[test]
fn gaussian_inversion_matches_the_f64_recurrence_and_improves_with_steps() {
    let (x0, ctx) = (image(), context());
    let input = x0.to_vec().unwrap();
    for (prediction, v) in [("epsilon", false), ("v_prediction", true)] {
        let mut gaps = Vec::new();
        for steps in [10, 50] {
            let s = scheduler(steps, prediction);
            let d = UnitGaussian::new(&s, v);
            let g = unguided(&ctx);
            let trace = ddim::invert(&d, &s, &x0, g).unwrap();
            let back = ddim::reconstruct(&d, &s, trace.last().unwrap(), g).unwrap();
            let k = gaussian_gain(&s, v);
            let want: Vec<f32> = input.iter().map(|&x| (x as f64 * k) as f32).collect();
            let got = back.to_vec().unwrap();
            let err = max_diff(&got, &want);
            eprintln!("{prediction}, {steps} steps: gain {k:.6}, error {err:.2e}");
            assert!(err < 1e-4, "{prediction}, {steps} steps: {err}");
            gaps.push((1.0 - k).abs());
        }
        assert!(
            gaps[1] < gaps[0],
            "{prediction}: more steps must invert better: {gaps:?}"
        );
    }
}

/// Guidance mixes the two passes on the prediction channels and keeps the conditional pass's
/// extra channels: checked on a denoiser whose output encodes its text.
#[test]
fn guidance_combines_the_passes_as_if_does() {
    struct TextEcho;
    impl Denoiser for TextEcho {
        // Channels 0..C: the mean of the text row; C..2C: 10 × that mean.
        fn predict(&self, x_t: &Tensor, _t: usize, context: &Tensor) -> Result<Tensor> {
            let [b, c, h, w] = [x_t.dim(0), x_t.dim(1), x_t.dim(2), x_t.dim(3)];
            let m = context.mean(&[1, 2], false)?.reshape(&[b, 1, 1, 1])?;
            let ones = Tensor::full(x_t.gpu(), &[b, c, h, w], 1.0)?;
            let eps = ones.mul(&m)?;
            Tensor::concat(&[&eps, &eps.mul_scalar(10.0)?], 1)
        }
    }
    let gpu = gpu();
    let x = Tensor::zeros(gpu, &[1, 3, 2, 2]).unwrap();
    let cond = Tensor::full(gpu, &[1, 4, 8], 2.0).unwrap();
    let uncond = Tensor::full(gpu, &[1, 4, 8], 0.5).unwrap();
    let g = Guidance {
        cond: &cond,
        uncond: Some(&uncond),
        scale: 3.0,
    };
    let out = g.predict(&TextEcho, &x, 7).unwrap().to_vec().unwrap();
    // ε: 0.5 + 3·(2 − 0.5) = 5; the extra channels: the conditional 10·2 = 20.
    assert!(out[..12].iter().all(|&v| (v - 5.0).abs() < 1e-6), "{out:?}");
    assert!(
        out[12..].iter().all(|&v| (v - 20.0).abs() < 1e-6),
        "{out:?}"
    );
    let alone = Guidance { scale: 1.0, ..g }
        .predict(&TextEcho, &x, 7)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(
        alone[..12].iter().all(|&v| (v - 2.0).abs() < 1e-6),
        "guidance 1: conditional only"
    );
}

/// Reconstruction error (max |·|) after inverting with `invert` on the unit-Gaussian denoiser
/// at 10 steps, where plain DDIM inversion is 2 % off.
fn gaussian_roundtrip(
    invert: impl FnOnce(&UnitGaussian, &Scheduler, &Tensor, Guidance) -> Tensor,
) -> f32 {
    let (x0, ctx) = (image(), context());
    let s = scheduler(10, "epsilon");
    let d = UnitGaussian::new(&s, false);
    let g = unguided(&ctx);
    let z_t = invert(&d, &s, &x0, g);
    let back = ddim::reconstruct(&d, &s, &z_t, g).unwrap();
    max_diff(&back.to_vec().unwrap(), &x0.to_vec().unwrap())
}

#[test]
fn iterinv_and_the_fixed_point_invert_the_gaussian_sampler_exactly() {
    use iterinv_engine::invert::iterinv::{fixed_point, iterinv, IterInvMode, IterInvOptions};
    let ddim_err =
        gaussian_roundtrip(|d, s, x, g| ddim::invert(d, s, x, g).unwrap().pop().unwrap());
    let fixed_err =
        gaussian_roundtrip(|d, s, x, g| fixed_point(d, s, x, g, 10, &mut |_| Ok(())).unwrap().0);
    let faithful = IterInvOptions {
        mode: IterInvMode::Faithful,
        ..Default::default()
    };
    let mut reports = Vec::new();
    let mut inner_updates = Vec::new();
    let faithful_err = gaussian_roundtrip(|d, s, x, g| {
        iterinv(d, s, x, g, faithful, &mut |u| {
            match u.inner {
                Some(k) => inner_updates.push((u.timestep, k)),
                None => {
                    let estimate = u.estimate.expect("a timestep's end carries its x̂₀");
                    assert_eq!(estimate.shape(), x.shape());
                    assert!(estimate.to_vec().unwrap().iter().all(|v| v.is_finite()));
                    reports.push(u.report.clone());
                }
            }
            Ok(())
        })
        .unwrap()
        .0
    });
    let safe_err = gaussian_roundtrip(|d, s, x, g| {
        iterinv(d, s, x, g, IterInvOptions::default(), &mut |_| Ok(()))
            .unwrap()
            .0
    });
    eprintln!("max error: DDIM {ddim_err:.2e}, fixed point {fixed_err:.2e}, IterInv faithful {faithful_err:.2e}, safe {safe_err:.2e}");
    assert!(
        ddim_err > 1e-2,
        "the test needs DDIM inversion to be visibly inexact"
    );
    for (name, err) in [
        ("fixed point", fixed_err),
        ("faithful", faithful_err),
        ("safe", safe_err),
    ] {
        assert!(err < 1e-4, "{name}: {err}");
    }
    assert_eq!(reports.len(), 10);
    assert!(
        reports
            .iter()
            .all(|r| r.iterations == 21 && r.final_loss < 1e-6),
        "{reports:?}"
    );
    // Each update was reported as it happened, numbered within its timestep, before the
    // timestep's end.
    let expected: Vec<(usize, usize)> = reports
        .iter()
        .flat_map(|r| (1..=21).map(move |k| (r.timestep, k)))
        .collect();
    assert_eq!(inner_updates, expected);
}

/// The exact v-prediction denoiser of x₀ ~ N(0, σ²·I): with s = ᾱσ² + 1 − ᾱ,
/// E[v | x_t] = √ᾱ·√(1 − ᾱ)·(1 − σ²)/s · x_t (non-zero for σ ≠ 1, so the output depends on x_t).
struct NarrowGaussianV {
    alphas: Vec<f64>,
    sigma2: f64,
}

impl Denoiser for NarrowGaussianV {
    fn predict(&self, x_t: &Tensor, t: usize, _context: &Tensor) -> Result<Tensor> {
        let a = self.alphas[t];
        let s = a * self.sigma2 + 1.0 - a;
        x_t.mul_scalar((a.sqrt() * (1.0 - a).sqrt() * (1.0 - self.sigma2) / s) as f32)
    }
}

/// The x4 upscaler's latent stages predict v (scaled_linear betas, set_alpha_to_one false): the
/// fixed point and IterInv invert its sampler exactly; plain DDIM inversion does not.
#[test]
fn iterinv_and_the_fixed_point_invert_a_v_prediction_sampler_exactly() {
    use iterinv_engine::invert::iterinv::{fixed_point, iterinv, IterInvOptions};
    let config = SchedulerConfig {
        beta_schedule: "scaled_linear".into(),
        prediction_type: "v_prediction".into(),
        set_alpha_to_one: false,
        steps_offset: 1,
        clip_sample: false,
        ..Default::default()
    };
    let mut s = Scheduler::new(SchedulerKind::Ddim, config).unwrap();
    s.set_timesteps(10).unwrap();
    let d = NarrowGaussianV {
        alphas: s.alphas_cumprod().to_vec(),
        sigma2: 0.25,
    };
    let (x0, ctx) = (image(), context());
    let g = unguided(&ctx);
    let roundtrip = |z_t: Tensor| {
        let back = ddim::reconstruct(&d, &s, &z_t, g).unwrap();
        max_diff(&back.to_vec().unwrap(), &x0.to_vec().unwrap())
    };
    let ddim_err = roundtrip(ddim::invert(&d, &s, &x0, g).unwrap().pop().unwrap());
    let fixed_err = roundtrip(fixed_point(&d, &s, &x0, g, 10, &mut |_| Ok(())).unwrap().0);
    let safe = iterinv(&d, &s, &x0, g, IterInvOptions::default(), &mut |_| Ok(()));
    let safe_err = roundtrip(safe.unwrap().0);
    eprintln!(
        "max error: DDIM {ddim_err:.2e}, fixed point {fixed_err:.2e}, IterInv {safe_err:.2e}"
    );
    assert!(
        ddim_err > 1e-2,
        "the test needs DDIM inversion to be visibly inexact"
    );
    assert!(fixed_err < 1e-4, "fixed point: {fixed_err}");
    assert!(safe_err < 1e-4, "IterInv: {safe_err}");
}

/// ε = −3·x: makes ‖∂step/∂z‖ ≈ 2 at every step, where the faithful step size diverges.
struct Steep;

impl Denoiser for Steep {
    fn predict(&self, x_t: &Tensor, _t: usize, _c: &Tensor) -> Result<Tensor> {
        x_t.mul_scalar(-3.0)
    }
}

/// The faithful step size diverges when the step's Jacobian is large (method.md); the safe mode
/// backtracks and still converges. A denoiser with ε = −3·x makes ‖∂step/∂z‖ ≈ 2 at every step.
#[test]
fn the_safe_mode_survives_where_the_faithful_step_diverges() {
    use iterinv_engine::invert::iterinv::{iterinv, IterInvMode, IterInvOptions};
    let (x0, ctx) = (image(), context());
    let s = scheduler(10, "epsilon");
    let g = unguided(&ctx);
    let run = |mode| {
        let opts = IterInvOptions {
            mode,
            ..Default::default()
        };
        iterinv(&Steep, &s, &x0, g, opts, &mut |_| Ok(()))
            .unwrap()
            .1
    };
    let faithful = run(IterInvMode::Faithful);
    let safe = run(IterInvMode::Safe {
        tolerance: 1e-8,
        max_halvings: 12,
    });
    let worst = |r: &[iterinv_engine::invert::iterinv::StepReport]| {
        r.iter().map(|x| x.final_loss).fold(0f64, f64::max)
    };
    eprintln!(
        "final losses: faithful {:.2e}, safe {:.2e}",
        worst(&faithful),
        worst(&safe)
    );
    assert!(
        worst(&faithful) > 1.0 || worst(&faithful).is_nan(),
        "faithful should diverge here"
    );
    assert!(worst(&safe) < 1e-4, "safe mode: {:?}", safe);
}

/// A fixed-point warm start makes the safe mode's inner loops short where the fixed point
/// converges (the Gaussian sampler), and the safe mode still converges with it on the steep
/// denoiser, where the faithful step diverges.
#[test]
fn the_fixed_point_warm_start_shortens_safe_iterinv_and_never_hurts() {
    use iterinv_engine::invert::iterinv::{iterinv, IterInvOptions};
    let warm = IterInvOptions {
        warm_start: 5,
        ..Default::default()
    };
    let mut iterations = [0usize; 2];
    for (k, opts) in [IterInvOptions::default(), warm].into_iter().enumerate() {
        let err = gaussian_roundtrip(|d, s, x, g| {
            iterinv(d, s, x, g, opts, &mut |r| {
                iterations[k] += r.iterations;
                Ok(())
            })
            .unwrap()
            .0
        });
        assert!(err < 1e-4, "warm start {}: error {err}", opts.warm_start);
    }
    eprintln!(
        "gradient steps: cold {}, warm {}",
        iterations[0], iterations[1]
    );
    assert!(
        iterations[1] * 2 < iterations[0],
        "warm start should at least halve the gradient steps: {iterations:?}"
    );

    let (x0, ctx) = (image(), context());
    let s = scheduler(10, "epsilon");
    let g = unguided(&ctx);
    let opts = IterInvOptions {
        warm_start: 5,
        mode: iterinv_engine::invert::iterinv::IterInvMode::Safe {
            tolerance: 1e-8,
            max_halvings: 12,
        },
        ..Default::default()
    };
    let (_, reports) = iterinv(&Steep, &s, &x0, g, opts, &mut |_| Ok(())).unwrap();
    let worst = reports.iter().map(|r| r.final_loss).fold(0f64, f64::max);
    assert!(
        worst < 1e-4,
        "safe mode with a diverging warm start: {reports:?}"
    );
}

/// A progress callback's error stops the inversion at once and comes back to the caller.
#[test]
fn a_progress_error_interrupts_the_inversion() {
    use iterinv_engine::invert::iterinv::{fixed_point, iterinv, IterInvOptions};
    use iterinv_engine::Error;
    let (x0, ctx) = (image(), context());
    let s = scheduler(10, "epsilon");
    let d = UnitGaussian::new(&s, false);
    let g = unguided(&ctx);
    let mut calls = 0;
    let mut stop_after_two = |_: &iterinv_engine::invert::Update| {
        calls += 1;
        if calls == 2 {
            Err(Error::Interrupted("test".into()))
        } else {
            Ok(())
        }
    };
    let r = iterinv(
        &d,
        &s,
        &x0,
        g,
        IterInvOptions::default(),
        &mut stop_after_two,
    );
    assert!(matches!(r, Err(Error::Interrupted(_))), "{:?}", r.err());
    assert_eq!(calls, 2);
    calls = 0;
    let mut stop_after_two = |_: &iterinv_engine::invert::Update| {
        calls += 1;
        if calls == 2 {
            Err(Error::Interrupted("test".into()))
        } else {
            Ok(())
        }
    };
    let r = fixed_point(&d, &s, &x0, g, 3, &mut stop_after_two);
    assert!(matches!(r, Err(Error::Interrupted(_))));
    assert_eq!(calls, 2);
}
