//! Backward rules of group norm (every optional input, each activation, split rows), layer norm
//! and RMS norm against finite differences of the f64 references of the forward tests.
//!
//! Tolerance, relative to the largest gradient of each input (see `check_vjp`): the kernels
//! accumulate in f32. ∂L/∂x = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) cancels terms of the size of
//! the largest gradient, each carrying the statistics' error (≲ 5e-6 relative worst case, see
//! norm.rs; ~1e-7 typical) and the sums' (≤ n/WG serial terms + 8 tree levels per workgroup, a
//! few 1e-7 relative to Σ|terms| typical). Parameter gradients are sums of up to 33,800 products:
//! ≤ 66 serial terms + 8 tree levels + the sum over samples, again ~1e-6. Measured worst: 1.5e-6
//! (rows of two elements, [3, 10] / 5 groups), 3e-7 on the 33,800-element rows; hence 1e-5.
//! A wrong term (a dropped mean(dx̂), a missing (1 + scale)) is off by O(1) of the scale.
//! Finite differences (h = 1e-4 in f64) contribute < 1e-8.

use iterinv_engine::grad::grad;
use iterinv_engine::ops::norm::{group_norm, layer_norm, rms_norm, GroupNormArgs, ScaleShift};
use iterinv_engine::{Activation, Gpu, GpuOptions, Tensor};

use crate::common::{assert_close, check_vjp, check_vjp_on, gpu, reduction_device, GradInput, Rng};
use crate::norm::{group_norm_ref, rows_ref, GnRef};

const RTOL: f64 = 1e-5;

/// Which optional inputs a group norm case has.
#[derive(Clone, Copy, Debug)]
struct Opts {
    gamma: bool,
    beta: bool,
    ss: bool,
    act: Activation,
}

/// check_vjp of group norm on x of `shape` with `groups` groups, every present input checked.
fn check_group_norm(rng: &mut Rng, shape: &[usize], groups: usize, o: Opts, max_elems: usize) {
    let (b, c) = (shape[0], shape[1]);
    let n: usize = shape.iter().product();
    let mut inputs = vec![GradInput::new(shape, rng.vec(n, -3.0, 5.0), true)];
    if o.gamma {
        inputs.push(GradInput::new(&[c], rng.vec(c, 0.5, 1.5), true));
    }
    if o.beta {
        inputs.push(GradInput::new(&[c], rng.vec(c, -1.0, 1.0), true));
    }
    if o.ss {
        // Scale as [B, C, 1, 1] (trailing ones), shift as [B, C].
        inputs.push(GradInput::new(
            &[b, c, 1, 1],
            rng.vec(b * c, -0.5, 0.5),
            true,
        ));
        inputs.push(GradInput::new(&[b, c], rng.vec(b * c, -1.0, 1.0), true));
    }
    let eps = 1e-5;
    check_vjp(
        &format!("group_norm {shape:?} / {groups} {o:?}"),
        &inputs,
        |t| {
            let mut k = 1;
            let mut next = |present: bool| {
                present.then(|| {
                    k += 1;
                    &t[k - 1]
                })
            };
            let gamma = next(o.gamma);
            let beta = next(o.beta);
            let scale = next(o.ss);
            let shift = next(o.ss);
            let args = GroupNormArgs {
                gamma,
                beta,
                scale_shift: scale.zip(shift).map(|(s, h)| ScaleShift::Separate(s, h)),
                activation: o.act,
                ..GroupNormArgs::new(groups, eps)
            };
            group_norm(&t[0], &args).unwrap()
        },
        |x| {
            let mut k = 1;
            let mut next = |present: bool| {
                present.then(|| {
                    k += 1;
                    &x[k - 1][..]
                })
            };
            let gamma = next(o.gamma);
            let beta = next(o.beta);
            let scale = next(o.ss);
            let shift = next(o.ss);
            group_norm_ref(
                &x[0],
                shape,
                &GnRef {
                    groups,
                    eps: eps as f64,
                    gamma,
                    beta,
                    ss: scale.zip(shift),
                    act: o.act,
                },
            )
        },
        RTOL,
        max_elems,
    );
}

#[test]
fn group_norm_every_combination_of_optional_inputs() {
    let mut rng = Rng::new(300);
    for act in [Activation::None, Activation::Silu, Activation::Gelu] {
        for (gamma, beta) in [(false, false), (true, true), (true, false), (false, true)] {
            for ss in [false, true] {
                let o = Opts {
                    gamma,
                    beta,
                    ss,
                    act,
                };
                check_group_norm(&mut rng, &[2, 6, 5, 7], 3, o, 70);
            }
        }
    }
}

#[test]
fn group_norm_rank_three_and_other_activations() {
    let mut rng = Rng::new(301);
    let all = |act| Opts {
        gamma: true,
        beta: true,
        ss: true,
        act,
    };
    check_group_norm(&mut rng, &[2, 8, 9], 4, all(Activation::Silu), 150);
    check_group_norm(&mut rng, &[2, 8, 9], 4, all(Activation::GeluTanh), 150);
    // Relu's kink: with this seed no z lies within the finite-difference step of 0.
    check_group_norm(&mut rng, &[3, 4, 11], 2, all(Activation::Relu), 150);
    // No spatial dims: one element per channel.
    check_group_norm(&mut rng, &[3, 10], 5, all(Activation::Gelu), 150);
    // Its own seed, so the cases above keep the samples their tolerances were checked on.
    let mut rng = Rng::new(302);
    check_group_norm(&mut rng, &[2, 8, 9], 4, all(Activation::QuickGelu), 150);
}

#[test]
fn group_norm_rows_split_over_workgroups() {
    // Rows of 2·130·130 = 33,800 elements: three splits (norm_stats + norm_grad_sums + norm_grad),
    // and channels of 16,900 elements reduced by a workgroup each for the parameter gradients.
    let mut rng = Rng::new(302);
    let o = Opts {
        gamma: true,
        beta: true,
        ss: true,
        act: Activation::Gelu,
    };
    check_group_norm(&mut rng, &[1, 2, 130, 130], 1, o, 40);
}

/// Scale and shift packed in one `[B, 2C]` tensor (a time-embedding projection's output, read
/// in place): its gradient is the two halves' side by side, on rows one workgroup takes and on
/// split rows.
#[test]
fn group_norm_packed_scale_shift() {
    let mut rng = Rng::new(303);
    for (shape, groups, max_elems) in [(&[2, 6, 5, 7][..], 3, 150), (&[2, 4, 127, 81], 2, 40)] {
        let what = format!("group_norm {shape:?} / {groups}, packed scale and shift");
        check_packed(
            gpu(),
            &mut rng,
            shape,
            groups,
            Activation::Silu,
            max_elems,
            &what,
        );
    }
}

/// check_vjp on `g` of group norm with γ, β and scale/shift packed in one `[B, 2C]` tensor, then
/// `act`, every input tracked.
fn check_packed(
    g: &Gpu,
    rng: &mut Rng,
    shape: &[usize],
    groups: usize,
    act: Activation,
    max_elems: usize,
    what: &str,
) {
    let (b, c) = (shape[0], shape[1]);
    let n: usize = shape.iter().product();
    let inputs = [
        GradInput::new(shape, rng.vec(n, -3.0, 5.0), true),
        GradInput::new(&[c], rng.vec(c, 0.5, 1.5), true),
        GradInput::new(&[c], rng.vec(c, -1.0, 1.0), true),
        GradInput::new(&[b, 2 * c], rng.vec(2 * b * c, -0.5, 0.5), true),
    ];
    check_vjp_on(
        g,
        what,
        &inputs,
        |t| {
            let args = GroupNormArgs {
                gamma: Some(&t[1]),
                beta: Some(&t[2]),
                scale_shift: Some(ScaleShift::Packed(&t[3])),
                activation: act,
                ..GroupNormArgs::new(groups, 1e-5)
            };
            group_norm(&t[0], &args).unwrap()
        },
        |x| {
            // Rows of [scale | shift], C each.
            let half = |k: usize| -> Vec<f64> {
                x[3].chunks(c)
                    .skip(k)
                    .step_by(2)
                    .flatten()
                    .copied()
                    .collect()
            };
            let (scale, shift) = (half(0), half(1));
            group_norm_ref(
                &x[0],
                shape,
                &GnRef {
                    groups,
                    eps: 1e-5,
                    gamma: Some(&x[1]),
                    beta: Some(&x[2]),
                    ss: Some((&scale, &shift)),
                    act,
                },
            )
        },
        RTOL,
        max_elems,
    );
}

/// check_vjp of layer norm (rms = false) or RMS norm over rows of `n`, with or without weights.
fn check_rows(rng: &mut Rng, lead: &[usize], n: usize, weights: bool, rms: bool, eps: f32) {
    let mut shape = lead.to_vec();
    shape.push(n);
    let numel: usize = shape.iter().product();
    // A layer-norm row of one is 0 after centring, so ∂L/∂x is exactly 0 and check_vjp's scale
    // would be its floor (1e-6): checked separately below.
    let x_checked = rms || n > 1;
    let xv = rng.vec(numel, -2.0, 3.0);
    let mut inputs = vec![GradInput::new(&shape, xv.clone(), x_checked)];
    if weights {
        inputs.push(GradInput::new(&[n], rng.vec(n, 0.5, 1.5), true));
        if !rms {
            inputs.push(GradInput::new(&[n], rng.vec(n, -1.0, 1.0), true));
        }
    }
    let what = if rms { "rms_norm" } else { "layer_norm" };
    // (A row of one without weights leaves nothing for check_vjp.)
    if inputs.iter().any(|i| i.wrt) {
        check_vjp(
            &format!("{what} {shape:?} weights {weights}"),
            &inputs,
            |t| {
                if rms {
                    rms_norm(&t[0], t.get(1), eps).unwrap()
                } else {
                    layer_norm(&t[0], t.get(1), t.get(2), eps).unwrap()
                }
            },
            |x| {
                let w = |k: usize| x.get(k).map(|v| &v[..]);
                rows_ref(&x[0], n, w(1), w(2), eps as f64, rms)
            },
            RTOL,
            120,
        );
    }
    if !x_checked {
        let gpu = crate::common::gpu();
        let x = Tensor::from_f32(gpu, &shape, &xv).unwrap().requires_grad();
        let gamma = weights.then(|| Tensor::from_f32(gpu, &[1], &inputs[1].data).unwrap());
        let y = layer_norm(&x, gamma.as_ref(), None, eps).unwrap();
        let cot = Tensor::from_f32(gpu, &shape, &rng.vec(numel, -1.0, 1.0)).unwrap();
        let dx = grad(&[&y], &[&cot], &[&x]).unwrap();
        // The kernel forms 0 as rstd·(dx̂ − Σdx̂) with rstd = 1/√eps ≈ 316; a GPU may contract the
        // sum's product g·γ into an FMA that the elementwise pass rounds (seen on an H100): one
        // ulp of |g·γ| ≤ 1.5, i.e. ≤ 1.8e-7, times 316 ≤ 5.7e-5. Exact on lavapipe.
        assert_close(
            "layer_norm row of one: dx",
            &dx[0],
            &vec![0.0; numel],
            1e-4,
            0.0,
        );
    }
}

#[test]
fn layer_norm_rows_of_1_7_and_300() {
    let mut rng = Rng::new(303);
    for n in [1, 7, 300] {
        for weights in [false, true] {
            check_rows(&mut rng, &[2, 3], n, weights, false, 1e-5);
        }
    }
}

#[test]
fn rms_norm_rows_of_1_7_and_300() {
    let mut rng = Rng::new(304);
    for n in [1, 7, 300] {
        // A row of one has no direction but x's, along which the gradient is eps·rstd³ — tiny for a
        // small eps, so check_vjp's scale would be that cancellation residue: use a large eps there.
        let eps = if n == 1 { 0.5 } else { 1e-6 };
        for weights in [false, true] {
            check_rows(&mut rng, &[5], n, weights, true, eps);
        }
    }
}

#[test]
fn empty_inputs_give_empty_gradients() {
    let gpu = crate::common::gpu();
    let x = Tensor::from_f32(gpu, &[0, 4, 3], &[])
        .unwrap()
        .requires_grad();
    let gamma = Tensor::from_f32(gpu, &[4], &[1.0; 4])
        .unwrap()
        .requires_grad();
    let args = GroupNormArgs {
        gamma: Some(&gamma),
        ..GroupNormArgs::new(2, 1e-5)
    };
    let y = group_norm(&x, &args).unwrap();
    let cot = Tensor::from_f32(gpu, &[0, 4, 3], &[]).unwrap();
    let g = grad(&[&y], &[&cot], &[&x, &gamma]).unwrap();
    assert_eq!(g[0].shape(), [0, 4, 3]);
    assert_close("empty dgamma", &g[1], &[0.0; 4], 0.0, 0.0);
    let x = Tensor::from_f32(gpu, &[3, 0], &[]).unwrap().requires_grad();
    let y = x.layer_norm(None, None, 1e-5).unwrap();
    let cot = Tensor::from_f32(gpu, &[3, 0], &[]).unwrap();
    assert_eq!(grad(&[&y], &[&cot], &[&x]).unwrap()[0].shape(), [3, 0]);
}

fn upload16(gpu: &Gpu, shape: &[usize], v: &[f32]) -> (Tensor, Vec<f32>) {
    let h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
    let exact: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
    (Tensor::from_f16(gpu, shape, &h).unwrap(), exact)
}

#[test]
fn half_weights_give_the_gradients_of_their_values() {
    // f16 gamma/beta/scale/shift and a bf16 x go through the kernels' loaders: the gradients must
    // be those of the f32 copies of the same values (same arithmetic: equal up to rounding order).
    let gpu = crate::common::gpu();
    let mut rng = Rng::new(305);
    let shape = [2, 6, 5, 7];
    let xv: Vec<f32> = rng
        .vec(420, -3.0, 5.0)
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    let xb: Vec<half::bf16> = xv.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let (g16, gv) = upload16(gpu, &[6], &rng.vec(6, 0.5, 1.5));
    let (b16, bv) = upload16(gpu, &[6], &rng.vec(6, -1.0, 1.0));
    let (s16, sv) = upload16(gpu, &[2, 6], &rng.vec(12, -0.5, 0.5));
    let (h16, hv) = upload16(gpu, &[2, 6], &rng.vec(12, -1.0, 1.0));
    let cot = Tensor::from_f32(gpu, &shape, &rng.vec(420, -1.0, 1.0)).unwrap();
    let grads = |t: [Tensor; 5]| {
        let t: Vec<Tensor> = t.iter().map(|t| t.requires_grad()).collect();
        let args = GroupNormArgs {
            gamma: Some(&t[1]),
            beta: Some(&t[2]),
            scale_shift: Some(ScaleShift::Separate(&t[3], &t[4])),
            activation: Activation::Silu,
            ..GroupNormArgs::new(3, 1e-5)
        };
        let y = group_norm(&t[0], &args).unwrap();
        let wrt: Vec<&Tensor> = t.iter().collect();
        grad(&[&y], &[&cot], &wrt).unwrap()
    };
    let f32s = |s: &[usize], v: &[f32]| Tensor::from_f32(gpu, s, v).unwrap();
    let half = grads([
        Tensor::from_bf16(gpu, &shape, &xb).unwrap(),
        g16,
        b16,
        s16,
        h16,
    ]);
    let full = grads([
        f32s(&shape, &xv),
        f32s(&[6], &gv),
        f32s(&[6], &bv),
        f32s(&[2, 6], &sv),
        f32s(&[2, 6], &hv),
    ]);
    for (k, (h, f)) in half.iter().zip(&full).enumerate() {
        let expected: Vec<f64> = f.to_vec().unwrap().iter().map(|&v| v as f64).collect();
        // Identical inputs and operations: any difference would be a loader bug.
        assert_close(
            &format!("gradient {k} from 16-bit storage"),
            h,
            &expected,
            0.0,
            0.0,
        );
    }
}

#[test]
fn asking_for_x_only_launches_no_parameter_kernel() {
    // A device of its own: the dispatch counters must not see other tests' kernels.
    let gpu = Gpu::with_options(GpuOptions {
        poison: true,
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng::new(306);
    let mut t = |shape: &[usize]| {
        let n = shape.iter().product();
        Tensor::from_f32(&gpu, shape, &rng.vec(n, -1.0, 1.0))
            .unwrap()
            .requires_grad()
    };
    let (x, gamma, beta, scale, shift) =
        (t(&[2, 6, 5, 7]), t(&[6]), t(&[6]), t(&[2, 6]), t(&[2, 6]));
    let cot = t(&[2, 6, 5, 7]);
    let run = |wrt: &[&Tensor]| {
        let args = GroupNormArgs {
            gamma: Some(&gamma),
            beta: Some(&beta),
            scale_shift: Some(ScaleShift::Separate(&scale, &shift)),
            activation: Activation::Silu,
            ..GroupNormArgs::new(3, 1e-5)
        };
        let y = group_norm(&x, &args).unwrap();
        let count = |k: &&str| dispatches(&gpu, k);
        let names = [
            "norm_grad",
            "norm_grad_sums",
            "norm_grad_params",
            "norm_stats",
        ];
        let before: Vec<u64> = names.iter().map(count).collect();
        grad(&[&y], &[&cot], wrt).unwrap();
        let after: Vec<u64> = names.iter().map(count).collect();
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect::<Vec<u64>>()
    };
    // ∂L/∂x alone: one fused dispatch, no statistics pass, no parameter kernel.
    assert_eq!(run(&[&x]), [1, 0, 0, 0]);
    // A parameter alone: statistics + parameter sums, no ∂L/∂x kernel.
    assert_eq!(run(&[&gamma]), [0, 0, 1, 1]);
    assert_eq!(run(&[&shift]), [0, 0, 1, 1]);
    // Everything: both.
    assert_eq!(run(&[&x, &gamma, &beta, &scale, &shift]), [1, 0, 1, 1]);

    // Rows of 33,800 elements: ∂L/∂x takes the split path, still with no parameter kernel.
    let x = t(&[1, 2, 130, 130]);
    let cot = t(&[1, 2, 130, 130]);
    let y = x.group_norm(&GroupNormArgs::new(1, 1e-5)).unwrap();
    let before = dispatches(&gpu, "norm_grad_params");
    let splits = [
        dispatches(&gpu, "norm_stats"),
        dispatches(&gpu, "norm_grad_sums"),
    ];
    grad(&[&y], &[&cot], &[&x]).unwrap();
    assert_eq!(dispatches(&gpu, "norm_grad_params"), before);
    assert_eq!(dispatches(&gpu, "norm_stats"), splits[0] + 1);
    assert_eq!(dispatches(&gpu, "norm_grad_sums"), splits[1] + 1);
}

/// Dispatches of `kernel` in either reduction variant (workgroup trees or subgroups).
fn dispatches(gpu: &Gpu, kernel: &str) -> u64 {
    gpu.kernel_dispatches(kernel) + gpu.kernel_dispatches(&format!("{kernel}_subgroup"))
}

/// The backward kernels on both variants of the row-reduction template: workgroup-memory trees
/// (forced) and subgroup operations (where the adapter has them; lavapipe does), on rows one
/// workgroup takes and on split rows, every parameter's gradient.
#[test]
fn both_reduction_variants_give_the_gradients() {
    let mut rng = Rng::new(307);
    for subgroups in [false, true] {
        let g = reduction_device(subgroups);
        for (shape, groups) in [(&[2, 6, 5, 7][..], 3), (&[1, 2, 130, 130], 1)] {
            let what = format!("group_norm {shape:?} (subgroups {subgroups})");
            check_packed(&g, &mut rng, shape, groups, Activation::Gelu, 60, &what);
        }
        let ran = g.kernel_dispatches("norm_grad_subgroup")
            + g.kernel_dispatches("norm_grad_params_subgroup");
        assert_eq!(
            ran > 0,
            subgroups && g.caps().subgroups,
            "subgroups {subgroups}"
        );
    }
}

#[test]
fn channels_too_long_for_a_loop_cap_are_errors() {
    // The parameter gradients loop over a channel's elements in each invocation. With a forced cap
    // of 600 (half kept as margin), 90,000-element channels need 6 + 352 + 8 = 366 iterations: the
    // γ gradient is refused, while x's gradient (chunks of 15,000) still runs.
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        max_loop_iterations: Some(600),
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng::new(320);
    let x = Tensor::from_f32(&g, &[1, 1, 300, 300], &rng.vec(90_000, -1.0, 1.0))
        .unwrap()
        .requires_grad();
    let gamma = Tensor::full(&g, &[1], 1.5).unwrap().requires_grad();
    let args = GroupNormArgs {
        gamma: Some(&gamma),
        ..GroupNormArgs::new(1, 1e-5)
    };
    let y = group_norm(&x, &args).unwrap();
    let ct = Tensor::full(&g, y.shape(), 1.0).unwrap();
    assert!(grad(&[&y], &[&ct], &[&x]).is_ok());
    let y = group_norm(&x, &args).unwrap();
    let err = grad(&[&y], &[&ct], &[&gamma]).unwrap_err().to_string();
    assert!(
        err.contains("norm backward") && err.contains("90000") && err.contains("loop"),
        "{err}"
    );
}
