//! The noise schedule and the timestep schedules, on the CPU, reproducing diffusers' float32
//! arithmetic operation by operation (torch's CPU kernels round every f32 op, and accumulate the
//! cumulative product in f64).

use super::config::SchedulerConfig;

/// `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU as its AVX2/AVX-512 kernels
/// compute it: `start + step·i` for the first half and `end − step·(steps − 1 − i)` for the
/// second, each one fused multiply-add (the compiler contracts them; torch's baseline kernel,
/// `ATEN_CPU_CAPABILITY=default`, does not and differs by an ulp here and there).
pub(crate) fn torch_linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - i - 1) as f32, end)
            }
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar` (cosine, max_beta 0.999): f64 then rounded to f32. Rust's
/// `cos` is the platform libm's, as Python's `math.cos` is.
fn squaredcos_cap_v2(n: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
            .cos()
            .powi(2)
    };
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// torch.cumprod of float32 values on the CPU: accumulated in f64, each prefix rounded to f32.
fn cumprod_f32(x: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    x.iter()
        .map(|&v| {
            acc *= v as f64;
            acc as f32
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr`, in f32 as torch computes it.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
    let mut sqrt: Vec<f32> = cumprod_f32(&alphas).iter().map(|a| a.sqrt()).collect();
    let (first, last) = (sqrt[0], sqrt[sqrt.len() - 1]);
    let scale = first / (first - last);
    for s in &mut sqrt {
        *s = (*s - last) * scale;
    }
    let bar: Vec<f32> = sqrt.iter().map(|s| s * s).collect();
    let mut out = Vec::with_capacity(bar.len());
    out.push(1.0 - bar[0]);
    out.extend(bar.windows(2).map(|w| 1.0 - w[1] / w[0]));
    out
}

/// The float32 betas diffusers builds from a (validated) config.
pub(crate) fn betas(c: &SchedulerConfig) -> Vec<f32> {
    let n = c.num_train_timesteps;
    let betas = match (&c.trained_betas, c.beta_schedule.as_str()) {
        (Some(b), _) => b.iter().map(|&v| v as f32).collect(),
        (None, "scaled_linear") => torch_linspace_f32(c.beta_start.sqrt(), c.beta_end.sqrt(), n)
            .iter()
            .map(|b| b * b)
            .collect(),
        (None, "squaredcos_cap_v2") => squaredcos_cap_v2(n),
        // "linear" (validate() admits nothing else).
        _ => torch_linspace_f32(c.beta_start, c.beta_end, n),
    };
    if c.rescale_betas_zero_snr {
        rescale_zero_terminal_snr(&betas)
    } else {
        betas
    }
}

/// alphas_cumprod = cumprod(1 − β) as diffusers computes it (float32 values).
pub(crate) fn alphas_cumprod(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
    cumprod_f32(&alphas)
}

/// NumPy's `round` (half to even) of a non-negative f64, as an integer.
fn round_half_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// diffusers' `set_timesteps(n)` (identical in DDPM and DDIM), for 1 ≤ n ≤ num_train_timesteps.
/// "leading" may produce timesteps ≥ num_train_timesteps when steps_offset > 0 (as diffusers
/// does); stepping at those is an error.
pub(crate) fn timesteps(c: &SchedulerConfig, n: usize) -> Vec<usize> {
    let total = c.num_train_timesteps;
    let out: Vec<i64> = match c.timestep_spacing.as_str() {
        "linspace" => {
            // np.linspace(0, total − 1, n): i·step with step = (total − 1)/(n − 1), the last
            // value set to the end point exactly; then rounded half to even.
            let stop = (total - 1) as f64;
            let step = if n > 1 { stop / (n - 1) as f64 } else { 0.0 };
            (0..n)
                .rev()
                .map(|i| {
                    let v = if n > 1 && i == n - 1 {
                        stop
                    } else {
                        i as f64 * step
                    };
                    round_half_even(v)
                })
                .collect()
        }
        "trailing" => {
            // np.arange(total, 0, −total/n): length ceil(−total / −ratio); NumPy fills
            // start + i·delta with delta = (start − ratio) − start. The float length can come out
            // as n + 1e-14 (62 of the n for total = 1000), and diffusers' schedule then ends in an
            // extra −1 (where its step would index alphas_cumprod[−1]): that one is dropped, so
            // the schedule always has n timesteps.
            let ratio = total as f64 / n as f64;
            let start = total as f64;
            let len = ((0.0 - start) / -ratio).ceil().max(0.0) as usize;
            let delta = (start - ratio) - start;
            (0..len)
                .map(|i| {
                    let v = if i == 0 {
                        start
                    } else {
                        start + i as f64 * delta
                    };
                    round_half_even(v) - 1
                })
                .filter(|&t| t >= 0)
                .collect()
        }
        // "leading"
        _ => {
            let ratio = total / n;
            (0..n)
                .rev()
                .map(|i| (i * ratio + c.steps_offset) as i64)
                .collect()
        }
    };
    out.into_iter().map(|t| t as usize).collect()
}
