//! Backward rules of the shape ops against finite differences of f64 references (the reductions
//! are in grad_reduce.rs).
//!
//! Tolerances (relative to the largest gradient of each input, as `check_vjp` applies them): the
//! copy-like rules (concat, slice, split, permute, nearest upsampling, embedding) move or add
//! cotangent values exactly or with a few f32 additions, and the references are linear, so finite
//! differences are exact up to f64 rounding (~1e-11): 1e-6 leaves room only for a few f32 ulps.
//! Rules that scale or interpolate (pool, bilinear, mean, quantile) add f32 products of weights
//! (themselves f32, ~6e-8 relative) summed over at most a few hundred terms: 1e-5.

use half::f16;
use iterinv_engine::grad::grad;
use iterinv_engine::ops::shape::{concat, permute};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{assert_close, check_vjp, gpu, gpu_variant, GradInput, Rng};
use crate::shape::gather_ref;

pub(crate) const EXACT: f64 = 1e-6;
pub(crate) const SCALED: f64 = 1e-5;

pub(crate) fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Row-major coordinates of linear index `i` in `shape`, and back.
pub(crate) fn coords(shape: &[usize], mut i: usize) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = i % shape[d];
        i /= shape[d];
    }
    c
}

pub(crate) fn index(shape: &[usize], c: &[usize]) -> usize {
    shape.iter().zip(c).fold(0, |i, (&s, &k)| i * s + k)
}

fn concat_ref(xs: &[Vec<f64>], shapes: &[Vec<usize>], dim: usize) -> Vec<f64> {
    let outer = numel(&shapes[0][..dim]);
    let inner = numel(&shapes[0][dim + 1..]);
    let mut out = Vec::new();
    for o in 0..outer {
        for (x, s) in xs.iter().zip(shapes) {
            let block = s[dim] * inner;
            out.extend_from_slice(&x[o * block..(o + 1) * block]);
        }
    }
    out
}

#[test]
fn concat_on_dims_0_1_and_last_with_three_inputs() {
    let mut rng = Rng::new(300);
    for dim in [0usize, 1, 2] {
        let shapes: Vec<Vec<usize>> = [2usize, 5, 3]
            .iter()
            .map(|&k| {
                let mut s = vec![3, 7, 5];
                s[dim] = k;
                s
            })
            .collect();
        let inputs: Vec<GradInput> = shapes
            .iter()
            .map(|s| GradInput::new(s, rng.vec(numel(s), -1.0, 1.0), true))
            .collect();
        let shapes2 = shapes.clone();
        check_vjp(
            &format!("concat dim {dim}"),
            &inputs,
            |t| concat(&[&t[0], &t[1], &t[2]], dim).unwrap(),
            move |x| concat_ref(x, &shapes2, dim),
            EXACT,
            usize::MAX,
        );
    }
}

#[test]
fn concat_computes_only_the_needed_slices() {
    // A private device: the dispatch counter must not see other tests' launches.
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng::new(301);
    let t = |s: &[usize], rng: &mut Rng| {
        Tensor::from_f32(&g, s, &rng.vec(numel(s), -1.0, 1.0)).unwrap()
    };
    let a = t(&[4, 3], &mut rng).requires_grad();
    let b = t(&[4, 5], &mut rng).requires_grad();
    let c = t(&[4, 2], &mut rng);
    let y = concat(&[&a, &b, &c], 1).unwrap();
    let cot_v = rng.vec(40, -1.0, 1.0);
    let cot = Tensor::from_f32(&g, &[4, 10], &cot_v).unwrap();
    let before = g.kernel_dispatches("shape_copy");
    let db = grad(&[&y], &[&cot], &[&b]).unwrap();
    assert_eq!(g.kernel_dispatches("shape_copy") - before, 1);
    let expected: Vec<f64> = (0..20)
        .map(|i| cot_v[(i / 5) * 10 + 3 + i % 5] as f64)
        .collect();
    assert_close("concat db", &db[0], &expected, 0.0, 0.0);
}

fn slice_ref(x: &[f64], shape: &[usize], dim: usize, start: usize, end: usize) -> Vec<f64> {
    let mut os = shape.to_vec();
    os[dim] = end - start;
    (0..numel(&os))
        .map(|i| {
            let mut c = coords(&os, i);
            c[dim] += start;
            x[index(shape, &c)]
        })
        .collect()
}

#[test]
fn slice_split_and_chunk() {
    let mut rng = Rng::new(302);
    let shape = [4usize, 9, 5];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    check_vjp(
        "slice middle",
        &[GradInput::new(&shape, x.clone(), true)],
        |t| t[0].slice(1, 2, 7).unwrap(),
        |x| slice_ref(&x[0], &shape, 1, 2, 7),
        EXACT,
        usize::MAX,
    );
    // Parts reassembled out of order: every part's rule and their accumulation on x.
    check_vjp(
        "split",
        &[GradInput::new(&shape, x.clone(), true)],
        |t| {
            let p = t[0].split(1, &[2, 3, 4]).unwrap();
            concat(&[&p[2], &p[0], &p[1]], 1).unwrap()
        },
        |x| {
            let s = |a, b| slice_ref(&x[0], &shape, 1, a, b);
            let parts = [s(5, 9), s(0, 2), s(2, 5)];
            let shapes = [vec![4, 4, 5], vec![4, 2, 5], vec![4, 3, 5]];
            concat_ref(&parts, &shapes, 1)
        },
        EXACT,
        usize::MAX,
    );
    // Only the middle chunk is used: the others are never differentiated and x gets zeros there.
    let shape = [3usize, 4, 9];
    check_vjp(
        "chunk",
        &[GradInput::new(
            &shape,
            rng.vec(numel(&shape), -1.0, 1.0),
            true,
        )],
        |t| t[0].chunk(3, 2).unwrap().swap_remove(1),
        |x| slice_ref(&x[0], &shape, 2, 3, 6),
        EXACT,
        usize::MAX,
    );
}

fn permute_ref(x: &[f64], shape: &[usize], perm: &[usize]) -> Vec<f64> {
    let os: Vec<usize> = perm.iter().map(|&d| shape[d]).collect();
    (0..numel(&os))
        .map(|i| {
            let c = coords(&os, i);
            let mut ic = vec![0; shape.len()];
            for (k, &d) in perm.iter().enumerate() {
                ic[d] = c[k];
            }
            x[index(shape, &ic)]
        })
        .collect()
}

#[test]
fn permute_and_transpose_rank_4() {
    let mut rng = Rng::new(303);
    let shape = [2usize, 3, 5, 7];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    for perm in [[2usize, 0, 3, 1], [3, 2, 1, 0], [0, 2, 1, 3]] {
        check_vjp(
            &format!("permute {perm:?}"),
            &[GradInput::new(&shape, x.clone(), true)],
            |t| permute(&t[0], &perm).unwrap(),
            |x| permute_ref(&x[0], &shape, &perm),
            EXACT,
            usize::MAX,
        );
    }
    check_vjp(
        "transpose 1 3",
        &[GradInput::new(&shape, x, true)],
        |t| t[0].transpose(1, 3).unwrap(),
        |x| permute_ref(&x[0], &shape, &[0, 3, 2, 1]),
        EXACT,
        usize::MAX,
    );
}

#[test]
fn upsample_nearest_and_avg_pool() {
    let mut rng = Rng::new(304);
    let shape = [2usize, 3, 5, 7];
    check_vjp(
        "upsample_nearest2x",
        &[GradInput::new(
            &shape,
            rng.vec(numel(&shape), -1.0, 1.0),
            true,
        )],
        |t| t[0].upsample_nearest2x().unwrap(),
        |x| {
            let os = [2, 3, 10, 14];
            (0..numel(&os))
                .map(|i| {
                    let c = coords(&os, i);
                    x[0][index(&shape, &[c[0], c[1], c[2] / 2, c[3] / 2])]
                })
                .collect()
        },
        EXACT,
        usize::MAX,
    );
    // Odd, mixed and even sizes: a dropped last row and/or column gets zero gradient.
    for shape in [[2usize, 3, 7, 9], [1, 2, 6, 5], [1, 1, 4, 6]] {
        let os = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
        check_vjp(
            &format!("avg_pool2x2 {shape:?}"),
            &[GradInput::new(
                &shape,
                rng.vec(numel(&shape), -1.0, 1.0),
                true,
            )],
            |t| t[0].avg_pool2x2().unwrap(),
            |x| {
                (0..numel(&os))
                    .map(|i| {
                        let c = coords(&os, i);
                        let v = |dy, dx| {
                            x[0][index(&shape, &[c[0], c[1], 2 * c[2] + dy, 2 * c[3] + dx])]
                        };
                        (v(0, 0) + v(0, 1) + v(1, 0) + v(1, 1)) / 4.0
                    })
                    .collect()
            },
            EXACT, // sums and ×¼ of cotangents: exact in f32
            usize::MAX,
        );
    }
}

/// Per output coordinate of one axis: (i0, i1, l) with the f32 arithmetic of the kernel.
fn bilinear_axis(n_in: usize, n_out: usize, o: usize) -> (usize, usize, f64) {
    let scale = if n_out > 1 {
        (n_in as f32 - 1.0) / (n_out as f32 - 1.0)
    } else {
        0.0
    };
    let s = scale * o as f32;
    let i0 = (s as usize).min(n_in - 1);
    (i0, (i0 + 1).min(n_in - 1), (s - i0 as f32) as f64)
}

/// F.interpolate(mode="bilinear", align_corners=True) in f64 with the kernel's f32 source
/// coordinates; with `adjoint`, the transpose applied to an output-shaped `x`.
fn bilinear_ref(x: &[f64], shape: &[usize], oh: usize, ow: usize, adjoint: bool) -> Vec<f64> {
    let (p, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let mut out = vec![0.0; if adjoint { p * h * w } else { p * oh * ow }];
    for plane in 0..p {
        for y in 0..oh {
            let (y0, y1, ly) = bilinear_axis(h, oh, y);
            for xo in 0..ow {
                let (x0, x1, lx) = bilinear_axis(w, ow, xo);
                let taps = [
                    (y0, x0, (1.0 - ly) * (1.0 - lx)),
                    (y0, x1, (1.0 - ly) * lx),
                    (y1, x0, ly * (1.0 - lx)),
                    (y1, x1, ly * lx),
                ];
                let o = (plane * oh + y) * ow + xo;
                for (yy, xx, wt) in taps {
                    let i = (plane * h + yy) * w + xx;
                    if adjoint {
                        out[i] += wt * x[o];
                    } else {
                        out[o] += wt * x[i];
                    }
                }
            }
        }
    }
    out
}

#[test]
fn bilinear_resize_up_and_down_with_odd_sizes() {
    let mut rng = Rng::new(305);
    let cases: [([usize; 4], usize, usize); 5] = [
        ([2, 3, 5, 7], 11, 9),  // up
        ([1, 2, 13, 11], 5, 3), // down
        ([1, 2, 7, 5], 3, 13),  // down in h, up in w
        ([1, 1, 1, 3], 4, 5),   // from one row
        ([1, 2, 5, 6], 1, 1),   // to one pixel
    ];
    for (shape, oh, ow) in cases {
        check_vjp(
            &format!("resize_bilinear {shape:?} to {oh}×{ow}"),
            &[GradInput::new(
                &shape,
                rng.vec(numel(&shape), -1.0, 1.0),
                true,
            )],
            |t| t[0].resize_bilinear(oh, ow).unwrap(),
            |x| bilinear_ref(&x[0], &shape, oh, ow, false),
            SCALED,
            usize::MAX,
        );
    }
}

#[test]
fn bilinear_backward_on_both_matmul_variants() {
    // Sizes past the matmul tiles (64 and 32), none dividing them.
    let (shape, oh, ow) = ([1usize, 2, 37, 45], 70, 67);
    let mut rng = Rng::new(306);
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    let c = rng.vec(2 * oh * ow, -1.0, 1.0);
    let expected = bilinear_ref(
        &c.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &shape,
        oh,
        ow,
        true,
    );
    for cpu in [true, false] {
        let g = gpu_variant(cpu);
        let xt = Tensor::from_f32(g, &shape, &x).unwrap().requires_grad();
        let y = xt.resize_bilinear(oh, ow).unwrap();
        let ct = Tensor::from_f32(g, y.shape(), &c).unwrap();
        let dx = grad(&[&y], &[&ct], &[&xt]).unwrap();
        // Each input pixel sums ≤ ~9 products of cotangents ≤ 1 and f32 weights (the matmul adds
        // the zero weights too, exactly): errors of a few ulps of values ≤ ~4.
        assert_close(
            &format!("resize adjoint cpu_kernels={cpu}"),
            &dx[0],
            &expected,
            5e-6,
            0.0,
        );
    }
}

#[test]
fn embedding_table_gradient_with_repeated_ids() {
    let mut rng = Rng::new(307);
    let (v, d) = (11usize, 37usize);
    // Repeats (3 four times, 7 twice), rows never used (they get zeros), and out-of-range ids.
    let ids: Vec<i32> = vec![3, 7, 3, 0, 10, -1, 3, 11, 7, 3, 5, 2, 9];
    let ids2 = ids.clone();
    check_vjp(
        "embedding",
        &[GradInput::new(&[v, d], rng.vec(v * d, -1.0, 1.0), true)],
        move |t| {
            let it = Tensor::from_i32(gpu(), &[13], &ids2).unwrap();
            t[0].embedding(&it).unwrap()
        },
        |x| gather_ref(&x[0], d, &ids),
        EXACT,
        usize::MAX,
    );
    // An f16 table and ids of rank 2: the same gradient (it does not depend on the table).
    let ids = [1i32, 4, 4, 1, 4, 0];
    let vals: Vec<f16> = rng
        .vec(5 * 6, -1.0, 1.0)
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let table = Tensor::from_f16(gpu(), &[5, 6], &vals)
        .unwrap()
        .requires_grad();
    let it = Tensor::from_i32(gpu(), &[2, 3], &ids).unwrap();
    let y = table.embedding(&it).unwrap();
    let c = rng.vec(36, -1.0, 1.0);
    let ct = Tensor::from_f32(gpu(), &[2, 3, 6], &c).unwrap();
    let dt = grad(&[&y], &[&ct], &[&table]).unwrap();
    let mut expected = vec![0.0f64; 30];
    for (t, &id) in ids.iter().enumerate() {
        for k in 0..6 {
            expected[id as usize * 6 + k] += c[t * 6 + k] as f64;
        }
    }
    // Sums of ≤ 3 cotangents ≤ 1 in token order: ≤ 2 f32 roundings.
    assert_close("f16 table gradient", &dt[0], &expected, 1e-6, 0.0);
}

#[test]
fn embedding_gradient_of_a_chunked_table_is_an_error() {
    let small = Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size: Some(64 * 1024),
        ..Default::default()
    })
    .unwrap();
    let (v, d) = (3000usize, 27usize);
    let vals: Vec<f16> = vec![f16::from_f32(0.5); v * d];
    let table = Tensor::from_f16(&small, &[v, d], &vals).unwrap();
    assert!(table.is_chunked());
    let table = table.requires_grad();
    let ids = Tensor::from_i32(&small, &[3], &[1, 2999, 1500]).unwrap();
    let y = table.embedding(&ids).unwrap();
    let ct = Tensor::full(&small, y.shape(), 1.0).unwrap();
    let e = grad(&[&y], &[&ct], &[&table]).unwrap_err().to_string();
    assert!(
        e.contains("embedding backward") && e.contains("[3000, 27]"),
        "{e}"
    );
}

#[test]
fn embedding_gradient_over_more_tokens_than_a_loop_cap_allows_is_an_error() {
    // Every invocation of the table gradient loops over all tokens: a forced cap of 600 (half kept
    // as margin) admits 200 tokens and refuses 400, as lavapipe's 65535 refuses 32,767.
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        max_loop_iterations: Some(600),
        ..Default::default()
    })
    .unwrap();
    let table = Tensor::full(&g, &[10, 4], 0.5).unwrap().requires_grad();
    for (tokens, ok) in [(200usize, true), (400, false)] {
        let ids: Vec<i32> = (0..tokens).map(|t| (t % 10) as i32).collect();
        let y = table
            .embedding(&Tensor::from_i32(&g, &[tokens], &ids).unwrap())
            .unwrap();
        let ct = Tensor::full(&g, y.shape(), 1.0).unwrap();
        let r = grad(&[&y], &[&ct], &[&table]);
        if ok {
            // Each id gathered tokens/10 times, each cotangent 1: exact.
            let expected = vec![(tokens / 10) as f64; 40];
            assert_close(
                "table gradient under a cap",
                &r.unwrap()[0],
                &expected,
                0.0,
                0.0,
            );
        } else {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("embedding backward") && e.contains("400 tokens"),
                "{e}"
            );
        }
    }
}
