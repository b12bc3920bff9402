//! Softmax over the last dimension against an f64 reference.

use iterinv_engine::ops::softmax::softmax;
use iterinv_engine::{Gpu, Tensor};

use crate::common::{assert_close, gpu, gpu_variant, Rng};

fn softmax_ref(x: &[f32], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(n) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        if m == f64::NEG_INFINITY {
            out.extend(std::iter::repeat_n(0.0, n));
            continue;
        }
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

// exp(x − m) for x − m ∈ [−20, 0] may be off by 3 + 2|x| ULP in WGSL (≤ 43 ULP ≈ 2.6e-6 relative);
// each sum adds at most ~30 f32 roundings (a strided slice of ≤ 79 elements, then a tree of ≤ 8
// levels), ≈ 2e-6 relative; the product with 1/sum one more. 1e-5 relative covers all three; the
// absolute 1e-9 only matters for outputs below 1e-4, where relative error is what counts.
const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-9;

fn check(g: &'static Gpu, seed: u64) {
    let mut rng = Rng::new(seed);
    for (rows, n) in [(3usize, 1usize), (5, 7), (4, 1000), (2, 5000), (70, 33)] {
        let mut x = rng.vec(rows * n, -10.0, 10.0);
        // Row 0 is shifted far from zero: without the max subtraction exp would overflow to inf.
        for v in &mut x[..n] {
            *v += 500.0;
        }
        if rows > 2 && n > 1 {
            // Row 1 holds some −inf entries (masked positions).
            for v in x[n..2 * n].iter_mut().step_by(2) {
                *v = f32::NEG_INFINITY;
            }
        }
        let t = Tensor::from_f32(g, &[rows, n], &x).unwrap();
        let out = softmax(&t).unwrap();
        assert_eq!(out.shape(), &[rows, n]);
        assert_close(
            &format!("softmax {rows}x{n}"),
            &out,
            &softmax_ref(&x, n),
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn rows_of_any_length_match_f64_gpu_variant() {
    check(gpu_variant(false), 11);
}

#[test]
fn rows_of_any_length_match_f64_cpu_variant() {
    check(gpu_variant(true), 12);
}

#[test]
fn higher_rank_and_f16_input() {
    let mut rng = Rng::new(13);
    let shape = [2, 3, 5, 77];
    let x = rng.vec(2 * 3 * 5 * 77, -8.0, 8.0);
    let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    let widened: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    let out = Tensor::from_f16(gpu(), &shape, &h)
        .unwrap()
        .softmax()
        .unwrap();
    assert_eq!(out.shape(), &shape);
    // The reference takes the same f16-rounded inputs, so the f32 tolerance applies.
    assert_close("softmax f16", &out, &softmax_ref(&widened, 77), ATOL, RTOL);
}

#[test]
fn fully_masked_rows_are_zero_not_nan() {
    let mut x = vec![f32::NEG_INFINITY; 3 * 9];
    x[9 + 4] = 2.0;
    let out = Tensor::from_f32(gpu(), &[3, 9], &x)
        .unwrap()
        .softmax()
        .unwrap();
    assert_close("softmax -inf rows", &out, &softmax_ref(&x, 9), 0.0, 0.0);
}

#[test]
fn empty_and_invalid_inputs() {
    let g = gpu();
    let empty = Tensor::from_f32(g, &[4, 0], &[])
        .unwrap()
        .softmax()
        .unwrap();
    assert_eq!(empty.shape(), &[4, 0]);
    let scalar = Tensor::from_f32(g, &[], &[1.0]).unwrap();
    let e = scalar.softmax().unwrap_err().to_string();
    assert!(e.contains("softmax") && e.contains("[]"), "{e}");
    let ints = Tensor::from_i32(g, &[2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
    let e = ints.softmax().unwrap_err().to_string();
    assert!(e.contains("softmax") && e.contains("i32"), "{e}");
}

/// lavapipe ends every loop of an invocation after 65535 iterations in all: a row of 4.5 million
/// elements needs a wider workgroup there (a 64-wide one would loop 2·70,313 times), and rows
/// beyond what 256 invocations can cover are an error rather than a silently wrong result.
#[test]
fn rows_longer_than_lavapipes_loop_limit() {
    let g = gpu_variant(true);
    let n = 4_500_000;
    let mut rng = Rng::new(14);
    let x = rng.vec(n, -10.0, 10.0);
    let out = Tensor::from_f32(g, &[1, n], &x).unwrap().softmax().unwrap();
    // Each invocation sums ~17,600 terms: ≤ 1e-3 relative in the worst case, ~1e-6 typically
    // (√17,600·6e-8); 2e-5 leaves room for the typical case and catches any cut-short loop,
    // which would leave elements unwritten (NaN) or off by orders of magnitude.
    assert_close("softmax 4.5M", &out, &softmax_ref(&x, n), 1e-12, 2e-5);
    if g.info().adapter.device_type == wgpu::DeviceType::Cpu {
        let big = Tensor::zeros(g, &[9_000_000]).unwrap();
        let e = big.softmax().unwrap_err().to_string();
        assert!(e.contains("softmax") && e.contains("9000000"), "{e}");
    }
}
