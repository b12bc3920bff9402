//! Fused attention against a materialised f64 softmax(scale·q·kᵀ + bias)·v, on both kernel
//! variants, with sizes that divide neither the query tiles (64 or 128 rows) nor the key tiles.
//! The reference also serves precision f16 (precision_f16.rs), rounding what the kernels round.

use half::f16;
use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::{Gpu, Tensor};

use crate::common::{
    assert_close, exp_err, f64s, gpu, gpu_variant, score_err, Operands, Rng, Weighted, U,
};

/// Host copies of the operands, f32 values exactly as uploaded (f16 ones already rounded).
#[derive(Clone)]
pub(crate) struct Data {
    pub dims: [usize; 4], // B, Lq, H, D
    pub lk1: usize,
    pub lk2: usize,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub k2: Vec<f32>,
    pub v2: Vec<f32>,
    pub bias: Option<(usize, Vec<f32>)>, // (Bb, [Bb, H, Lq, Lk])
    pub mask: Option<Vec<f32>>,
    pub scale: f32,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Case {
    pub b: usize,
    pub lq: usize,
    pub h: usize,
    pub d: usize,
    pub lk1: usize,
    pub lk2: usize,
    /// Some(Bb) adds a bias of batch Bb.
    pub bias: Option<usize>,
    /// Mask ~30% of the keys, and every key of the last batch entry.
    pub mask: bool,
    /// Store k, v (and k2, v2) as f16.
    pub kv_f16: bool,
}

pub(crate) fn round_f16(x: Vec<f32>) -> Vec<f32> {
    x.into_iter().map(|v| f16::from_f32(v).to_f32()).collect()
}

pub(crate) fn data(c: Case, rng: &mut Rng) -> Data {
    let lk = c.lk1 + c.lk2;
    let kv = |rng: &mut Rng, l: usize| {
        let x = rng.vec(c.b * l * c.h * c.d, -1.0, 1.0);
        if c.kv_f16 {
            round_f16(x)
        } else {
            x
        }
    };
    let mask = c.mask.then(|| {
        let mut m: Vec<f32> = (0..c.b * lk)
            .map(|_| if rng.uniform() < 0.3 { 0.0 } else { 1.0 })
            .collect();
        for x in &mut m[(c.b - 1) * lk..] {
            *x = 0.0;
        }
        m
    });
    Data {
        dims: [c.b, c.lq, c.h, c.d],
        lk1: c.lk1,
        lk2: c.lk2,
        q: rng.vec(c.b * c.lq * c.h * c.d, -1.0, 1.0),
        k: kv(rng, c.lk1),
        v: kv(rng, c.lk1),
        k2: kv(rng, c.lk2),
        v2: kv(rng, c.lk2),
        bias: c
            .bias
            .map(|bb| (bb, rng.vec(bb * c.h * c.lq * lk, -2.0, 2.0))),
        mask,
        // q·k has standard deviation √D/3 for uniform [-1, 1] entries: scores of standard
        // deviation ~2 give softmaxes that are neither one-hot nor flat.
        scale: 6.0 / (c.d as f32).sqrt(),
    }
}

/// Materialised attention in f64 for the query rows `rows` (all when None): [B, rows, H, D].
pub(crate) fn reference(x: &Data, rows: Option<&[usize]>) -> Vec<f64> {
    reference_ops(x, rows, Operands::Exact).0
}

/// Key `j` (over both segments) and its value for batch `bi`, head `hi`, as `ops` takes them.
pub(crate) fn key_value(
    x: &Data,
    ops: Operands,
    bi: usize,
    j: usize,
    hi: usize,
) -> (Vec<f64>, Vec<f64>) {
    let [_, _, h, d] = x.dims;
    let (kk, vv, l, jj) = if j < x.lk1 {
        (&x.k, &x.v, x.lk1, j)
    } else {
        (&x.k2, &x.v2, x.lk2, j - x.lk1)
    };
    let o = ((bi * l + jj) * h + hi) * d;
    let row = |t: &[f32]| ops.inputs(&f64s(&t[o..o + d]));
    (row(kk), row(vv))
}

/// [`reference`] with every product's operands taken as `ops` takes them (the weights exp(s − m)
/// as P·V's), and per output the bound on the kernels' error (`Weighted`). Rounded weights are
/// the kernels' only if their running maximum is m from the first key on: the first attended
/// key must score highest. No weight may be below 2⁻¹⁰ (f16 subnormals are not tested).
pub(crate) fn reference_ops(
    x: &Data,
    rows: Option<&[usize]>,
    ops: Operands,
) -> (Vec<f64>, Vec<f64>) {
    let [b, lq, h, d] = x.dims;
    let lk = x.lk1 + x.lk2;
    let all: Vec<usize> = (0..lq).collect();
    let rows = rows.unwrap_or(&all);
    let row = |t: &[f32], o: usize| ops.inputs(&f64s(&t[o..o + d]));
    let key = |bi: usize, j: usize, hi: usize| key_value(x, ops, bi, j, hi);
    let (mut out, mut bound, sc) = (Vec::new(), Vec::new(), x.scale as f64);
    for bi in 0..b {
        for &i in rows {
            for hi in 0..h {
                let q = row(&x.q, ((bi * lq + i) * h + hi) * d);
                let mut scores = Vec::new();
                for j in 0..lk {
                    if x.mask.as_ref().is_some_and(|m| m[bi * lk + j] == 0.0) {
                        continue;
                    }
                    let (kr, _) = key(bi, j, hi);
                    let dot: f64 = q.iter().zip(&kr).map(|(a, c)| a * c).sum();
                    let mag: f64 = q.iter().zip(&kr).map(|(a, c)| (a * c).abs()).sum();
                    let bias = x.bias.as_ref().map_or(0.0, |(bb, bias)| {
                        let bo = if *bb == 1 { 0 } else { bi };
                        bias[((bo * h + hi) * lq + i) * lk + j] as f64
                    });
                    scores.push((j, sc * dot + bias, score_err(d, sc * mag, bias)));
                }
                let m = scores.iter().map(|f| f.1).fold(f64::NEG_INFINITY, f64::max);
                let em = scores.first().map_or(0.0, |f| f.2);
                assert!(ops == Operands::Exact || scores.first().is_none_or(|f| f.1 == m));
                let (mut acc, mut l, mut el) = (Weighted::new(d), 0.0, 0.0);
                for &(j, s, e) in &scores {
                    let w = (s - m).exp();
                    assert!(ops == Operands::Exact || w >= 1.0 / 1024.0, "weight {w}");
                    let ew = exp_err(w, s - m, e + em);
                    (l, el) = (l + w, el + ew);
                    acc.add(ops, w, ew, &key(bi, j, hi).1);
                }
                // No unmasked key: the row is defined as zeros. 1/l errs by l's sum (its terms'
                // errors; an addition per term, a rescaling per 4) and the division.
                let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
                let (o, e) = acc.finish(inv, el * inv + 3.0 * (scores.len() as f64 + 2.0) * U);
                out.extend(o);
                bound.extend(e);
            }
        }
    }
    (out, bound)
}

pub(crate) fn upload(g: &Gpu, shape: &[usize], x: &[f32], as_f16: bool) -> Tensor {
    if as_f16 {
        let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        Tensor::from_f16(g, shape, &h).unwrap()
    } else {
        Tensor::from_f32(g, shape, x).unwrap()
    }
}

pub(crate) fn run(g: &Gpu, x: &Data, kv_f16: bool) -> Tensor {
    let [b, lq, h, d] = x.dims;
    let lk = x.lk1 + x.lk2;
    let q = upload(g, &[b, lq, h, d], &x.q, false);
    let k = upload(g, &[b, x.lk1, h, d], &x.k, kv_f16);
    let v = upload(g, &[b, x.lk1, h, d], &x.v, kv_f16);
    let k2 = upload(g, &[b, x.lk2, h, d], &x.k2, kv_f16);
    let v2 = upload(g, &[b, x.lk2, h, d], &x.v2, kv_f16);
    let bias = x
        .bias
        .as_ref()
        .map(|(bb, data)| upload(g, &[*bb, h, lq, lk], data, false));
    let mask = x.mask.as_ref().map(|m| upload(g, &[b, lk], m, false));
    let two = x.lk2 > 0;
    attention(&AttentionArgs {
        q: &q,
        k: &k,
        v: &v,
        k2: two.then_some(&k2),
        v2: two.then_some(&v2),
        bias: bias.as_ref(),
        key_mask: mask.as_ref(),
        scale: x.scale,
    })
    .unwrap()
}

// Outputs are convex combinations of values in [-1, 1], so an absolute bound fits. Each weight
// exp(s − m) may be off by WGSL's 3 + 2|s − m| ULP (≤ ~35 ULP ≈ 2e-6 relative for the score
// spreads here) plus the f32 score's own rounding (a D-term dot, scale folded into q: ≲ 3e-7);
// the output, a ratio of two weighted sums, doubles that (≲ 5e-6) and the sums' roundings add at
// most (terms)·6e-8 ≈ 6e-6 for ≤ 100 keys. lavapipe stays below 6e-7 on every case.
const ATOL: f64 = 1e-5;

fn check(c: Case, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = data(c, &mut rng);
    let expected = reference(&x, None);
    for cpu in [true, false] {
        let out = run(gpu_variant(cpu), &x, c.kv_f16);
        assert_eq!(out.shape(), &x.dims);
        let variant = if cpu { "direct" } else { "tiled" };
        assert_close(
            &format!(
                "attention ({variant}) B{} Lq{} H{} D{} Lk{}+{} bias {:?} mask {} f16 {}",
                c.b, c.lq, c.h, c.d, c.lk1, c.lk2, c.bias, c.mask, c.kv_f16
            ),
            &out,
            &expected,
            ATOL,
            0.0,
        );
    }
}

pub(crate) const BASE: Case = Case {
    b: 2,
    lq: 37,
    h: 3,
    d: 64,
    lk1: 13,
    lk2: 0,
    bias: None,
    mask: false,
    kv_f16: false,
};

#[test]
fn one_segment() {
    check(BASE, 21);
}

#[test]
fn two_segments() {
    check(
        Case {
            lk2: 29,
            d: 40,
            ..BASE
        },
        22,
    );
}

#[test]
fn bias_shared_and_per_batch() {
    check(
        Case {
            bias: Some(1),
            d: 8,
            lk1: 70,
            ..BASE
        },
        23,
    );
    check(
        Case {
            bias: Some(2),
            lk2: 29,
            ..BASE
        },
        24,
    );
}

#[test]
fn key_mask_with_a_fully_masked_row() {
    check(
        Case {
            mask: true,
            lk2: 29,
            bias: Some(2),
            d: 20,
            ..BASE
        },
        25,
    );
}

#[test]
fn f16_keys_and_values() {
    check(
        Case {
            kv_f16: true,
            lk2: 29,
            mask: true,
            ..BASE
        },
        26,
    );
}

#[test]
fn head_dims_not_multiple_of_four_and_largest() {
    for (i, d) in [13usize, 6, 128].into_iter().enumerate() {
        check(
            Case {
                d,
                h: 2,
                lq: 150,
                lk1: 45,
                lk2: 3,
                ..BASE
            },
            27 + i as u64,
        );
    }
}

#[test]
fn bad_shapes_are_errors_naming_op_and_shapes() {
    let g = gpu();
    let z = |shape: &[usize]| Tensor::zeros(g, shape).unwrap();
    let (q, k) = (z(&[2, 5, 3, 8]), z(&[2, 7, 3, 8]));
    let args = AttentionArgs::new(&q, &k, &k, 0.5);
    let err = |a: AttentionArgs| attention(&a).unwrap_err().to_string();
    let expect = |e: String, parts: &[&str]| {
        assert!(e.contains("attention"), "{e}");
        for p in parts {
            assert!(e.contains(p), "{e} lacks {p}");
        }
    };
    let q3 = z(&[2, 5, 24]);
    expect(err(AttentionArgs { q: &q3, ..args }), &["[2, 5, 24]"]);
    let kh = z(&[2, 7, 4, 8]);
    expect(
        err(AttentionArgs { k: &kh, ..args }),
        &["[2, 7, 4, 8]", "[2, 5, 3, 8]"],
    );
    let vs = z(&[2, 6, 3, 8]);
    expect(
        err(AttentionArgs { v: &vs, ..args }),
        &["[2, 6, 3, 8]", "[2, 7, 3, 8]"],
    );
    expect(
        err(AttentionArgs {
            k2: Some(&k),
            ..args
        }),
        &["k2", "v2"],
    );
    let k2 = z(&[2, 4, 3, 8]);
    let v2 = z(&[2, 4, 3, 9]);
    expect(
        err(AttentionArgs {
            k2: Some(&k2),
            v2: Some(&v2),
            ..args
        }),
        &["[2, 4, 3, 9]"],
    );
    // Bias batch 3 is neither 1 nor B; then the right batch but keys of one segment only.
    let b3 = z(&[3, 3, 5, 11]);
    let b1 = z(&[1, 3, 5, 7]);
    let with2 = AttentionArgs {
        k2: Some(&k2),
        v2: Some(&k2),
        ..args
    };
    expect(
        err(AttentionArgs {
            bias: Some(&b3),
            ..with2
        }),
        &["[3, 3, 5, 11]", "11 keys"],
    );
    expect(
        err(AttentionArgs {
            bias: Some(&b1),
            ..with2
        }),
        &["[1, 3, 5, 7]"],
    );
    let m = z(&[2, 7]);
    expect(
        err(AttentionArgs {
            key_mask: Some(&m),
            ..with2
        }),
        &["[2, 7]", "[2, 11]"],
    );
    // Head dims past the flash kernels' 128 are taken only by plain attention (query blocks).
    let qd = z(&[1, 2, 1, 129]);
    let md = z(&[1, 2]);
    expect(
        err(AttentionArgs {
            key_mask: Some(&md),
            ..AttentionArgs::new(&qd, &qd, &qd, 1.0)
        }),
        &["129", "key mask"],
    );
    let qi = Tensor::from_i32(g, &[1, 1, 1, 1], &[1]).unwrap();
    expect(err(AttentionArgs { q: &qi, ..args }), &["i32"]);
    expect(
        err(AttentionArgs {
            scale: f32::NAN,
            ..args
        }),
        &["NaN"],
    );
}

#[test]
fn empty_sizes() {
    let g = gpu();
    let z = |shape: &[usize]| Tensor::zeros(g, shape).unwrap();
    // No queries: an empty output. No keys: every row is fully masked, so zeros.
    let (q0, k) = (z(&[2, 0, 3, 8]), z(&[2, 4, 3, 8]));
    assert_eq!(q0.attention(&k, &k, 1.0).unwrap().shape(), &[2, 0, 3, 8]);
    let (q, k0) = (z(&[2, 5, 3, 8]), z(&[2, 0, 3, 8]));
    let out = q.attention(&k0, &k0, 1.0).unwrap();
    assert_close(
        "attention without keys",
        &out,
        &[0.0; 2 * 5 * 3 * 8],
        0.0,
        0.0,
    );
}

/// The requirement: 4096 queries × 4096 keys in one op (a 64 MiB score matrix in f32 if it
/// were stored), checked on 64 sampled query rows.
#[test]
fn prove_it_at_4096_queries_by_4096_keys() {
    let n = 4096;
    let c = Case {
        b: 1,
        lq: n,
        h: 1,
        d: 64,
        lk1: n,
        ..BASE
    };
    let mut rng = Rng::new(31);
    let x = data(c, &mut rng);
    let start = std::time::Instant::now();
    let out = run(gpu(), &x, false);
    let got = out.to_vec().unwrap();
    eprintln!("attention 4096 x 4096 (D 64): {:?}", start.elapsed());
    assert!(out.guards_intact().unwrap());
    assert!(got.iter().all(|v| !v.is_nan()), "NaN in the output");
    let rows: Vec<usize> = (0..64).map(|r| (r * 4099 / 64 + r % 7) % n).collect();
    let expected = reference(&x, Some(&rows));
    // As ATOL above, but the two running sums now have 4096 terms each: their rounding grows like
    // √4096·6e-8 ≈ 4e-6 relative for round-to-nearest errors (the n·eps worst case needs every
    // rounding in one direction). lavapipe's worst is 6e-7.
    for (r, &i) in rows.iter().enumerate() {
        for dd in 0..64 {
            let (g, e) = (got[i * 64 + dd] as f64, expected[r * 64 + dd]);
            assert!(
                (g - e).abs() <= 2e-5,
                "row {i} dim {dd}: {g} but the reference is {e}"
            );
        }
    }
}

/// Keys split over several dispatches on CPU adapters (~1400 keys each at D 64 for the direct
/// variant, ~3100 for the tiled one): the state carried between them across both segments,
/// a shared bias and a mask that empties the second batch entry.
#[test]
fn key_ranges_split_over_dispatches() {
    check(
        Case {
            lq: 9,
            h: 2,
            lk1: 1500,
            lk2: 1700,
            bias: Some(1),
            mask: true,
            ..BASE
        },
        39,
    );
}

/// lavapipe breaks out of every loop of an invocation after 65535 iterations in all; the op
/// splits long key ranges over dispatches so that no result is cut short. 70,000 keys with D 20
/// (a case that used to come out silently wrong) and D 64 (half-written), on both variants.
#[test]
fn key_ranges_longer_than_lavapipes_loop_limit() {
    for d in [20usize, 64] {
        let c = Case {
            b: 1,
            lq: 5,
            h: 1,
            d,
            lk1: 70_000,
            ..BASE
        };
        check(c, 40 + d as u64);
    }
}
