//! Backward rule of conv2d (dX, dW, dbias, the activation epilogue) against finite differences of
//! the f64 reference of conv.rs, for both kernel variants; pruning; lavapipe's loop cap.
//!
//! Tolerance (unless a test says otherwise): 1e-5 of the largest gradient magnitude of the input.
//! Each gradient element is an f32 sum of at most ~200 products here (dX: Cout·taps ≤ 7·15,
//! dW: B·Ho·Wo ≤ 198), whose rounding errs by ~√K·2⁻²⁴ ≈ 1e-6 of the terms' scale, ~10× below;
//! the finite differences (central, h = 1e-4, in f64) are exact up to ~1e-12 for the bilinear
//! convolution and ~h²·f‴ ≈ 1e-8 through an activation. A wrong or missing tap errs by a whole
//! product, ≥ 1e-2 of the scale.

use half::f16;
use iterinv_engine::ops::conv::{conv2d, Conv2dOptions};
use iterinv_engine::{Activation, DType, Gpu, GpuOptions, Tensor};

use crate::common::{check_vjp_on, gpu, gpu_variant, wide_tiles_gpu, GradInput, Rng};
use crate::conv::{case, reference, upload_as, Case};

const RTOL: f64 = 1e-5;

fn opts(c: Case, act: Activation) -> Conv2dOptions {
    Conv2dOptions {
        stride: c.stride,
        padding: c.pad,
        activation: act,
    }
}

/// check_vjp of conv2d on `g` with x, w and (if `bias`) bias, each checked where `wrt` says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    g: &Gpu,
    rng: &mut Rng,
    c: Case,
    bias: bool,
    wrt: [bool; 3],
    act: Activation,
    max_elems: usize,
    what: &str,
) {
    let mut inputs = vec![
        GradInput::new(
            &[c.b, c.cin, c.h, c.w],
            rng.vec(c.b * c.cin * c.h * c.w, -1.0, 1.0),
            wrt[0],
        ),
        GradInput::new(
            &[c.cout, c.cin, c.kh, c.kw],
            rng.vec(c.cout * c.cin * c.kh * c.kw, -1.0, 1.0),
            wrt[1],
        ),
    ];
    if bias {
        inputs.push(GradInput::new(
            &[c.cout],
            rng.vec(c.cout, -1.0, 1.0),
            wrt[2],
        ));
    }
    check_vjp_on(
        g,
        &format!("{what} {c:?} bias {bias} wrt {wrt:?} {act:?}"),
        &inputs,
        |t| conv2d(&t[0], &t[1], t.get(2), opts(c, act)).unwrap(),
        |x| reference(c, &x[0], &x[1], x.get(2).map(|v| &v[..]), act).0,
        RTOL,
        max_elems,
    );
}

/// The brief's shapes: B2 Cin5 Cout7 9×11, none dividing any tile.
pub(crate) fn awkward_cases() -> Vec<Case> {
    vec![
        case(2, 5, 7, (9, 11), (3, 3), 1, 1),
        case(2, 5, 7, (9, 11), (3, 3), 2, 1),
        case(2, 5, 7, (9, 11), (1, 1), 1, 0),
        case(2, 5, 7, (9, 11), (5, 3), 2, 0),
    ]
}

#[test]
fn input_weight_and_bias_gradients_on_awkward_shapes() {
    let mut rng = Rng::new(300);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        for c in awkward_cases() {
            check(
                g,
                &mut rng,
                c,
                true,
                [true; 3],
                Activation::None,
                150,
                &format!("cpu_kernels {cpu}"),
            );
        }
    }
}

#[test]
fn phases_without_taps_padding_beyond_the_kernel_and_partial_blocks() {
    let mut rng = Rng::new(301);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        for c in [
            // 1×1 stride 2: odd rows and columns of x get no tap (a zero gradient).
            case(2, 5, 7, (9, 11), (1, 1), 2, 0),
            // Padding larger than the kernel: outputs read only padding.
            case(1, 3, 4, (5, 6), (1, 1), 1, 1),
            // Stride 3 (9 phases), a kernel as large as the padded input.
            case(2, 3, 5, (8, 7), (3, 3), 3, 1),
            case(1, 2, 3, (3, 3), (5, 5), 1, 1),
            // Rows of 20 and 37 columns: 16-column blocks of the direct kernels, the last partial;
            // Cin 9 > 8 and Cout 3 <= 4 take the other block shapes.
            case(1, 9, 3, (4, 20), (3, 3), 1, 1),
            case(1, 4, 9, (3, 37), (3, 3), 2, 1),
        ] {
            check(
                g,
                &mut rng,
                c,
                true,
                [true; 3],
                Activation::None,
                150,
                &what,
            );
        }
    }
}

#[test]
fn each_gradient_alone_and_without_bias() {
    let mut rng = Rng::new(302);
    let c = case(2, 5, 7, (9, 11), (3, 3), 2, 1);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        for (bias, wrt) in [
            (false, [true, true, false]),
            (true, [true, false, false]),
            (true, [false, true, false]),
            (true, [false, false, true]),
            (false, [false, true, false]),
        ] {
            check(g, &mut rng, c, bias, wrt, Activation::None, 150, &what);
        }
    }
}

#[test]
fn activation_epilogue_is_recorded_as_its_own_op() {
    let mut rng = Rng::new(303);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        for (c, act) in [
            (case(2, 5, 7, (9, 11), (3, 3), 1, 1), Activation::Silu),
            (case(2, 5, 7, (9, 11), (3, 3), 2, 1), Activation::Gelu),
        ] {
            check(g, &mut rng, c, true, [true; 3], act, 150, &what);
        }
    }
}

#[test]
fn sixteen_bit_weights() {
    // The weights enter the input gradient as stored: the reference uses the rounded values, so
    // the tolerance is the f32 one.
    let mut rng = Rng::new(304);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        for (dtype, c) in [
            (DType::F16, case(2, 5, 7, (9, 11), (3, 3), 1, 1)),
            (DType::F16, case(2, 5, 7, (9, 11), (5, 3), 2, 0)),
            (DType::BF16, case(2, 5, 7, (9, 11), (3, 3), 2, 1)),
        ] {
            let shape = [c.cout, c.cin, c.kh, c.kw];
            let raw = rng.vec(shape.iter().product(), -1.0, 1.0);
            let (tw, rounded) = upload_as(g, &shape, &raw, dtype);
            let inputs = [
                GradInput::new(
                    &[c.b, c.cin, c.h, c.w],
                    rng.vec(c.b * c.cin * c.h * c.w, -1.0, 1.0),
                    true,
                ),
                // Not differentiated: the op reads the 16-bit copy `tw` instead.
                GradInput::new(&shape, rounded, false),
                GradInput::new(&[c.cout], rng.vec(c.cout, -1.0, 1.0), true),
            ];
            check_vjp_on(
                g,
                &format!("cpu_kernels {cpu} {dtype:?} weights {c:?}"),
                &inputs,
                |t| conv2d(&t[0], &tw, Some(&t[2]), opts(c, Activation::Silu)).unwrap(),
                |x| reference(c, &x[0], &x[1], Some(&x[2]), Activation::Silu).0,
                RTOL,
                150,
            );
        }
    }
}

/// Kernel dispatches of the weight and bias gradients.
fn weight_and_bias_dispatches(g: &Gpu) -> u64 {
    [
        "conv2d_grad_weight_tiled",
        "conv2d_grad_weight_direct",
        "reduce_sum",
    ]
    .iter()
    .map(|k| g.kernel_dispatches(k))
    .sum()
}

#[test]
fn asking_for_the_input_gradient_launches_no_weight_or_bias_kernel() {
    let mut rng = Rng::new(305);
    for cpu in [true, false] {
        // A device of its own: the shared ones count other tests' dispatches concurrently.
        let g = Gpu::with_options(GpuOptions {
            poison: true,
            cpu_kernels: Some(cpu),
            ..Default::default()
        })
        .unwrap();
        let c = case(2, 5, 7, (9, 11), (3, 3), 2, 1);
        let x = Tensor::from_f32(&g, &[2, 5, 9, 11], &rng.vec(990, -1.0, 1.0))
            .unwrap()
            .requires_grad();
        let w = Tensor::from_f32(&g, &[7, 5, 3, 3], &rng.vec(315, -1.0, 1.0)).unwrap();
        let b = Tensor::from_f32(&g, &[7], &rng.vec(7, -1.0, 1.0)).unwrap();
        let input_kernel = if cpu {
            "conv2d_grad_input_direct"
        } else {
            "conv2d_grad_input_tiled"
        };
        // Constant weights (inversion) and tracked weights not asked for.
        let (wt, bt) = (w.requires_grad(), b.requires_grad());
        for (w, b) in [(&w, &b), (&wt, &bt)] {
            let y = conv2d(&x, w, Some(b), opts(c, Activation::Silu)).unwrap();
            let cot = Tensor::full(&g, y.shape(), 1.0).unwrap();
            let before = g.kernel_dispatches(input_kernel);
            let dx = iterinv_engine::grad::grad(&[&y], &[&cot], &[&x]).unwrap();
            assert_eq!(dx[0].shape(), x.shape());
            // Stride 2: one dispatch per phase.
            assert_eq!(g.kernel_dispatches(input_kernel) - before, 4);
            assert_eq!(
                weight_and_bias_dispatches(&g),
                0,
                "cpu_kernels {cpu}: a weight or bias gradient kernel ran"
            );
        }
        // Asking for dW does launch its kernel (the count above can see it).
        let y = conv2d(&x, &wt, Some(&bt), opts(c, Activation::None)).unwrap();
        let cot = Tensor::full(&g, y.shape(), 1.0).unwrap();
        iterinv_engine::grad::grad(&[&y], &[&cot], &[&wt]).unwrap();
        assert!(weight_and_bias_dispatches(&g) > 0);
    }
}

#[test]
fn long_reductions_are_split_under_the_cpu_loop_cap() {
    // lavapipe silently ends an invocation's loops after 65535 iterations in all. dX: Cout = 20000
    // is ≥ 20000 co-loop iterations per invocation (4 each with the kx loop unrolled, 13 without)
    // and 20000·9/16 K-tiles of ≥ 1 (25 not unrolled) in the tiled kernel. dW: K = B·Ho·Wo =
    // 2·200·200 = 80000, one iteration each in the direct kernel. Both must be split into
    // accumulating dispatches. Tolerance: dX sums 180000 products and dW 80000, so f32 rounding
    // (~√K·2⁻²⁴ relative to the terms, with |terms| ≤ 1 and gradients ~√K) reaches ~3e-5 of the
    // gradient scale; 2e-4 still catches a single dropped dispatch (≥ 1/4 of the sum).
    let mut rng = Rng::new(306);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        let c = case(1, 2, 20000, (2, 3), (3, 3), 1, 1);
        let inputs = [
            GradInput::new(&[1, 2, 2, 3], rng.vec(12, -1.0, 1.0), true),
            GradInput::new(&[20000, 2, 3, 3], rng.vec(360000, -1.0, 1.0), false),
        ];
        check_vjp_on(
            g,
            &format!("{what} dX {c:?}"),
            &inputs,
            |t| conv2d(&t[0], &t[1], None, opts(c, Activation::None)).unwrap(),
            |x| reference(c, &x[0], &x[1], None, Activation::None).0,
            2e-4,
            12,
        );
        let c = case(2, 1, 2, (200, 200), (3, 3), 1, 1);
        let inputs = [
            GradInput::new(&[2, 1, 200, 200], rng.vec(80000, -1.0, 1.0), false),
            GradInput::new(&[2, 1, 3, 3], rng.vec(18, -1.0, 1.0), true),
            GradInput::new(&[2], rng.vec(2, -1.0, 1.0), true),
        ];
        check_vjp_on(
            g,
            &format!("{what} dW {c:?}"),
            &inputs,
            |t| conv2d(&t[0], &t[1], Some(&t[2]), opts(c, Activation::None)).unwrap(),
            |x| reference(c, &x[0], &x[1], Some(&x[2]), Activation::None).0,
            2e-4,
            20,
        );
    }
}

#[test]
fn tracked_inputs_with_bad_shapes_are_errors() {
    let g = gpu();
    let x = Tensor::zeros(g, &[2, 5, 9, 11]).unwrap().requires_grad();
    let w = Tensor::zeros(g, &[7, 4, 3, 3]).unwrap().requires_grad();
    for act in [Activation::None, Activation::Silu] {
        let err = conv2d(
            &x,
            &w,
            None,
            Conv2dOptions {
                activation: act,
                ..Default::default()
            },
        )
        .map(|t| t.shape().to_vec())
        .expect_err("mismatched channels must be an error");
        let msg = err.to_string();
        assert!(
            msg.contains("conv2d") && msg.contains("[2, 5, 9, 11]") && msg.contains("[7, 4, 3, 3]"),
            "{msg}"
        );
    }
}

/// Rough timing of the forward and of dX for B2 256→256 64×64 3×3, f16 weights, on the default
/// device (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn timing_input_gradient() {
    let g = gpu();
    let mut rng = Rng::new(307);
    let x = Tensor::from_f32(g, &[2, 256, 64, 64], &rng.vec(2 * 256 * 4096, -1.0, 1.0))
        .unwrap()
        .requires_grad();
    let wv: Vec<f16> = rng
        .vec(256 * 256 * 9, -0.1, 0.1)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let w = Tensor::from_f16(g, &[256, 256, 3, 3], &wv).unwrap();
    for stride in [1, 2] {
        let c = case(2, 256, 256, (64, 64), (3, 3), stride, 1);
        let flops = |n: usize| 2.0 * (2 * 256 * n) as f64 * (256 * 9) as f64;
        let time = |f: &dyn Fn() -> Tensor| {
            let _ = f();
            g.synchronize().unwrap();
            let t = std::time::Instant::now();
            let _ = f();
            g.synchronize().unwrap();
            t.elapsed().as_secs_f64()
        };
        let y = conv2d(&x, &w, None, opts(c, Activation::None)).unwrap();
        let cot = Tensor::full(g, y.shape(), 1.0).unwrap();
        let fwd = time(&|| conv2d(&x.detach(), &w, None, opts(c, Activation::None)).unwrap());
        let dx = time(&|| {
            let y = conv2d(&x, &w, None, opts(c, Activation::None)).unwrap();
            g.synchronize().unwrap();
            let t = std::time::Instant::now();
            let d = iterinv_engine::grad::grad(&[&y], &[&cot], &[&x]).unwrap();
            g.synchronize().unwrap();
            println!("  dX alone {:.3} s", t.elapsed().as_secs_f64());
            d[0].clone()
        });
        let n = y.shape()[2] * y.shape()[3];
        println!(
            "{} stride {stride}: forward {fwd:.3} s ({:.2} GFLOP/s); forward + dX {dx:.3} s",
            g.info().adapter.name,
            flops(n) / fwd / 1e9,
        );
    }
}

/// The tiled kernels' wide register blocks (128 × 128 tiles, taken where both sides of a GEMM
/// reach 256) in all three convolution GEMMs: the forward (M = Cout 260, N = 272 pixels), the
/// input gradient (M = Cin 264) and the weight gradient (N = Cin·9): the forward against the f64
/// reference everywhere, the gradients against its finite differences at 8 elements each.
#[test]
fn wide_register_blocks_in_every_conv_gemm() {
    let mut rng = Rng::new(1030);
    let c = case(1, 264, 260, (16, 17), (3, 3), 1, 1);
    check(
        &wide_tiles_gpu(false),
        &mut rng,
        c,
        true,
        [true, true, true],
        Activation::None,
        8,
        "wide tiles",
    );
}
