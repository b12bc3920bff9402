//! The residual epilogue of conv2d and matmul (`act(product + bias) + residual`, a skip
//! connection fused into the GEMM that precedes it) against the f64 references of conv.rs and
//! matmul.rs plus the residual, on every kernel path: the CPU and GPU variants, the emulated
//! cooperative kernels, reductions split over dispatches (the residual is added once, after the
//! last), weights split over bindings, transposed outputs; its gradient (the output's) by finite
//! differences; and shape errors.
//!
//! Tolerances: the references' (conv.rs, matmul.rs) plus one f32 rounding of the addition,
//! ≤ 2⁻²⁴·(|product| + |residual|) ≤ 1e-6 here.

use iterinv_engine::ops::conv::{conv2d_with_residual, Conv2dOptions};
use iterinv_engine::ops::matmul::{matmul_with_residual, MatmulOptions};
use iterinv_engine::{Activation, Cooperative, Gpu, GpuOptions, Precision, Tensor};

use crate::common::{act64, assert_close, check_vjp_on, gpu, gpu_variant, GradInput, Rng};
use crate::conv::{case as conv_case, reference as conv_reference, Case as ConvCase};

fn device(options: GpuOptions) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        ..options
    })
    .unwrap()
}

/// The kernel paths: CPU and GPU variants, emulated cooperative matrices, and reductions split
/// over dispatches by a small loop cap (the residual must be added once, after the last part).
fn paths() -> Vec<(&'static str, Gpu)> {
    vec![
        ("cpu kernels", gpu_variant(true).clone()),
        ("gpu kernels", gpu_variant(false).clone()),
        (
            "emulated cooperative",
            device(GpuOptions {
                cooperative: Some(Cooperative::Emulated),
                precision: Some(Precision::F32),
                ..Default::default()
            }),
        ),
        (
            "split reductions",
            device(GpuOptions {
                cpu_kernels: Some(false),
                cooperative: Some(Cooperative::Off),
                max_loop_iterations: Some(300),
                ..Default::default()
            }),
        ),
    ]
}

fn conv_opts(c: ConvCase, act: Activation) -> Conv2dOptions {
    Conv2dOptions {
        stride: c.stride,
        padding: c.pad,
        activation: act,
    }
}

fn out_shape(c: ConvCase) -> [usize; 4] {
    let ho = (c.h + 2 * c.pad - c.kh) / c.stride + 1;
    let wo = (c.w + 2 * c.pad - c.kw) / c.stride + 1;
    [c.b, c.cout, ho, wo]
}

#[test]
fn conv_adds_the_residual_after_bias_and_activation() {
    let cases = [
        conv_case(2, 5, 7, (9, 11), (3, 3), 1, 1),
        conv_case(1, 20, 70, (7, 13), (3, 3), 2, 1),
        conv_case(2, 6, 3, (5, 20), (1, 1), 1, 0),
    ];
    for (name, g) in paths() {
        for (i, c) in cases.into_iter().enumerate() {
            let mut rng = Rng::new(1000 + i as u64);
            let x = rng.vec(c.b * c.cin * c.h * c.w, -1.0, 1.0);
            let w = rng.vec(c.cout * c.cin * c.kh * c.kw, -1.0, 1.0);
            let bias = rng.vec(c.cout, -1.0, 1.0);
            let shape = out_shape(c);
            let residual = rng.vec(shape.iter().product(), -2.0, 2.0);
            for act in [Activation::None, Activation::Silu] {
                let up = |s: &[usize], v: &[f32]| Tensor::from_f32(&g, s, v).unwrap();
                let out = conv2d_with_residual(
                    &up(&[c.b, c.cin, c.h, c.w], &x),
                    &up(&[c.cout, c.cin, c.kh, c.kw], &w),
                    Some(&up(&[c.cout], &bias)),
                    conv_opts(c, act),
                    Some(&up(&shape, &residual)),
                )
                .unwrap();
                let (mut want, s_max) = conv_reference(c, &x, &w, Some(&bias[..]), act);
                want.iter_mut()
                    .zip(&residual)
                    .for_each(|(o, r)| *o += *r as f64);
                let k = (c.cin * c.kh * c.kw) as f64;
                let atol = 8.0 * k.sqrt() * f32::EPSILON as f64 / 2.0 * s_max + 2e-6;
                let what = format!("conv + residual ({name}) {c:?} {act:?}");
                assert_close(&what, &out, &want, atol, 1e-6);
            }
        }
    }
}

/// [B, M, K] · [N, K]ᵀ + bias (+ act) + residual in f64, written `[B, M, N]` or, transposed,
/// `[B, N, M]`.
#[allow(clippy::too_many_arguments)]
fn linear_reference<T: Copy + Into<f64>>(
    a: &[T],
    w: &[T],
    bias: &[T],
    residual: &[T],
    [batch, m, n, k]: [usize; 4],
    act: Activation,
    trans_out: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; batch * m * n];
    for b in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|l| a[(b * m + i) * k + l].into() * w[j * k + l].into())
                    .sum();
                let at = if trans_out {
                    (b * n + j) * m + i
                } else {
                    (b * m + i) * n + j
                };
                out[at] = act64(act, dot + bias[j].into()) + residual[at].into();
            }
        }
    }
    out
}

#[test]
fn matmul_adds_the_residual_in_every_layout_and_split() {
    let mut devices = paths();
    // A 16 KiB binding limit splits the [300, 40] weight into column blocks.
    devices.push((
        "chunked weights",
        device(GpuOptions {
            max_binding_size: Some(16 * 1024),
            ..Default::default()
        }),
    ));
    let dims = [2, 5, 300, 40];
    let [batch, m, n, k] = dims;
    let mut rng = Rng::new(1010);
    let a = rng.vec(batch * m * k, -1.0, 1.0);
    let w = rng.vec(n * k, -1.0, 1.0);
    let bias = rng.vec(n, -1.0, 1.0);
    let residual = rng.vec(batch * m * n, -2.0, 2.0);
    for (name, g) in &devices {
        for (act, trans_out) in [(Activation::None, false), (Activation::Gelu, true)] {
            let up = |s: &[usize], v: &[f32]| Tensor::from_f32(g, s, v).unwrap();
            let shape = if trans_out {
                [batch, n, m]
            } else {
                [batch, m, n]
            };
            let out = matmul_with_residual(
                &up(&[batch, m, k], &a),
                &up(&[n, k], &w),
                Some(&up(&[n], &bias)),
                MatmulOptions {
                    trans_b: true,
                    trans_out,
                    activation: act,
                    ..Default::default()
                },
                Some(&up(&shape, &residual)),
            )
            .unwrap();
            let want = linear_reference(&a, &w, &bias, &residual, dims, act, trans_out);
            // K = 40 products of magnitude ≤ 1: K·2⁻²³·40 ≈ 2e-4 worst case, far under a term.
            let what = format!("matmul + residual ({name}) {act:?} transposed {trans_out}");
            assert_close(&what, &out, &want, 2e-4, 1e-6);
        }
    }
}

/// The residual's gradient is the output's; the others are unchanged by it. Through the fused
/// epilogue (no activation) and the recorded split (with one).
#[test]
fn gradients_flow_to_the_residual() {
    let g = gpu_variant(false);
    let c = conv_case(2, 3, 4, (5, 6), (3, 3), 1, 1);
    let shape = out_shape(c);
    for (i, act) in [Activation::None, Activation::Silu].into_iter().enumerate() {
        let mut rng = Rng::new(1020 + i as u64);
        let inputs = [
            GradInput::new(
                &[c.b, c.cin, c.h, c.w],
                rng.vec(c.b * c.cin * 30, -1.0, 1.0),
                true,
            ),
            GradInput::new(
                &[c.cout, c.cin, 3, 3],
                rng.vec(c.cout * c.cin * 9, -1.0, 1.0),
                true,
            ),
            GradInput::new(&[c.cout], rng.vec(c.cout, -1.0, 1.0), true),
            GradInput::new(&shape, rng.vec(shape.iter().product(), -1.0, 1.0), true),
        ];
        check_vjp_on(
            g,
            &format!("conv + residual {act:?}"),
            &inputs,
            |t| {
                conv2d_with_residual(&t[0], &t[1], Some(&t[2]), conv_opts(c, act), Some(&t[3]))
                    .unwrap()
            },
            |x| {
                let (out, _) = conv_reference(c, &x[0], &x[1], Some(&x[2][..]), act);
                out.iter().zip(&x[3]).map(|(o, r)| o + r).collect()
            },
            1e-5,
            150,
        );
        let dims = [2, 5, 6, 7];
        let [batch, m, n, k] = dims;
        let inputs = [
            GradInput::new(&[batch, m, k], rng.vec(batch * m * k, -1.0, 1.0), true),
            GradInput::new(&[n, k], rng.vec(n * k, -1.0, 1.0), true),
            GradInput::new(&[batch, n, m], rng.vec(batch * n * m, -1.0, 1.0), true),
        ];
        let opts = MatmulOptions {
            trans_b: true,
            trans_out: true,
            activation: act,
            ..Default::default()
        };
        check_vjp_on(
            g,
            &format!("matmul + residual {act:?}"),
            &inputs,
            |t| matmul_with_residual(&t[0], &t[1], None, opts, Some(&t[2])).unwrap(),
            |x| linear_reference(&x[0], &x[1], &vec![0.0; n], &x[2], dims, act, true),
            1e-5,
            150,
        );
    }
}

#[test]
fn a_residual_of_another_shape_is_an_error_naming_both() {
    let g = gpu();
    let t = |s: &[usize]| Tensor::zeros(g, s).unwrap();
    let err = conv2d_with_residual(
        &t(&[1, 2, 5, 5]),
        &t(&[3, 2, 3, 3]),
        None,
        Conv2dOptions {
            padding: 1,
            ..Default::default()
        },
        Some(&t(&[1, 3, 5, 4])),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("residual") && err.contains("[1, 3, 5, 4]") && err.contains("[1, 3, 5, 5]"),
        "{err}"
    );
    let err = matmul_with_residual(
        &t(&[4, 6]),
        &t(&[6, 5]),
        None,
        MatmulOptions {
            trans_out: true,
            ..Default::default()
        },
        Some(&t(&[4, 5])),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("residual") && err.contains("[4, 5]") && err.contains("[5, 4]"),
        "{err}"
    );
}
