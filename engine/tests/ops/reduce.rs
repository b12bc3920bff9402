//! Sum, mean and quantile against f64 CPU references.

use half::f16;
use iterinv_engine::ops::reduce::{mean, quantile, sum};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{assert_close, gpu, upload, Rng};

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// (sum or mean over `dims`, in f64; the largest Σ|x| of any output) and the output shape.
fn reduce_ref(
    x: &[f32],
    shape: &[usize],
    dims: &[usize],
    keepdim: bool,
    mean: bool,
) -> (Vec<f64>, f64, Vec<usize>) {
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !dims.contains(d)).collect();
    let out_n: usize = kept.iter().map(|&d| shape[d]).product();
    let count: usize = dims.iter().map(|&d| shape[d]).product();
    let (mut s, mut a) = (vec![0.0f64; out_n], vec![0.0f64; out_n]);
    for (lin, &v) in x.iter().enumerate() {
        let mut rem = lin;
        let mut c = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            c[d] = rem % shape[d];
            rem /= shape[d];
        }
        let o = kept.iter().fold(0, |i, &d| i * shape[d] + c[d]);
        s[o] += v as f64;
        a[o] += (v as f64).abs();
    }
    if mean {
        s.iter_mut().for_each(|v| *v /= count as f64);
        a.iter_mut().for_each(|v| *v /= count as f64);
    }
    let out_shape = if keepdim {
        (0..shape.len())
            .map(|d| if dims.contains(&d) { 1 } else { shape[d] })
            .collect()
    } else {
        kept.iter().map(|&d| shape[d]).collect()
    };
    let worst = a.iter().cloned().fold(0.0, f64::max);
    (s, worst, out_shape)
}

#[test]
fn sum_and_mean_over_any_dims() {
    let mut rng = Rng::new(20);
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![5, 37, 3, 11], vec![0]),
        (vec![5, 37, 3, 11], vec![1]),
        (vec![5, 37, 3, 11], vec![0, 2]),
        (vec![5, 37, 3, 11], vec![3]),
        (vec![5, 37, 3, 11], vec![2, 1]),
        (vec![5, 37, 3, 11], vec![0, 1, 2, 3]),
        (vec![5, 37, 3, 11], vec![3, 0]),
        (vec![3000, 5], vec![0]), // a long axis that is not the last: split in segments
        (vec![2, 3, 256, 256], vec![1, 2, 3]), // IF-sized per-sample rows: split in segments
        (vec![1], vec![0]),
        (vec![4, 0, 3], vec![2]),
    ];
    for (shape, dims) in cases {
        let x = rng.vec(numel(&shape), -1.0, 1.0);
        let t = upload(&shape, &x);
        for keepdim in [false, true] {
            for is_mean in [false, true] {
                let out = if is_mean {
                    mean(&t, &dims, keepdim)
                } else {
                    sum(&t, &dims, keepdim)
                }
                .unwrap();
                let (expected, abs_sum, out_shape) =
                    reduce_ref(&x, &shape, &dims, keepdim, is_mean);
                assert_eq!(out.shape(), &out_shape[..], "{shape:?} over {dims:?}");
                // f32 accumulation: every partial sum passes through at most ~40 roundings here
                // (≤ 16 strided adds per lane, two trees of ≤ 8 levels, segment sums), each off by
                // ≤ 2^-24 of a partial sum ≤ Σ|x|; the mean's 1/count adds one relative rounding.
                assert_close(
                    &format!(
                        "{} {shape:?} over {dims:?} keepdim {keepdim}",
                        if is_mean { "mean" } else { "sum" }
                    ),
                    &out,
                    &expected,
                    40.0 * 6e-8 * abs_sum,
                    2e-7,
                );
            }
        }
    }
    // The methods, on f16 storage.
    let h: Vec<f16> = rng
        .vec(7 * 9, -2.0, 2.0)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let xs: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    let t = Tensor::from_f16(gpu(), &[7, 9], &h).unwrap();
    let (expected, abs_sum, _) = reduce_ref(&xs, &[7, 9], &[1], false, true);
    assert_close(
        "mean f16",
        &t.mean(&[1], false).unwrap(),
        &expected,
        20.0 * 6e-8 * abs_sum,
        2e-7,
    );
    let (expected, abs_sum, _) = reduce_ref(&xs, &[7, 9], &[0], true, false);
    assert_close(
        "sum f16",
        &t.sum(&[0], true).unwrap(),
        &expected,
        20.0 * 6e-8 * abs_sum,
        0.0,
    );
}

/// torch.quantile of each row: pos = q·(n−1) in f32 (as torch computes it for f32 inputs), then
/// v_lo + (v_hi − v_lo)·(pos − lo) on the sorted row, in f64.
fn quantile_ref(x: &[f32], batch: usize, q: f32) -> Vec<f64> {
    let n = x.len() / batch;
    x.chunks(n)
        .map(|row| {
            let mut s: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let pos = q * (n - 1) as f32;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (pos - pos.floor()) as f64
        })
        .collect()
}

#[test]
fn quantile_matches_sorted_reference() {
    let mut rng = Rng::new(21);
    let qs = [0.0f32, 0.5, 0.995, 1.0, 0.3];
    let mut cases: Vec<(&str, Vec<usize>, Vec<f32>)> = Vec::new();
    cases.push((
        "random signed",
        vec![3, 5, 7, 11],
        rng.vec(3 * 385, -3.0, 3.0),
    ));
    // Few distinct values, so ranks fall inside long runs of duplicates; ±0 both present.
    let dup: Vec<f32> = (0..2 * 999)
        .map(|_| [-2.0f32, -0.5, -0.0, 0.0, 0.25, 1.0, 7.0][rng.range(0, 6)])
        .collect();
    cases.push(("duplicates", vec![2, 999], dup));
    cases.push(("constant", vec![2, 10], vec![-1.5; 20]));
    cases.push(("n = 1", vec![4], vec![3.0, -1.0, 0.0, 2.5]));
    // Wide dynamic range: tiny, huge, and values of both signs that share high key bytes.
    let wide: Vec<f32> = (0..3 * 333)
        .map(|_| {
            let m = rng.uniform() as f32 - 0.5;
            m * 10f32.powi(rng.range(0, 12) as i32 - 6)
        })
        .collect();
    cases.push(("wide range", vec![3, 333], wide));
    // IF stage II per-sample size (64² → 256²): n = 3·256·256, |x| as dynamic thresholding uses it.
    let big: Vec<f32> = rng
        .vec(2 * 3 * 256 * 256, -1.2, 1.2)
        .iter()
        .map(|v| v.abs())
        .collect();
    cases.push(("3x256x256", vec![2, 3, 256, 256], big));
    for (name, shape, x) in &cases {
        let t = upload(shape, x);
        let batch = shape[0];
        let scale = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        for &q in &qs {
            let out = quantile(&t, q).unwrap();
            assert_eq!(out.shape(), &[batch]);
            // The selected values are exact elements; the f32 interpolation rounds twice, each
            // ≤ 2^-24 of the sample's largest magnitude.
            assert_close(
                &format!("quantile {name} q={q}"),
                &out,
                &quantile_ref(x, batch, q),
                2.0 * 6e-8 * scale,
                0.0,
            );
        }
    }
    // f16 storage, via the method.
    let h: Vec<f16> = rng
        .vec(2 * 77, -5.0, 5.0)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let xs: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    let t = Tensor::from_f16(gpu(), &[2, 77], &h).unwrap();
    assert_close(
        "quantile f16",
        &t.quantile(0.9).unwrap(),
        &quantile_ref(&xs, 2, 0.9),
        2.0 * 6e-8 * 5.0,
        0.0,
    );
}

#[test]
fn bad_arguments_are_errors_naming_op_and_shapes() {
    let a = upload(&[2, 3], &[0.0; 6]);
    let err = |r: Result<Tensor, iterinv_engine::Error>| r.unwrap_err().to_string();
    for dims in [&[][..], &[2], &[0, 0]] {
        let e = err(a.sum(dims, false));
        assert!(e.contains("sum") && e.contains("[2, 3]"), "{dims:?}: {e}");
    }
    assert!(err(a.mean(&[5], true)).contains("mean"));
    let empty = upload(&[2, 0], &[]);
    assert!(err(empty.mean(&[1], false)).contains("mean"));
    let ids = Tensor::from_i32(gpu(), &[2], &[1, 2]).unwrap();
    assert!(err(ids.sum(&[0], false)).contains("i32"));
    for q in [-0.01f32, 1.01, f32::NAN] {
        let e = err(a.quantile(q));
        assert!(e.contains("quantile") && e.contains("q ="), "{q}: {e}");
    }
    assert!(err(ids.quantile(0.5)).contains("i32"));
    assert!(err(upload(&[], &[1.0]).quantile(0.5)).contains("[]"));
    assert!(err(empty.quantile(0.5)).contains("[2, 0]"));
}

#[test]
fn quantile_samples_too_long_for_a_loop_cap_are_errors() {
    // Each invocation of the radix select loops over n/256 elements in 4 passes. lavapipe's cap
    // (65535 per invocation) admits samples up to ~2.1M elements with the margin kept (IF stage
    // II's 3·256² need 3108); a forced cap of 600 admits 16,896 and refuses 20,000.
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        max_loop_iterations: Some(600),
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng::new(23);
    let x = rng.vec(2 * 16_000, -1.0, 1.0);
    let out = quantile(&Tensor::from_f32(&g, &[2, 16_000], &x).unwrap(), 0.3).unwrap();
    // Selected elements are exact; only the interpolation rounds, once, in f32.
    assert_close(
        "quantile under a cap",
        &out,
        &quantile_ref(&x, 2, 0.3),
        1e-6,
        1e-6,
    );
    let long = Tensor::full(&g, &[2, 20_000], 0.5).unwrap();
    let err = quantile(&long, 0.5).unwrap_err().to_string();
    assert!(
        err.contains("quantile") && err.contains("[2, 20000]") && err.contains("loop"),
        "{err}"
    );
}
