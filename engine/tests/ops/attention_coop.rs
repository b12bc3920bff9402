//! Attention on cooperative matrices (tensor cores): without a bias or mask, where the matrix
//! products run on cooperative matrices, `attention` takes its two products as GEMMs around an f32
//! softmax (`attention_blocked::on_gemms`). Here on emulated matrices (lavapipe has none) at both
//! precisions, and on the hardware's where the adapter offers them for f16 (tools/gpu-check runs
//! the `coop` tests with ITERINV_COOP=on). Forward against the f64 references of attention.rs, at
//! f16 against one that rounds what the GEMMs round (scale·q, k, the normalised probabilities,
//! v); gradients against finite differences of grad_attention.rs's f64 reference.

use iterinv_engine::ops::attention_blocked::on_gemms;
use iterinv_engine::{Cooperative, Gpu, GpuOptions, Precision};

use crate::attention::{self, Case, Data};
use crate::common::{
    assert_close, check_vjp_on, exp_err, f64s, score_err, GradInput, Operands, Rng, Weighted, U,
};
use crate::grad_attention;

fn device(precision: Precision, cooperative: Option<Cooperative>) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        precision: Some(precision),
        cooperative,
        ..Default::default()
    })
    .unwrap()
}

/// A device of `precision` on emulated cooperative matrices, for one test alone: the tests count
/// a device's dispatches, which tests running beside them on a shared device would add to.
fn emulated(precision: Precision) -> Gpu {
    device(precision, Some(Cooperative::Emulated))
}

/// The devices whose f16 products run on cooperative matrices, with the factor on the error
/// bound: the emulation (1), and the hardware's where offered (4: tensor cores may add in
/// another order and align partial sums more coarsely than f32 adds, as for matmul).
fn f16_paths() -> Vec<(&'static str, Gpu, f64)> {
    let mut paths = vec![("emulated", emulated(Precision::F16), 1.0)];
    let hardware = device(Precision::F16, None);
    if hardware.coop().is_some() {
        paths.push(("hardware", hardware, 4.0));
    }
    paths
}

/// Dispatches of the flash kernels (the GPU and CPU variants) on `g` so far.
fn flash(g: &Gpu) -> u64 {
    ["attention_tiled", "attention_direct"]
        .iter()
        .map(|k| g.kernel_dispatches(k))
        .sum()
}

/// Runs `x` on `g` and checks that it went through the GEMMs, not the flash kernels.
fn run_on_gemms(g: &Gpu, x: &Data) -> Vec<f32> {
    let [b, lq, h, _] = x.dims;
    assert!(on_gemms(g, b * h, lq, x.lk1 + x.lk2));
    let before = flash(g);
    let out = attention::run(g, x, false);
    assert_eq!(flash(g), before, "the flash kernel ran for {:?}", x.dims);
    assert!(out.guards_intact().unwrap());
    out.to_vec().unwrap()
}

/// Ragged sizes (no tile multiple), one and two key segments, head dims 16, 20 and 64.
const CASES: [Case; 3] = [
    Case {
        b: 2,
        lq: 37,
        h: 3,
        d: 20,
        lk1: 13,
        lk2: 29,
        bias: None,
        mask: false,
        kv_f16: false,
    },
    Case {
        b: 1,
        lq: 150,
        h: 2,
        d: 64,
        lk1: 77,
        lk2: 0,
        bias: None,
        mask: false,
        kv_f16: false,
    },
    Case {
        b: 2,
        lq: 70,
        h: 1,
        d: 16,
        lk1: 0,
        lk2: 45,
        bias: None,
        mask: false,
        kv_f16: false,
    },
];

/// The ops tests' tolerance for scores from the matmul kernels (attention.rs's wide heads):
/// D-term f32 dots (≲ √D·6e-8 relative) and Lk-term weighted sums of values in [-1, 1].
const ATOL: f64 = 2e-5;

#[test]
fn coop_attention_at_f32_runs_on_gemms_and_matches_f64() {
    let g = &emulated(Precision::F32);
    for (i, c) in CASES.into_iter().enumerate() {
        let x = attention::data(c, &mut Rng::new(960 + i as u64));
        let expected = attention::reference_ops(&x, None, Operands::Exact).0;
        let got = run_on_gemms(g, &x);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, e)| (*a as f64 - e).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= ATOL,
            "case {i}: worst error {worst:e} over {ATOL:e}"
        );
    }
    // A bias (T5) or a key mask keeps the flash kernels, on the same device.
    let mut rng = Rng::new(969);
    let x = attention::data(
        Case {
            bias: Some(1),
            mask: true,
            ..CASES[0]
        },
        &mut rng,
    );
    let before = flash(g);
    let out = attention::run(g, &x, false);
    assert!(flash(g) > before, "the flash kernel did not run");
    let expected = attention::reference_ops(&x, None, Operands::Exact).0;
    assert_close("attention with bias and mask", &out, &expected, 1e-5, 0.0);
}

/// softmax(scale·q·kᵀ)·v as the GEMM path computes it at f16, in f64, with per element the
/// bound on its error: the scores from f16 operands (scale a power of two, so scale·q rounds as
/// q), an f32 softmax, then the normalised probabilities rounded to f16 (`Operands::weight`:
/// one f16 step where their f32 error straddles a rounding boundary) times f16 values.
fn reference_rounding_probabilities(x: &Data) -> (Vec<f64>, Vec<f64>) {
    let [b, lq, h, d] = x.dims;
    let lk = x.lk1 + x.lk2;
    let ops = Operands::F16;
    let row = |t: &[f32], o: usize| ops.inputs(&f64s(&t[o..o + d]));
    let key = |bi: usize, j: usize, hi: usize| attention::key_value(x, ops, bi, j, hi);
    let (mut out, mut bound, sc) = (Vec::new(), Vec::new(), x.scale as f64);
    for bi in 0..b {
        for i in 0..lq {
            for hi in 0..h {
                let q = row(&x.q, ((bi * lq + i) * h + hi) * d);
                let scores: Vec<(f64, f64)> = (0..lk)
                    .map(|j| {
                        let k = key(bi, j, hi).0;
                        let dot: f64 = q.iter().zip(&k).map(|(a, c)| a * c).sum();
                        let mag: f64 = q.iter().zip(&k).map(|(a, c)| (a * c).abs()).sum();
                        (sc * dot, score_err(d, sc * mag, 0.0))
                    })
                    .collect();
                let m = scores.iter().map(|s| s.0).fold(f64::NEG_INFINITY, f64::max);
                let em = scores.iter().map(|s| s.1).fold(0.0, f64::max);
                let w: Vec<(f64, f64)> = scores
                    .iter()
                    .map(|&(s, e)| {
                        let w = (s - m).exp();
                        (w, exp_err(w, s - m, e + em))
                    })
                    .collect();
                let l: f64 = w.iter().map(|w| w.0).sum();
                // The sum's terms' errors and its additions; the division (or a reciprocal and a
                // product) two more roundings.
                let el = w.iter().map(|w| w.1).sum::<f64>() + (lk as f64 + 2.0) * U * l;
                let mut acc = Weighted::new(d);
                for (j, &(wj, ew)) in w.iter().enumerate() {
                    let p = wj / l;
                    assert!(p >= 1.0 / 16384.0, "probability {p} is an f16 subnormal");
                    let ep = ew / l + p * (el / l + 3.0 * U);
                    acc.add(ops, p, ep, &key(bi, j, hi).1);
                }
                let (o, e) = acc.finish(1.0, 0.0);
                out.extend(o);
                bound.extend(e);
            }
        }
    }
    (out, bound)
}

#[test]
fn coop_attention_at_f16_rounds_the_gemms_operands() {
    let (paths, f32_device) = (f16_paths(), emulated(Precision::F32));
    for (i, c) in CASES.into_iter().enumerate() {
        let mut x = attention::data(c, &mut Rng::new(970 + i as u64));
        // A power of two (D 16 and 64; D 20's 0.112 is not), so that scale·q rounds as q.
        x.scale = (0.5 / (c.d as f32).sqrt()).log2().round().exp2();
        let (want, bound) = reference_rounding_probabilities(&x);
        let f32_gemms = run_on_gemms(&f32_device, &x);
        for (path, g, factor) in &paths {
            let got = run_on_gemms(g, &x);
            for (e, ((a, w), b)) in got.iter().zip(&want).zip(&bound).enumerate() {
                let err = (*a as f64 - w).abs();
                assert!(
                    err <= factor * b,
                    "{path} case {i} element {e}: {a} but the f16 reference is {w} (bound {b:e})"
                );
            }
        }
        // The rounding is real: the f32 GEMMs land outside the f16 bound somewhere.
        let outside = f32_gemms
            .iter()
            .zip(&want)
            .zip(&bound)
            .any(|((a, w), b)| (*a as f64 - w).abs() > *b);
        assert!(outside, "case {i}: f32 products are within the f16 bounds");
    }
}

/// The backward is the GEMMs' and softmax's: finite differences of the f64 reference, every input
/// (both segments), as grad_attention.rs's flash-kernel tests (same tolerance).
#[test]
fn coop_attention_gradients_match_finite_differences() {
    let g = &emulated(Precision::F32);
    for (i, (lq, lk1, lk2, d)) in [(11, 5, 9, 20), (7, 13, 0, 8)].into_iter().enumerate() {
        let c = grad_attention::Case::new(2, lq, 3, d, lk1, lk2);
        assert!(on_gemms(g, 2 * 3, lq, lk1 + lk2));
        let mut rng = Rng::new(980 + i as u64);
        let inputs: Vec<GradInput> = c
            .shapes()
            .iter()
            .map(|s| GradInput::new(s, rng.vec(s.iter().product(), -1.0, 1.0), true))
            .collect();
        let before = g.kernel_dispatches("attention_grad_prep");
        check_vjp_on(
            g,
            &format!("attention on GEMMs, gradients Lq{lq} Lk{lk1}+{lk2} D{d}"),
            &inputs,
            |t| grad_attention::run(&c, t),
            |x| grad_attention::reference(&c, x),
            grad_attention::RTOL,
            150,
        );
        assert_eq!(g.kernel_dispatches("attention_grad_prep"), before);
    }
}
