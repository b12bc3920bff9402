//! Precision f16 in the GEMM-like kernels besides matmul's (matmul_coop.rs): conv2d and its input
//! and weight gradients, fused attention and its gradients, on both kernel variants (the direct
//! kernels of CPU adapters and the tiled ones of GPUs), and for the convolutions on the
//! cooperative-matrix kernels too (emulated here, the hardware's where offered). Under f16 every product takes its operands
//! rounded to f16 (to nearest, ties to even) and accumulates in f32. Each test compares a device of
//! precision f16 with the f64 references of conv.rs, attention.rs and grad_attention.rs fed the
//! operands rounded as the kernels round them, and shows that the rounding is real: on the same
//! data, which f16 cannot hold, the f32 device's result lies outside the f16 tolerance somewhere,
//! so a kernel that skipped a rounding would fail. Operands stay at or above 2⁻¹⁰ in magnitude
//! (hardware may flush f16 subnormals).
//!
//! Tolerances are worst-case f32 bounds, per element. Two f16 operands (11-bit significands)
//! multiply exactly in f32, so a sum of K such products errs by at most K·u·Σ|terms| (u = 2⁻²⁴).
//! Attention's weights (P, dS) are computed in f32 before they are rounded: where a weight's f32
//! error bound straddles an f16 rounding boundary, the kernel's rounded weight may be one f16 step
//! from the reference's, and the bound adds that step times the other operand
//! (`common::Operands::weight`, `common::Weighted`).

use std::sync::OnceLock;

use iterinv_engine::grad::grad;
use iterinv_engine::ops::conv::{conv2d, Conv2dOptions};
use iterinv_engine::{Activation, Cooperative, Gpu, GpuOptions, Precision, Tensor};

use crate::common::{f64s, gpu_variant, Operands, Rng, U};
use crate::conv::{case, reference as conv_reference, Case as ConvCase};
use crate::matmul::to_f16;
use crate::{attention, grad_attention};

/// A poisoned device of precision f16 with the CPU (direct) or GPU (tiled) kernel variants.
fn f16_gpu(cpu: bool) -> &'static Gpu {
    static CPU: OnceLock<Gpu> = OnceLock::new();
    static GPU: OnceLock<Gpu> = OnceLock::new();
    let cell = if cpu { &CPU } else { &GPU };
    cell.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            cpu_kernels: Some(cpu),
            precision: Some(Precision::F16),
            cooperative: Some(Cooperative::Off),
            ..Default::default()
        })
        .unwrap()
    })
}

/// The devices of precision f16 and f32 with one kernel variant.
fn devices(cpu: bool) -> [&'static Gpu; 2] {
    let g = f16_gpu(cpu);
    assert_eq!(g.caps().precision, Precision::F16);
    assert_eq!(gpu_variant(cpu).caps().precision, Precision::F32);
    [g, gpu_variant(cpu)]
}

/// The GEMM paths a convolution takes at f16, each as (name, f16 device, f32 device to compare,
/// tolerance factor): the direct and tiled kernels, the cooperative kernels on emulated
/// matrices, and, where the adapter offers them (ITERINV_COOP=on in the GPU check requires it),
/// the hardware's. Tensor cores may add in another order and align partial sums more coarsely
/// than f32 adds: 4× the bound for them, as for matmul.
fn conv_paths() -> Vec<(&'static str, &'static Gpu, &'static Gpu, f64)> {
    static EMULATED: OnceLock<Gpu> = OnceLock::new();
    static HARDWARE: OnceLock<Gpu> = OnceLock::new();
    let f16_device = |cooperative| {
        Gpu::with_options(GpuOptions {
            poison: true,
            precision: Some(Precision::F16),
            cooperative,
            ..Default::default()
        })
        .unwrap()
    };
    let emulated = EMULATED.get_or_init(|| f16_device(Some(Cooperative::Emulated)));
    let mut paths = vec![
        ("cpu kernels", f16_gpu(true), gpu_variant(true), 1.0),
        ("gpu kernels", f16_gpu(false), gpu_variant(false), 1.0),
        ("emulated cooperative", emulated, gpu_variant(false), 1.0),
    ];
    let hardware = HARDWARE.get_or_init(|| f16_device(None));
    if hardware.coop().is_some() {
        paths.push(("hardware cooperative", hardware, gpu_variant(false), 4.0));
    }
    paths
}

/// `v` with magnitudes below 2⁻¹⁰ raised to it.
fn away_from_zero(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|x| x.signum() * x.abs().max(1.0 / 1024.0))
        .collect()
}

/// `n` values uniform in ±[2⁻¹⁰, 1).
fn operands(rng: &mut Rng, n: usize) -> Vec<f32> {
    away_from_zero(&rng.vec(n, -1.0, 1.0))
}

/// A tensor's values, after checking its guard words.
fn read(t: &Tensor) -> Vec<f32> {
    assert!(t.guards_intact().unwrap(), "a kernel wrote past its output");
    t.to_vec().unwrap()
}

/// The f16 device's result within `bound` of the reference everywhere (NaN fails), the f32
/// device's beyond it somewhere.
fn check(what: &str, f16: &[f32], f32: &[f32], want: &[f64], bound: &[f64]) {
    assert_eq!(
        (f16.len(), f32.len(), bound.len()),
        (want.len(), want.len(), want.len())
    );
    let err = |got: &[f32], i: usize| (got[i] as f64 - want[i]).abs();
    for i in 0..want.len() {
        assert!(
            err(f16, i) <= bound[i],
            "{what}: element {i} is {} but the reference is {} (bound {:e})",
            f16[i],
            want[i],
            bound[i]
        );
    }
    let beyond = (0..want.len()).filter(|&i| err(f32, i) > bound[i]).count();
    assert!(
        beyond > 0,
        "{what}: the f32 device is within the f16 bound everywhere: was anything rounded?"
    );
}

fn conv_opts(c: ConvCase, act: Activation) -> Conv2dOptions {
    Conv2dOptions {
        stride: c.stride,
        padding: c.pad,
        activation: act,
    }
}

/// conv2d forward: x and w rounded, the bias added and the activation applied in f32 to the f32
/// sum. Tolerance: K·u·S_max for the sum of K = Cin·kh·kw products (S_max: the largest Σ|w·x| of
/// an output), plus the epilogue activations' 1e-6 absolute and relative (see conv.rs). A rounded
/// bias would err by up to 2⁻¹² of it, far beyond.
#[test]
fn conv_forward_rounds_x_and_w_but_not_the_bias() {
    let mut rng = Rng::new(900);
    for (c, act) in [
        (case(2, 5, 7, (9, 11), (3, 3), 1, 1), Activation::None),
        (case(3, 6, 9, (10, 7), (5, 3), 2, 0), Activation::Silu),
        (case(1, 4, 9, (5, 37), (3, 3), 2, 1), Activation::None),
        // Every tile full: the tiled kernel without bounds checks.
        (case(2, 16, 64, (8, 8), (3, 3), 1, 1), Activation::None),
    ] {
        let x = operands(&mut rng, c.b * c.cin * c.h * c.w);
        let w = operands(&mut rng, c.cout * c.cin * c.kh * c.kw);
        let bias = rng.vec(c.cout, -1.0, 1.0);
        let (want, s_max) = conv_reference(c, &to_f16(&x), &to_f16(&w), Some(&bias[..]), act);
        let atol = (c.cin * c.kh * c.kw) as f64 * U * s_max + 1e-6;
        for (path, f16, f32, factor) in conv_paths() {
            let bound: Vec<f64> = want
                .iter()
                .map(|e| factor * (atol + 1e-6 * e.abs()))
                .collect();
            let [out16, out32] = [f16, f32].map(|g| {
                let tx = Tensor::from_f32(g, &[c.b, c.cin, c.h, c.w], &x).unwrap();
                let tw = Tensor::from_f32(g, &[c.cout, c.cin, c.kh, c.kw], &w).unwrap();
                let tb = Tensor::from_f32(g, &[c.cout], &bias).unwrap();
                read(&conv2d(&tx, &tw, Some(&tb), conv_opts(c, act)).unwrap())
            });
            let what = format!("conv2d {c:?} {act:?} ({path})");
            check(&what, &out16, &out32, &want, &bound);
        }
    }
}

/// dL/dx at every element for L = Σ cot·f(x) with f linear in x: Σ cot·f(e) for each unit vector
/// e, exact (finite differences would only approximate it).
fn adjoint(n: usize, cot: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let mut e = vec![0.0; n];
    (0..n)
        .map(|i| {
            e[i] = 1.0;
            let y = f(&e);
            e[i] = 0.0;
            y.iter().zip(cot).map(|(a, b)| a * b).sum()
        })
        .collect()
}

/// The input gradient takes g and w rounded, the weight gradient g and x; references are the
/// adjoints of conv.rs's convolution on the rounded operands. Tolerance per element: K·u·S for
/// its sum of at most K products (dX: Cout·kh·kw, dW: B·Ho·Wo) whose magnitudes sum to S (the
/// same adjoint on |g|, |w| or |x|).
#[test]
fn conv_gradients_round_g_and_w_for_dx_and_g_and_x_for_dw() {
    let mut rng = Rng::new(910);
    for c in [
        case(2, 5, 7, (9, 11), (3, 3), 1, 1),
        case(2, 5, 7, (9, 11), (3, 3), 2, 1),
        // 16-column blocks of the direct kernels, the last partial; Cin 9 > 8, Cout 3 <= 4.
        case(1, 9, 3, (4, 20), (3, 3), 1, 1),
    ] {
        let (xs, ws) = ([c.b, c.cin, c.h, c.w], [c.cout, c.cin, c.kh, c.kw]);
        let (ho, wo) = (
            (c.h + 2 * c.pad - c.kh) / c.stride + 1,
            (c.w + 2 * c.pad - c.kw) / c.stride + 1,
        );
        let x = operands(&mut rng, xs.iter().product());
        let w = operands(&mut rng, ws.iter().product());
        let cot = operands(&mut rng, c.b * c.cout * ho * wo);
        let [xr, wr, cr] = [&x, &w, &cot].map(|v| f64s(&to_f16(v)));
        let abs = |v: &[f64]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
        let conv = |x: &[f64], w: &[f64]| conv_reference(c, x, w, None, Activation::None).0;
        let bound = |s: &[f64], k: usize, factor: f64| -> Vec<f64> {
            s.iter().map(|s| factor * k as f64 * U * s).collect()
        };
        let dx = adjoint(xr.len(), &cr, |e| conv(e, &wr));
        let dx_sums = adjoint(xr.len(), &abs(&cr), |e| conv(e, &abs(&wr)));
        let dw = adjoint(wr.len(), &cr, |e| conv(&xr, e));
        let dw_sums = adjoint(wr.len(), &abs(&cr), |e| conv(&abs(&xr), e));
        for (path, f16, f32, factor) in conv_paths() {
            let dx_bound = bound(&dx_sums, c.cout * c.kh * c.kw, factor);
            let dw_bound = bound(&dw_sums, c.b * ho * wo, factor);
            let [g16, g32] = [f16, f32].map(|g| {
                let tx = Tensor::from_f32(g, &xs, &x).unwrap().requires_grad();
                let tw = Tensor::from_f32(g, &ws, &w).unwrap().requires_grad();
                let y = conv2d(&tx, &tw, None, conv_opts(c, Activation::None)).unwrap();
                let tc = Tensor::from_f32(g, y.shape(), &cot).unwrap();
                let d = grad(&[&y], &[&tc], &[&tx, &tw]).unwrap();
                [read(&d[0]), read(&d[1])]
            });
            let what = format!("conv2d {c:?} ({path})");
            check(&format!("{what} dX"), &g16[0], &g32[0], &dx, &dx_bound);
            check(&format!("{what} dW"), &g16[1], &g32[1], &dw, &dw_bound);
        }
    }
}

/// Key 0's bias, and the spread of the others': with scale 0.5/√D the scores' q·k parts stay
/// within about ±1, so key 0 scores highest in every row with a margin and no weight exp(s − m)
/// falls below e^(−3.5) > 2⁻¹⁰ (`attention::reference_ops` asserts both).
const KEY0_BIAS: f32 = 2.0;

/// Turn a random bias `[.., Lk]` in [−2, 2) into one of [`KEY0_BIAS`] on key 0 and [−0.5, 0.5)
/// elsewhere. The kernels' running maximum is then each row's maximum from the first key on,
/// so they round the same weights exp(s − m) the references round.
fn lead_with_key0(bias: &mut [f32], lk: usize) {
    for (i, b) in bias.iter_mut().enumerate() {
        *b = if i % lk == 0 { KEY0_BIAS } else { *b / 4.0 };
    }
}

/// Attention rounds q, k, v and the weights exp(s − m) that multiply v; the softmax's maximum,
/// sum and rescaling stay f32. Two key segments, a shared and a per-batch bias, a key mask with a
/// fully masked batch entry, head dims not a multiple of 4, several query tiles.
#[test]
fn attention_forward_rounds_q_k_v_and_the_weights() {
    let base = attention::Case {
        b: 2,
        lq: 37,
        h: 3,
        d: 20,
        lk1: 13,
        lk2: 29,
        bias: Some(1),
        mask: true,
        kv_f16: false,
    };
    let cases = [
        base,
        attention::Case {
            lq: 70,
            h: 2,
            d: 13,
            lk1: 45,
            lk2: 0,
            bias: Some(2),
            mask: false,
            ..base
        },
        attention::Case {
            b: 1,
            lq: 150,
            h: 1,
            d: 64,
            lk1: 77,
            lk2: 3,
            mask: false,
            ..base
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let mut rng = Rng::new(920 + i as u64);
        let mut x = attention::data(c, &mut rng);
        for t in [&mut x.q, &mut x.k, &mut x.v, &mut x.k2, &mut x.v2] {
            *t = away_from_zero(t);
        }
        x.scale = 0.5 / (c.d as f32).sqrt();
        let lk = c.lk1 + c.lk2;
        lead_with_key0(&mut x.bias.as_mut().unwrap().1, lk);
        // Key 0 attended wherever the row has keys (the data mask empties the last batch entry).
        if let Some(m) = &mut x.mask {
            (0..c.b - 1).for_each(|bi| m[bi * lk] = 1.0);
        }
        let (want, bound) = attention::reference_ops(&x, None, Operands::F16);
        for cpu in [true, false] {
            let [o16, o32] = devices(cpu).map(|g| read(&attention::run(g, &x, false)));
            let what = format!(
                "attention B{} Lq{} H{} D{} Lk{}+{} (cpu kernels {cpu})",
                c.b, c.lq, c.h, c.d, c.lk1, c.lk2
            );
            check(&what, &o16, &o32, &want, &bound);
        }
    }
}

/// The backward rounds q, k, v and dO, and the weights of each product: dS before dS·K (from the
/// unnormalised weights, as the dQ kernel forms them) and dSᵀ·Q, the recomputed P before Pᵀ·dO.
/// Δ = dO·O stays f32; the reference reads it off the f16 forward's output, as the kernels do.
#[test]
fn attention_gradients_round_every_product() {
    for (i, (lq, lk, d, mask)) in [(37, 45, 20, true), (70, 29, 13, false)]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng::new(930 + i as u64);
        let mut c = grad_attention::Case::new(1, lq, 1, d, lk, 0).with_bias(1, &mut rng);
        if mask {
            c = c.with_mask(false, &mut rng);
            c.mask.as_mut().unwrap()[0] = 1.0;
        }
        c.scale = 0.5 / (d as f32).sqrt();
        lead_with_key0(&mut c.bias.as_mut().unwrap().1, lk);
        let data: Vec<Vec<f32>> = c
            .shapes()
            .iter()
            .map(|s| operands(&mut rng, s.iter().product()))
            .collect();
        let go = operands(&mut rng, lq * d);
        let x64: Vec<Vec<f64>> = data.iter().map(|v| f64s(v)).collect();
        let rows: Vec<usize> = (0..lq.max(lk)).collect();
        for cpu in [true, false] {
            let [(o16, g16), (_, g32)] = devices(cpu).map(|g| {
                let t: Vec<Tensor> = data
                    .iter()
                    .zip(c.shapes())
                    .map(|(v, s)| Tensor::from_f32(g, &s, v).unwrap().requires_grad())
                    .collect();
                let out = grad_attention::run(&c, &t);
                let cot = Tensor::from_f32(g, out.shape(), &go).unwrap();
                let grads = grad(&[&out], &[&cot], &[&t[0], &t[1], &t[2]]).unwrap();
                (
                    f64s(&read(&out)),
                    grads.iter().map(read).collect::<Vec<_>>(),
                )
            });
            let want = grad_attention::sampled_grads(
                &c,
                &x64,
                &f64s(&go),
                &rows,
                Operands::F16,
                Some(&o16),
            );
            for (k, name) in ["dQ", "dK", "dV"].iter().enumerate() {
                let (mut w, mut b, mut a16, mut a32) = (vec![], vec![], vec![], vec![]);
                for r in &want[k] {
                    w.extend(&r.value);
                    b.extend(&r.bound);
                    a16.extend(&g16[k][r.row * d..(r.row + 1) * d]);
                    a32.extend(&g32[k][r.row * d..(r.row + 1) * d]);
                }
                let what = format!("attention {name} Lq{lq} Lk{lk} D{d} (cpu kernels {cpu})");
                check(&what, &a16, &a32, &w, &b);
            }
        }
    }
}
