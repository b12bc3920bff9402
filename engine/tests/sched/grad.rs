//! A step is differentiable: its VJPs with respect to model_output and sample (recorded by the
//! engine ops it is made of) against central finite differences of an f64 re-implementation of
//! diffusers' step (common::check_vjp). The per-step scalars of the reference follow diffusers'
//! float32 formulas (re-derived here from scheduling_ddpm.py / scheduling_ddim.py, not taken from
//! the engine); the per-element math is f64.
//!
//! Inputs are chosen away from the kinks: at t = 10 / 20 x0 ≈ sample, and sample 0 is uniform in
//! ±1.3, so its 0.95-quantile of |x0| (≈ 1.24) lies inside (1, 1.5) and the gradient flows through
//! s as well as x0; sample 1 (uniform in ±2) has s clamped to 1.5.

use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind, StepOptions};
use iterinv_engine::Tensor;

use crate::common::{check_vjp, GradInput, Rng};

const B: usize = 2;
const C: usize = 3;
const HW: usize = 36;
/// f32 noise of the GPU forward and backward relative to the largest value / gradient.
const RTOL: f64 = 2e-5;

fn if_stage1() -> SchedulerConfig {
    SchedulerConfig {
        beta_schedule: "squaredcos_cap_v2".into(),
        variance_type: Some("learned_range".into()),
        thresholding: true,
        dynamic_thresholding_ratio: 0.95,
        sample_max_value: 1.5,
        ..Default::default()
    }
}

/// torch.quantile (linear) of each row, the position computed in f32 as torch does for f32.
fn quantile(row: &[f64], q: f32) -> f64 {
    let mut s = row.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pos = q * (s.len() - 1) as f32;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - pos.floor()) as f64
}

/// diffusers' x0 post-processing on [B, C·HW] values.
fn process(c: &SchedulerConfig, x0: &mut [f64]) {
    if c.thresholding {
        for row in x0.chunks_mut(C * HW) {
            let abs: Vec<f64> = row.iter().map(|v| v.abs()).collect();
            let q = quantile(&abs, c.dynamic_thresholding_ratio as f32);
            let s = q.max(1.0).min(c.sample_max_value);
            for v in row.iter_mut() {
                *v = v.clamp(-s, s) / s;
            }
        }
    } else if c.clip_sample {
        let r = c.clip_sample_range;
        x0.iter_mut().for_each(|v| *v = v.clamp(-r, r));
    }
}

/// One step in f64 on [B, C, HW] samples with a [B, mo_c, HW] model output; returns
/// prev_sample followed by pred_original_sample (as the GPU side concatenates them).
fn step_ref(s: &Scheduler, t: usize, eta: f32, mo_c: usize, x: &[Vec<f64>]) -> Vec<f64> {
    let c = s.config();
    let (mo, sample, noise) = (&x[0], &x[1], &x[2]);
    let ac = |i: usize| s.alphas_cumprod()[i] as f32;
    let prev = s.previous_timestep(t);
    let ddpm = s.kind() == SchedulerKind::Ddpm;
    let a_t = ac(t);
    let a_prev = match prev {
        Some(p) => ac(p),
        None if ddpm => 1.0,
        None => s.final_alpha_cumprod() as f32,
    };
    let (bp, bpp) = (1.0 - a_t, 1.0 - a_prev);
    let (sa, sb) = (a_t.sqrt() as f64, bp.sqrt() as f64);
    let idx = |b: usize, ch: usize, i: usize, chans: usize| (b * chans + ch) * HW + i;
    let n = B * C * HW;
    let (mut x0, mut eps, mut pv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for b in 0..B {
        for ch in 0..C {
            for i in 0..HW {
                let (m, smp) = (mo[idx(b, ch, i, mo_c)], sample[idx(b, ch, i, C)]);
                let k = idx(b, ch, i, C);
                (x0[k], eps[k]) = match c.prediction_type.as_str() {
                    "epsilon" => ((smp - sb * m) / sa, m),
                    "v_prediction" => (sa * smp - sb * m, sa * m + sb * smp),
                    _ => (m, (smp - sa * m) / sb),
                };
                if mo_c == 2 * C {
                    pv[k] = mo[idx(b, C + ch, i, mo_c)];
                }
            }
        }
    }
    process(c, &mut x0);
    let prev_sample: Vec<f64> = if ddpm {
        let cur_alpha = a_t / a_prev;
        let cur_beta = 1.0 - cur_alpha;
        let cx = (a_prev.sqrt() * cur_beta / bp) as f64;
        let cs = (cur_alpha.sqrt() * bpp / bp) as f64;
        let var = ((bpp / bp) * cur_beta).max(1e-20);
        let (min_log, max_log) = ((var as f64).ln(), (cur_beta as f64).ln());
        assert_eq!(c.variance_type_or_default(), "learned_range");
        (0..n)
            .map(|k| {
                let frac = (pv[k] + 1.0) / 2.0;
                let logvar = frac * max_log + (1.0 - frac) * min_log;
                let noise_term = if t > 0 {
                    (0.5 * logvar).exp() * noise[k]
                } else {
                    0.0
                };
                cx * x0[k] + cs * sample[k] + noise_term
            })
            .collect()
    } else {
        let var = (bpp / bp) * (1.0 - a_t / a_prev);
        let std = eta * var.sqrt();
        let dir = ((1.0 - a_prev) - std * std).sqrt() as f64;
        let ap = a_prev.sqrt() as f64;
        (0..n)
            .map(|k| ap * x0[k] + dir * eps[k] + std as f64 * noise[k])
            .collect()
    };
    prev_sample.into_iter().chain(x0).collect()
}

fn inputs(seed: u64, mo_c: usize) -> Vec<GradInput> {
    let mut rng = Rng::new(seed);
    let mut sample = rng.vec(C * HW, -1.3, 1.3);
    sample.extend(rng.vec(C * HW, -2.0, 2.0));
    let mo = rng.vec(B * mo_c * HW, -1.0, 1.0);
    let noise = rng.vec(B * C * HW, -1.0, 1.0);
    vec![
        GradInput::new(&[B, mo_c, 6, 6], mo, true),
        GradInput::new(&[B, C, 6, 6], sample, true),
        GradInput::new(&[B, C, 6, 6], noise, false),
    ]
}

fn check(what: &str, s: &Scheduler, t: usize, eta: f32, mo_c: usize, seed: u64) {
    check_vjp(
        what,
        &inputs(seed, mo_c),
        |x| {
            let opts = StepOptions {
                noise: Some(&x[2]),
                eta,
            };
            let out = s.step(&x[0], t, &x[1], opts).unwrap();
            Tensor::concat(&[&out.prev_sample, &out.pred_original_sample], 0).unwrap()
        },
        |x| step_ref(s, t, eta, mo_c, x),
        RTOL,
        usize::MAX,
    );
}

#[test]
fn ddpm_learned_range_thresholded_step_vjp() {
    let mut s = Scheduler::new(SchedulerKind::Ddpm, if_stage1()).unwrap();
    s.set_timesteps(100).unwrap();
    check("DDPM IF stage I, t = 10", &s, 10, 0.0, 2 * C, 41);
    // Large t: x0 is mostly clipped at ±s = 1.5, the variance term dominates.
    check("DDPM IF stage I, t = 500", &s, 500, 0.0, 2 * C, 42);
}

#[test]
fn ddim_step_vjp() {
    let config = if_stage1();
    let mut s = Scheduler::new(SchedulerKind::Ddim, config.clone()).unwrap();
    s.set_timesteps(50).unwrap();
    // The variance half of a 6-channel output is ignored: its gradient is zero.
    check(
        "DDIM from IF stage I, eta 0.5, t = 20",
        &s,
        20,
        0.5,
        2 * C,
        43,
    );
    let sample_pred = SchedulerConfig {
        prediction_type: "sample".into(),
        ..config
    };
    let mut s = Scheduler::new(SchedulerKind::Ddim, sample_pred).unwrap();
    s.set_timesteps(50).unwrap();
    check("DDIM sample prediction, t = 500", &s, 500, 0.0, C, 44);
    let sdx4 = SchedulerConfig {
        beta_schedule: "scaled_linear".into(),
        prediction_type: "v_prediction".into(),
        set_alpha_to_one: false,
        steps_offset: 1,
        clip_sample: false,
        ..Default::default()
    };
    let mut s = Scheduler::new(SchedulerKind::Ddim, sdx4).unwrap();
    s.set_timesteps(75).unwrap();
    check("DDIM x4 upscaler, eta 1, t = 1", &s, 1, 1.0, C, 45);
}
