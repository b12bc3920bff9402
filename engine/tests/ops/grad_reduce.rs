//! Backward rules of the reductions (sum, mean, quantile) against finite differences of f64
//! references, and IF's dynamic thresholding composed from public ops. Tolerances: see
//! grad_shape.rs.

use half::f16;
use iterinv_engine::grad::grad;
use iterinv_engine::ops::reduce::{mean, quantile, sum};
use iterinv_engine::Tensor;

use crate::common::{assert_close, check_vjp, gpu, GradInput, Rng};
use crate::grad_shape::{coords, index, numel, SCALED};

/// Sum over `dims` of row-major `x` (output in row-major order of the kept dims), times `scale`.
fn sum_ref(x: &[f64], shape: &[usize], dims: &[usize], scale: f64) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !dims.contains(d)).collect();
    let ks: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let mut out = vec![0.0; numel(&ks)];
    for (i, &v) in x.iter().enumerate() {
        let c = coords(shape, i);
        let kc: Vec<usize> = kept.iter().map(|&d| c[d]).collect();
        out[index(&ks, &kc)] += v;
    }
    out.iter().map(|v| v * scale).collect()
}

#[test]
fn sum_and_mean_over_dims_0_2_and_all_with_and_without_keepdim() {
    let mut rng = Rng::new(308);
    let shape = [3usize, 5, 7, 2];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    for dims in [vec![0usize, 2], vec![2, 0], vec![0, 1, 2, 3], vec![3]] {
        let count: usize = dims.iter().map(|&d| shape[d]).product();
        for keepdim in [false, true] {
            for is_mean in [false, true] {
                let scale = if is_mean { 1.0 / count as f64 } else { 1.0 };
                let d2 = dims.clone();
                check_vjp(
                    &format!(
                        "{} {dims:?} keepdim={keepdim}",
                        if is_mean { "mean" } else { "sum" }
                    ),
                    &[GradInput::new(&shape, x.clone(), true)],
                    move |t| {
                        if is_mean {
                            mean(&t[0], &d2, keepdim).unwrap()
                        } else {
                            sum(&t[0], &d2, keepdim).unwrap()
                        }
                    },
                    |x| sum_ref(&x[0], &shape, &dims, scale),
                    // The gradient is g·(1/count) rounded once in f32: the forward's sums of up to
                    // 210 values are what the tolerance covers (~1e-6 relative).
                    SCALED,
                    usize::MAX,
                );
            }
        }
    }
}

/// torch.quantile of each row (pos = q·(n−1) in f32), in f64.
fn quantile_ref(x: &[f64], batch: usize, q: f32) -> Vec<f64> {
    let n = x.len() / batch;
    x.chunks(n)
        .map(|row| {
            let mut s = row.to_vec();
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let pos = q * (n - 1) as f32;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (pos - pos.floor()) as f64
        })
        .collect()
}

/// `n` distinct values in random order, at least 0.8·step apart, so ±1e-4 never reorders them.
fn distinct(rng: &mut Rng, n: usize, lo: f64, step: f64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|i| (lo + step * (i as f64 + 0.1 * rng.uniform())) as f32)
        .collect();
    for i in (1..n).rev() {
        v.swap(i, rng.range(0, i));
    }
    v
}

#[test]
fn quantile_gradient_goes_to_the_two_ranks() {
    let mut rng = Rng::new(309);
    let (batch, n) = (3usize, 37usize);
    let x: Vec<f32> = (0..batch)
        .flat_map(|_| distinct(&mut rng, n, -1.0, 0.05))
        .collect();
    for q in [0.3f32, 0.995, 0.0, 1.0] {
        check_vjp(
            &format!("quantile q={q}"),
            &[GradInput::new(&[batch, n], x.clone(), true)],
            |t| quantile(&t[0], q).unwrap(),
            |x| quantile_ref(&x[0], batch, q),
            SCALED,
            usize::MAX,
        );
    }
    // More than one workgroup's worth of elements per sample, rank-3 samples.
    let x: Vec<f32> = (0..2)
        .flat_map(|_| distinct(&mut rng, 300, 0.0, 0.01))
        .collect();
    check_vjp(
        "quantile n=300",
        &[GradInput::new(&[2, 3, 100], x, true)],
        |t| quantile(&t[0], 0.7).unwrap(),
        |x| quantile_ref(&x[0], 2, 0.7),
        SCALED,
        usize::MAX,
    );
}

#[test]
fn quantile_gradient_splits_ties_evenly() {
    // Both rows sort to [1, 2, 2, 3, x]. q = 0.5: pos = 2, rank 2 holds 2.0, which two elements
    // share: ½ each. q = 0.625: pos = 2.5, rank 2's share ½ is split over the two 2.0s (¼ each),
    // rank 3 (3.0) gets ½.
    // (torch would give rank 2's whole share to one of the two 2.0s, chosen by its sort.)
    let rows = [[2.0f32, 5.0, 1.0, 2.0, 3.0], [3.0, 2.0, 2.0, 7.0, 1.0]];
    let cases: [(f32, [[f64; 5]; 2]); 2] = [
        (0.5, [[0.5, 0.0, 0.0, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0, 0.0]]),
        (
            0.625,
            [[0.25, 0.0, 0.0, 0.25, 0.5], [0.5, 0.25, 0.25, 0.0, 0.0]],
        ),
    ];
    let flat: Vec<f32> = rows.concat();
    for f16_storage in [false, true] {
        for (q, weights) in cases {
            let x = if f16_storage {
                let h: Vec<f16> = flat.iter().map(|&v| f16::from_f32(v)).collect();
                Tensor::from_f16(gpu(), &[2, 5], &h).unwrap()
            } else {
                Tensor::from_f32(gpu(), &[2, 5], &flat).unwrap()
            }
            .requires_grad();
            let y = quantile(&x, q).unwrap();
            let gy = [1.5f32, -2.0];
            let ct = Tensor::from_f32(gpu(), &[2], &gy).unwrap();
            let dx = grad(&[&y], &[&ct], &[&x]).unwrap();
            let expected: Vec<f64> = (0..10)
                .map(|i| weights[i / 5][i % 5] * gy[i / 5] as f64)
                .collect();
            // Products of g with (1 − w)/count and w/count, w = 0.5 exactly: exact in f32.
            assert_close(
                &format!("ties q={q} f16={f16_storage}"),
                &dx[0],
                &expected,
                0.0,
                0.0,
            );
        }
    }
}

/// diffusers' DDPMScheduler._threshold_sample for IF (ratio 0.995, sample_max_value 1.5), in f64:
/// s = clamp(quantile(|x|, 0.995), 1, 1.5) per sample; x' = clamp(x, −s, s) / s.
fn threshold_ref(x: &[f64], batch: usize) -> Vec<f64> {
    let n = x.len() / batch;
    let abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    let s = quantile_ref(&abs, batch, 0.995);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = s[i / n].clamp(1.0, 1.5);
            v.clamp(-s, s) / s
        })
        .collect()
}

#[test]
fn if_dynamic_thresholding_composite() {
    let mut rng = Rng::new(310);
    let (b, n) = (2usize, 3 * 8 * 8);
    // |x|: 190 distinct magnitudes (≥ 0.005 apart, away from 0) and two largest ones. n − 1 = 191,
    // pos = 0.995·191 = 190.045: s = v190 + 0.045·(v191 − v190).
    // Sample 0: top 1.15, 1.35 → s ≈ 1.159 inside (1, 1.5): the gradient flows through s; only
    //   the largest element (1.35 > s) is clipped, the next is 0.009 below s.
    // Sample 1: top 1.9, 2.3 → s ≈ 1.918 clamped to 1.5; the rest ≤ 1.4 < 1.5.
    let mut x = Vec::new();
    for (top, spread) in [([1.15f32, 1.35], 1.08f64), ([1.9, 2.3], 1.38)] {
        let mut mags = distinct(&mut rng, n - 2, 0.02, spread / (n - 2) as f64);
        mags.extend(top);
        for i in (1..n).rev() {
            mags.swap(i, rng.range(0, i));
        }
        x.extend(
            mags.iter()
                .map(|&m| if rng.uniform() < 0.5 { -m } else { m }),
        );
    }
    check_vjp(
        "IF dynamic thresholding",
        &[GradInput::new(&[b, 3, 8, 8], x, true)],
        |t| {
            let x0 = &t[0];
            let s = x0
                .reshape(&[b, n])
                .unwrap()
                .abs()
                .unwrap()
                .quantile(0.995)
                .unwrap()
                .clamp(1.0, 1.5)
                .unwrap()
                .reshape(&[b, 1, 1, 1])
                .unwrap();
            x0.maximum(&s.neg().unwrap())
                .unwrap()
                .minimum(&s)
                .unwrap()
                .div(&s)
                .unwrap()
        },
        |x| threshold_ref(&x[0], b),
        // Through s: Σ over 192 elements of c·x/s², accumulated in f32 (~1e-6 relative).
        SCALED,
        usize::MAX,
    );
}
