//! conv2d (implicit GEMM, both kernel variants) against an f64 direct convolution.
//!
//! Tolerance: the kernels accumulate K = Cin·kh·kw products in f32, in an order that differs from
//! the reference. Each partial-sum rounding errs by at most u·S (u = 2⁻²⁴, S = Σ|w·x| of the
//! output), and these errors add like a random walk, so ~√K·u·S is typical and K·u·S the worst
//! case. We allow 8·√K·u·S_max: many standard deviations of the walk, yet far below any indexing
//! bug (a wrong or missing term errs by ~|w·x| ≈ S/K ≫ √K·u·S for these K). Epilogue
//! activations add their own bound (gelu/silu: 1e-6 absolute, 1e-6 relative, see elementwise.rs).
//! Weights stored as f16/bf16 are compared with the reference computed from the rounded weights,
//! since the kernel widens them exactly.

use half::{bf16, f16};
use iterinv_engine::ops::conv::{conv2d, Conv2dOptions};
use iterinv_engine::{Activation, DType, Gpu, Tensor};

use crate::common::{act64, assert_close, gpu, gpu_variant, Rng};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    pub b: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

/// Direct f64 convolution; also returns max over outputs of Σ|w·x| for the tolerance.
pub(crate) fn reference<T: Copy + Into<f64>>(
    c: Case,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    act: Activation,
) -> (Vec<f64>, f64) {
    let ho = (c.h + 2 * c.pad - c.kh) / c.stride + 1;
    let wo = (c.w + 2 * c.pad - c.kw) / c.stride + 1;
    let mut out = Vec::with_capacity(c.b * c.cout * ho * wo);
    let mut s_max = 0.0f64;
    for b in 0..c.b {
        for m in 0..c.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let (mut acc, mut s) = (0.0f64, 0.0f64);
                    for ci in 0..c.cin {
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                                let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                let xv: f64 = x
                                    [((b * c.cin + ci) * c.h + iy as usize) * c.w + ix as usize]
                                    .into();
                                let wv: f64 = w[((m * c.cin + ci) * c.kh + ky) * c.kw + kx].into();
                                acc += xv * wv;
                                s += (xv * wv).abs();
                            }
                        }
                    }
                    s_max = s_max.max(s);
                    let bv = bias.map_or(0.0, |bs| bs[m].into());
                    out.push(act64(act, acc + bv));
                }
            }
        }
    }
    (out, s_max)
}

/// Upload `data` in `dtype` and return the values as stored (rounded).
pub(crate) fn upload_as(
    gpu: &Gpu,
    shape: &[usize],
    data: &[f32],
    dtype: DType,
) -> (Tensor, Vec<f32>) {
    match dtype {
        DType::F16 => {
            let h: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
            let t = Tensor::from_f16(gpu, shape, &h).unwrap();
            (t, h.iter().map(|v| v.to_f32()).collect())
        }
        DType::BF16 => {
            let h: Vec<bf16> = data.iter().map(|&v| bf16::from_f32(v)).collect();
            let t = Tensor::from_bf16(gpu, shape, &h).unwrap();
            (t, h.iter().map(|v| v.to_f32()).collect())
        }
        _ => (Tensor::from_f32(gpu, shape, data).unwrap(), data.to_vec()),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    gpu: &Gpu,
    rng: &mut Rng,
    c: Case,
    x_dtype: DType,
    w_dtype: DType,
    with_bias: bool,
    act: Activation,
    what: &str,
) {
    let x = rng.vec(c.b * c.cin * c.h * c.w, -1.0, 1.0);
    let w = rng.vec(c.cout * c.cin * c.kh * c.kw, -1.0, 1.0);
    let bias = rng.vec(c.cout, -1.0, 1.0);
    let (tx, x) = upload_as(gpu, &[c.b, c.cin, c.h, c.w], &x, x_dtype);
    let (tw, w) = upload_as(gpu, &[c.cout, c.cin, c.kh, c.kw], &w, w_dtype);
    let tb = Tensor::from_f32(gpu, &[c.cout], &bias).unwrap();
    let opts = Conv2dOptions {
        stride: c.stride,
        padding: c.pad,
        activation: act,
    };
    let out = tx
        .conv2d(&tw, with_bias.then_some(&tb), opts)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let (expected, s_max) = reference(c, &x, &w, with_bias.then_some(&bias[..]), act);
    let ho = (c.h + 2 * c.pad - c.kh) / c.stride + 1;
    let wo = (c.w + 2 * c.pad - c.kw) / c.stride + 1;
    assert_eq!(out.shape(), [c.b, c.cout, ho, wo], "{what}");
    let k = (c.cin * c.kh * c.kw) as f64;
    let atol = 8.0 * k.sqrt() * f32::EPSILON as f64 / 2.0 * s_max + 1e-6;
    let what = format!("{what} {c:?} x {x_dtype:?} w {w_dtype:?} bias {with_bias} {act:?}");
    assert_close(&what, &out, &expected, atol, 1e-6);
}

pub(crate) fn case(
    b: usize,
    cin: usize,
    cout: usize,
    hw: (usize, usize),
    k: (usize, usize),
    stride: usize,
    pad: usize,
) -> Case {
    Case {
        b,
        cin,
        cout,
        h: hw.0,
        w: hw.1,
        kh: k.0,
        kw: k.1,
        stride,
        pad,
    }
}

/// Shapes that divide none of the tiles (64×64×16; 4 or 8 channels × 8 or 16 columns).
pub(crate) fn awkward_cases() -> Vec<Case> {
    vec![
        case(2, 5, 7, (9, 11), (3, 3), 1, 1),
        case(2, 5, 7, (9, 11), (3, 3), 2, 1),
        case(2, 5, 7, (9, 11), (1, 1), 1, 0),
        case(1, 3, 70, (7, 13), (5, 3), 1, 2),
        case(3, 6, 9, (10, 7), (5, 3), 2, 0),
        // No padding and a kernel as large as the input: one output per plane.
        case(2, 4, 5, (3, 3), (3, 3), 1, 0),
        // Cout <= 4 (4-channel blocks in the CPU variant) with rows of 20 columns, and a stride-2
        // row of 19: 16-column blocks, the second partial.
        case(2, 6, 3, (5, 20), (3, 3), 1, 1),
        case(1, 4, 9, (5, 37), (3, 3), 2, 1),
    ]
}

#[test]
fn both_variants_match_reference_on_awkward_shapes() {
    let mut rng = Rng::new(11);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        for (i, c) in awkward_cases().into_iter().enumerate() {
            let what = format!("cpu_kernels {cpu}");
            check(
                g,
                &mut rng,
                c,
                DType::F32,
                DType::F32,
                i % 2 == 0,
                Activation::None,
                &what,
            );
        }
    }
}

#[test]
fn sixteen_bit_weights_and_inputs() {
    let mut rng = Rng::new(12);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        let c = case(2, 5, 7, (9, 11), (3, 3), 1, 1);
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::F16,
            true,
            Activation::None,
            &what,
        );
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::BF16,
            true,
            Activation::None,
            &what,
        );
        let c = case(2, 5, 7, (9, 11), (3, 3), 2, 1);
        check(
            g,
            &mut rng,
            c,
            DType::F16,
            DType::BF16,
            false,
            Activation::None,
            &what,
        );
        check(
            g,
            &mut rng,
            c,
            DType::BF16,
            DType::F16,
            true,
            Activation::None,
            &what,
        );
    }
}

#[test]
fn tile_divisible_shapes_take_the_unchecked_path() {
    // Cout = 64, N = B·Ho·Wo = 128, K = 16·9 = 144 and 32·1: every tile is full, so the GPU
    // variant runs with CHECK_BOUNDS = false (padding checks still apply).
    let mut rng = Rng::new(13);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        let c = case(2, 16, 64, (8, 8), (3, 3), 1, 1);
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::F32,
            true,
            Activation::None,
            &what,
        );
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::F16,
            false,
            Activation::None,
            &what,
        );
        let c = case(2, 32, 128, (8, 8), (1, 1), 1, 0);
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::F32,
            true,
            Activation::None,
            &what,
        );
        let c = case(2, 16, 64, (16, 16), (3, 3), 2, 1);
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::BF16,
            true,
            Activation::None,
            &what,
        );
    }
}

#[test]
fn activation_epilogue() {
    let mut rng = Rng::new(14);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        let c = case(2, 5, 7, (9, 11), (3, 3), 1, 1);
        for act in [Activation::Gelu, Activation::Silu] {
            check(g, &mut rng, c, DType::F32, DType::F32, true, act, &what);
        }
        check(
            g,
            &mut rng,
            c,
            DType::F32,
            DType::F16,
            false,
            Activation::Silu,
            &what,
        );
    }
}

#[test]
fn empty_shapes() {
    let g = gpu();
    let x = Tensor::zeros(g, &[0, 3, 5, 5]).unwrap();
    let w = Tensor::zeros(g, &[4, 3, 3, 3]).unwrap();
    let out = conv2d(&x, &w, None, Conv2dOptions::default()).unwrap();
    assert_eq!(out.shape(), [0, 4, 3, 3]);
    // No input channels: K = 0, the output is the bias alone.
    let x = Tensor::zeros(g, &[1, 0, 4, 4]).unwrap();
    let w = Tensor::zeros(g, &[3, 0, 3, 3]).unwrap();
    let bias = Tensor::from_f32(g, &[3], &[1.0, -2.0, 0.5]).unwrap();
    let out = conv2d(&x, &w, Some(&bias), Conv2dOptions::default()).unwrap();
    let expected: Vec<f64> = [1.0, -2.0, 0.5].iter().flat_map(|&b| [b; 4]).collect();
    assert_close("conv2d with Cin = 0", &out, &expected, 0.0, 0.0);
}

#[test]
fn bad_shapes_are_errors_naming_op_and_shapes() {
    let g = gpu();
    let t = |shape: &[usize]| Tensor::zeros(g, shape).unwrap();
    let x = t(&[2, 5, 9, 11]);
    let w = t(&[7, 5, 3, 3]);
    let opts = Conv2dOptions::default();
    let cases: Vec<(&str, Result<Tensor, _>, Vec<&str>)> = vec![
        (
            "cin mismatch",
            conv2d(&x, &t(&[7, 4, 3, 3]), None, opts),
            vec!["[2, 5, 9, 11]", "[7, 4, 3, 3]"],
        ),
        (
            "x rank",
            conv2d(&t(&[5, 9, 11]), &w, None, opts),
            vec!["[5, 9, 11]"],
        ),
        (
            "w rank",
            conv2d(&x, &t(&[7, 5, 9]), None, opts),
            vec!["[7, 5, 9]"],
        ),
        (
            "kernel larger than padded input",
            conv2d(
                &t(&[1, 5, 2, 11]),
                &t(&[7, 5, 5, 5]),
                None,
                Conv2dOptions { padding: 1, ..opts },
            ),
            vec!["[1, 5, 2, 11]", "[7, 5, 5, 5]", "5×5", "4×13"],
        ),
        (
            "bias shape",
            conv2d(&x, &w, Some(&t(&[5])), opts),
            vec!["[7, 5, 3, 3]", "[5]"],
        ),
        (
            "stride 0",
            conv2d(&x, &w, None, Conv2dOptions { stride: 0, ..opts }),
            vec!["stride"],
        ),
        (
            "integer input",
            conv2d(
                &Tensor::from_i32(g, &[1, 1, 1, 1], &[1]).unwrap(),
                &t(&[1, 1, 1, 1]),
                None,
                opts,
            ),
            vec!["i32"],
        ),
    ];
    for (name, res, needles) in cases {
        let msg = match res {
            Ok(o) => panic!("{name}: expected an error, got shape {:?}", o.shape()),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains("conv2d"), "{name}: {msg}");
        for n in needles {
            assert!(msg.contains(n), "{name}: {msg:?} does not mention {n}");
        }
    }
}

#[test]
fn long_reductions_are_split_under_the_cpu_loop_cap() {
    // lavapipe silently ends an invocation's loops after 65535 iterations in all. Cin = 20000 with
    // a 3×3 kernel is 20000·(1 + 3·(1 + 3)) = 260k loop iterations in the direct kernel counted
    // unrolled-free, about 70k even with the kx loops unrolled (measured: 16000 channels already
    // came back wrong before the split), and 20000·9/16·25 = 281k in the tiled one: both must be
    // split over dispatches, the bias and activation applied once after the last.
    let mut rng = Rng::new(15);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let what = format!("cpu_kernels {cpu}");
        for c in [
            case(1, 20000, 5, (3, 4), (3, 3), 1, 1),
            case(1, 20000, 6, (4, 3), (3, 3), 2, 1),
        ] {
            check(
                g,
                &mut rng,
                c,
                DType::F32,
                DType::F32,
                true,
                Activation::Silu,
                &what,
            );
        }
    }
}
