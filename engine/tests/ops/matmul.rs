//! Matmul against f64: batched, transposed operands, 16-bit weights, bias and activation epilogues,
//! both kernel variants, the bounds-check-free path, weights split over several buffers, and
//! reductions longer than lavapipe's loop cap split over dispatches. `run` serves the
//! cooperative-matrix and f16-precision tests too (matmul_coop.rs): on a device of precision f16
//! its reference rounds the operands to f16 as the kernels must.

use iterinv_engine::ops::matmul::{matmul, MatmulOptions};
use iterinv_engine::precision::CoopKernels;
use iterinv_engine::{Activation, Gpu, GpuOptions, Precision, Tensor};

use crate::common::{act64, assert_close, gpu, gpu_variant, Rng};

pub struct Case {
    batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    b_batched: bool,
    /// The product written transposed, `[..., N, M]`.
    trans_out: bool,
}

impl Case {
    /// This case with its output written transposed.
    pub fn transposed_out(self) -> Case {
        Case {
            trans_out: true,
            ..self
        }
    }
}

/// Reference result and, per element, the sum of |a·b| terms (bounds f32 accumulation error).
fn reference(
    c: &Case,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> (Vec<f64>, f64) {
    let nb: usize = c.batch.iter().product();
    let (m, n, k) = (c.m, c.n, c.k);
    let mut out = vec![0.0; nb * m * n];
    let mut worst_abs = 0.0f64;
    for bi in 0..nb {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut sa) = (0.0f64, 0.0f64);
                for l in 0..k {
                    let av = if c.trans_a {
                        a[bi * m * k + l * m + i]
                    } else {
                        a[bi * m * k + i * k + l]
                    } as f64;
                    let boff = if c.b_batched { bi * n * k } else { 0 };
                    let bv = if c.trans_b {
                        b[boff + j * k + l]
                    } else {
                        b[boff + l * n + j]
                    } as f64;
                    s += av * bv;
                    sa += (av * bv).abs();
                }
                if let Some(bias) = bias {
                    s += bias[j] as f64;
                }
                s = act64(act, s);
                worst_abs = worst_abs.max(sa);
                let at = if c.trans_out {
                    (bi * n + j) * m + i
                } else {
                    (bi * m + i) * n + j
                };
                out[at] = s;
            }
        }
    }
    (out, worst_abs)
}

fn shapes(c: &Case) -> (Vec<usize>, Vec<usize>) {
    let mut sa = c.batch.clone();
    sa.extend(if c.trans_a { [c.k, c.m] } else { [c.m, c.k] });
    let mut sb = if c.b_batched { c.batch.clone() } else { vec![] };
    sb.extend(if c.trans_b { [c.n, c.k] } else { [c.k, c.n] });
    (sa, sb)
}

pub enum WeightType {
    F32,
    F16,
    Bf16,
}

pub fn run(gpu: &Gpu, c: &Case, wt: WeightType, with_bias: bool, act: Activation, seed: u64) {
    let mut rng = Rng::new(seed);
    let (sa, sb) = shapes(c);
    let f16 = gpu.precision() == Precision::F16;
    // Under f16 products no operand is below f16's normal range, where hardware may flush to
    // zero what the reference keeps as a subnormal.
    let data = |rng: &mut Rng, n: usize| {
        let mut v = rng.vec(n, -1.0, 1.0);
        if f16 {
            v.iter_mut()
                .for_each(|x| *x = x.signum() * x.abs().max(1.0 / 1024.0));
        }
        v
    };
    let a = data(&mut rng, sa.iter().product());
    let mut b = data(&mut rng, sb.iter().product());
    let bias = rng.vec(c.n, -1.0, 1.0);
    let tb = match wt {
        WeightType::F32 => Tensor::from_f32(gpu, &sb, &b).unwrap(),
        WeightType::F16 => {
            let h: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
            b = h.iter().map(|x| x.to_f32()).collect();
            Tensor::from_f16(gpu, &sb, &h).unwrap()
        }
        WeightType::Bf16 => {
            let h: Vec<half::bf16> = b.iter().map(|&x| half::bf16::from_f32(x)).collect();
            b = h.iter().map(|x| x.to_f32()).collect();
            Tensor::from_bf16(gpu, &sb, &h).unwrap()
        }
    };
    let ta = Tensor::from_f32(gpu, &sa, &a).unwrap();
    let tbias = Tensor::from_f32(gpu, &[c.n], &bias).unwrap();
    let opts = MatmulOptions {
        trans_a: c.trans_a,
        trans_b: c.trans_b,
        trans_out: c.trans_out,
        activation: act,
    };
    let out = matmul(&ta, &tb, with_bias.then_some(&tbias), opts).unwrap();
    let (a, b) = if f16 {
        (to_f16(&a), to_f16(&b))
    } else {
        (a, b)
    };
    let (expected, abs_sum) = reference(c, &a, &b, with_bias.then_some(&bias), act);
    // f32 accumulation of K products: |error| <= K·2⁻²³·Σ|a·b| (a worst-case bound; fma keeps each
    // product exact before the add), plus one rounding of the result. f16 operands multiply
    // exactly in f32 too, so the bound holds for the rounded operands; tensor cores may add in
    // another order and align partial sums more coarsely, hence 4× for hardware cooperative
    // matrices.
    let hardware = matches!(gpu.coop(), Some((k, _)) if k != CoopKernels::Emulated);
    let atol = (c.k as f64 * 1.2e-7 * abs_sum + 1e-6) * if hardware { 4.0 } else { 1.0 };
    let what = format!(
        "matmul m{} n{} k{} batch {:?} ta {} tb {} bb {} to {} bias {with_bias} {act:?}",
        c.m, c.n, c.k, c.batch, c.trans_a, c.trans_b, c.b_batched, c.trans_out
    );
    let mut shape = c.batch.clone();
    shape.extend(if c.trans_out { [c.n, c.m] } else { [c.m, c.n] });
    assert_eq!(out.shape(), &shape[..]);
    assert_close(&what, &out, &expected, atol, 1e-6);
}

/// `v` rounded to f16 (nearest, ties to even), as f16 precision rounds operands.
pub fn to_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

pub fn case(
    batch: &[usize],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    b_batched: bool,
) -> Case {
    Case {
        batch: batch.to_vec(),
        m,
        n,
        k,
        trans_a,
        trans_b,
        b_batched,
        trans_out: false,
    }
}

/// Every transpose of both operands, with B batched and not, on a ragged 37 × 29 × 41 over a
/// batch of 3; and the 1 × 1 × 1 product. Seeds from `seed`.
pub fn transposes_and_batching(g: &Gpu, seed: u64) {
    let mut seed = seed;
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        for bb in [false, true] {
            seed += 1;
            run(
                g,
                &case(&[3], 37, 29, 41, ta, tb, bb),
                WeightType::F32,
                false,
                Activation::None,
                seed,
            );
        }
    }
    run(
        g,
        &case(&[], 1, 1, 1, false, false, false),
        WeightType::F32,
        false,
        Activation::None,
        seed + 1,
    );
    // Written transposed (a linear layer's tokens into a feature map), with a bias per row of
    // the output and an activation, from operands read either way.
    for (i, (ta, tb, bb)) in [
        (false, true, false),
        (true, true, false),
        (true, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        run(
            g,
            &case(&[3], 37, 29, 41, ta, tb, bb).transposed_out(),
            WeightType::F32,
            !bb,
            Activation::Silu,
            seed + 2 + i as u64,
        );
    }
}

#[test]
fn both_variants_all_transposes_and_batching() {
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        transposes_and_batching(g, 10);
        run(
            g,
            &case(&[2, 2], 70, 67, 130, false, true, false),
            WeightType::F32,
            true,
            Activation::Gelu,
            6,
        );
        // Shapes for which the direct variant picks 16 rows per invocation in workgroups 32 and
        // 16 wide (smaller ones above take 4 and 8 rows), ragged in both M and N.
        run(
            g,
            &case(&[], 130, 600, 45, false, true, false),
            WeightType::F32,
            true,
            Activation::None,
            7,
        );
        run(
            g,
            &case(&[], 1000, 70, 21, true, false, false),
            WeightType::F32,
            false,
            Activation::None,
            8,
        );
    }
}

#[test]
fn sixteen_bit_weights_and_epilogues() {
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        run(
            g,
            &case(&[2], 33, 45, 51, false, true, false),
            WeightType::F16,
            true,
            Activation::Silu,
            20,
        );
        run(
            g,
            &case(&[], 19, 66, 17, false, false, false),
            WeightType::Bf16,
            true,
            Activation::Relu,
            21,
        );
        run(
            g,
            &case(&[], 19, 66, 17, false, true, false),
            WeightType::Bf16,
            false,
            Activation::QuickGelu,
            22,
        );
    }
}

#[test]
fn tile_multiples_take_the_unchecked_path() {
    // 64 | M, N and 16 | K: the GPU variant compiles without bounds checks.
    run(
        gpu_variant(false),
        &case(&[2], 128, 64, 48, false, false, false),
        WeightType::F32,
        true,
        Activation::None,
        30,
    );
    run(
        gpu_variant(false),
        &case(&[], 64, 128, 32, true, true, false),
        WeightType::F16,
        true,
        Activation::Gelu,
        31,
    );
}

#[test]
fn linear_layer_matches_reference() {
    let mut rng = Rng::new(40);
    let (rows, k, n) = (2 * 7, 23, 9);
    let x = rng.vec(rows * k, -1.0, 1.0);
    let w = rng.vec(n * k, -1.0, 1.0);
    let bias = rng.vec(n, -1.0, 1.0);
    let out = Tensor::from_f32(gpu(), &[2, 7, k], &x)
        .unwrap()
        .linear(
            &Tensor::from_f32(gpu(), &[n, k], &w).unwrap(),
            Some(&Tensor::from_f32(gpu(), &[n], &bias).unwrap()),
        )
        .unwrap();
    assert_eq!(out.shape(), &[2, 7, n]);
    let c = case(&[], rows, n, k, false, true, false);
    let (expected, _) = reference(&c, &x, &w, Some(&bias), Activation::None);
    assert_close("linear", &out, &expected, 1e-5, 1e-5);
}

#[test]
fn weights_larger_than_the_binding_limit() {
    // A 16 KiB binding limit splits these weights over several buffers, as T5-XXL's 263 MB table
    // is split on lavapipe's 128 MiB limit.
    for cpu in [true, false] {
        let g = Gpu::with_options(GpuOptions {
            poison: true,
            max_binding_size: Some(16 * 1024),
            cpu_kernels: Some(cpu),
            ..Default::default()
        })
        .unwrap();
        // [N, K] = [300, 40] f32: 48 KB -> column blocks of the output.
        run(
            &g,
            &case(&[], 5, 300, 40, false, true, false),
            WeightType::F32,
            true,
            Activation::Gelu,
            50,
        );
        // [K, N] = [300, 40] f16: 24 KB -> split-K accumulation, epilogue after the last chunk.
        run(
            &g,
            &case(&[], 5, 40, 300, false, false, false),
            WeightType::F16,
            true,
            Activation::Gelu,
            51,
        );
        // Both, written transposed: a column block lands at its rows of the output.
        run(
            &g,
            &case(&[], 5, 300, 40, false, true, false).transposed_out(),
            WeightType::F32,
            true,
            Activation::Gelu,
            52,
        );
        run(
            &g,
            &case(&[], 5, 40, 300, false, false, false).transposed_out(),
            WeightType::F16,
            true,
            Activation::Gelu,
            53,
        );
        let w = Tensor::from_f32(&g, &[300, 40], &vec![0.5; 12000]).unwrap();
        assert!(w.is_chunked());
        // Anything else on a chunked tensor is a clear error, not a wrong answer.
        let err = w.gelu().unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
    }
}

/// Exact integer data: products and partial sums of values in −2..=2 stay integers below 2²⁴, so
/// every f32 sum is exact in any order and a dropped or repeated k shows as a wrong integer.
fn small_ints(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.range(0, 4) as f32 - 2.0).collect()
}

/// relu(a·b + bias) for [M, K] · [K, N] (or [N, K] when `trans_b`), exactly, in i64.
fn exact_reference(
    m: usize,
    n: usize,
    k: usize,
    trans_b: bool,
    a: &[f32],
    b: &[f32],
    bias: &[f32],
) -> Vec<f64> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let mut s = bias[j] as i64;
            for l in 0..k {
                let bv = if trans_b { b[j * k + l] } else { b[l * n + j] };
                s += a[i * k + l] as i64 * bv as i64;
            }
            out.push(s.max(0) as f64);
        }
    }
    out
}

#[test]
fn reductions_longer_than_the_loop_cap() {
    // lavapipe silently ends every loop of an invocation once 65535 iterations have run
    // (Caps::max_loop_iterations). The direct kernel takes two k per iteration, so K = 140,000
    // overran it (the old kernel returned 65,535 for a row of ones, the tiled one 58,255); under a
    // cap the engine splits K over accumulating dispatches, the epilogue after the last.
    let (m, n, k) = (3, 5, 140_000);
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let name = if cpu { "matmul_direct" } else { "matmul_tiled" };
        for trans_b in [false, true] {
            let mut rng = Rng::new(60 + trans_b as u64);
            let a = small_ints(&mut rng, m * k);
            let b = small_ints(&mut rng, k * n);
            let bias = small_ints(&mut rng, n);
            let sb = if trans_b { [n, k] } else { [k, n] };
            let before = g.kernel_dispatches(name);
            let out = matmul(
                &Tensor::from_f32(g, &[m, k], &a).unwrap(),
                &Tensor::from_f32(g, &sb, &b).unwrap(),
                Some(&Tensor::from_f32(g, &[n], &bias).unwrap()),
                MatmulOptions {
                    trans_b,
                    activation: Activation::Relu,
                    ..Default::default()
                },
            )
            .unwrap();
            let expected = exact_reference(m, n, k, trans_b, &a, &b, &bias);
            // Exact: integer sums (see small_ints), bias and ReLU.
            assert_close(
                &format!("K {k} cpu {cpu} tb {trans_b}"),
                &out,
                &expected,
                0.0,
                0.0,
            );
            if g.caps().max_loop_iterations.is_some() {
                assert!(g.kernel_dispatches(name) - before >= 2, "K was not split");
            }
        }
    }
}

#[test]
fn loop_cap_splits_combine_with_chunked_weights() {
    // A forced cap of 200 iterations gives the direct kernel K blocks of 192 and the tiled one
    // blocks of one K-tile, inside the chunks of weights split over 16 KiB bindings: the column
    // blocks of an [N, K] weight and the K blocks of a [K, N] one.
    for cpu in [true, false] {
        let g = Gpu::with_options(GpuOptions {
            poison: true,
            max_binding_size: Some(16 * 1024),
            cpu_kernels: Some(cpu),
            max_loop_iterations: Some(200),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(g.caps().max_loop_iterations, Some(200));
        // [N, K] = [20, 500] f32: 40 KB in chunks of 8 rows, each with K = 500 split.
        run(
            &g,
            &case(&[], 7, 20, 500, false, true, false),
            WeightType::F32,
            true,
            Activation::Gelu,
            70,
        );
        // [K, N] = [300, 40] f16: chunks of 204 and 96 rows of K, the first split again.
        run(
            &g,
            &case(&[], 5, 40, 300, false, false, false),
            WeightType::F16,
            true,
            Activation::Silu,
            71,
        );
        // Batched, both operands in one binding, transposed A.
        run(
            &g,
            &case(&[2], 4, 3, 450, true, false, true),
            WeightType::F32,
            false,
            Activation::None,
            72,
        );
    }
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let g = gpu();
    let a = Tensor::from_f32(g, &[3, 4], &[0.0; 12]).unwrap();
    let b = Tensor::from_f32(g, &[5, 6], &[0.0; 30]).unwrap();
    let err = a.matmul(&b).unwrap_err().to_string();
    assert!(
        err.contains("matmul") && err.contains("[3, 4]") && err.contains("[5, 6]"),
        "{err}"
    );
    let v = Tensor::from_f32(g, &[4], &[0.0; 4]).unwrap();
    assert!(a.matmul(&v).is_err());
    let bias = Tensor::from_f32(g, &[7], &[0.0; 7]).unwrap();
    let w = Tensor::from_f32(g, &[6, 4], &[0.0; 24]).unwrap();
    assert!(a
        .linear(&w, Some(&bias))
        .unwrap_err()
        .to_string()
        .contains("bias"));
    // More rows than the largest block times the 65535-workgroup grid: an error, not a wgpu
    // validation failure.
    for cpu in [true, false] {
        let v = gpu_variant(cpu);
        let m = 8_400_000;
        let tall = Tensor::zeros(v, &[m, 1]).unwrap();
        let one = Tensor::zeros(v, &[1, 1]).unwrap();
        let err = tall.matmul(&one).unwrap_err().to_string();
        assert!(
            err.contains("matmul") && err.contains("[8400000, 1]") && err.contains("dispatch"),
            "{err}"
        );
    }
    let bb = Tensor::from_f32(g, &[2, 4, 6], &[0.0; 48]).unwrap();
    assert!(Tensor::from_f32(g, &[3, 3, 4], &[0.0; 36])
        .unwrap()
        .matmul(&bb)
        .is_err());
}
