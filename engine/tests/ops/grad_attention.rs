//! Backward rules of softmax and fused attention against finite differences of f64 references, on
//! both kernel variants; the long-range splitting of CPU adapters; pruning of unneeded kernels.
//! The sampled f64 gradients also serve precision f16 (precision_f16.rs).

use half::f16;
use iterinv_engine::grad::grad;
use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{
    check_vjp_on, exp_err, gpu_variant, score_err, GradInput, Operands, Rng, Weighted, U,
};

/// Sizes and the constant operands (bias, mask) of one attention case.
#[derive(Clone)]
pub(crate) struct Case {
    pub b: usize,
    pub lq: usize,
    pub h: usize,
    pub d: usize,
    pub lk1: usize,
    pub lk2: usize,
    /// (Bb, [Bb, H, Lq, Lk]).
    pub bias: Option<(usize, Vec<f32>)>,
    /// [B, Lk], 0 masks a key.
    pub mask: Option<Vec<f32>>,
    pub scale: f32,
}

impl Case {
    pub(crate) fn new(b: usize, lq: usize, h: usize, d: usize, lk1: usize, lk2: usize) -> Case {
        Case {
            b,
            lq,
            h,
            d,
            lk1,
            lk2,
            bias: None,
            mask: None,
            // Scores of standard deviation ~2 for entries uniform in [-1, 1] (as the forward's
            // tests): softmaxes neither one-hot nor flat, so every term of the gradient matters.
            scale: 6.0 / (d as f32).sqrt(),
        }
    }
    fn lk(&self) -> usize {
        self.lk1 + self.lk2
    }
    pub(crate) fn with_bias(mut self, bb: usize, rng: &mut Rng) -> Case {
        let n = bb * self.h * self.lq * self.lk();
        self.bias = Some((bb, rng.vec(n, -2.0, 2.0)));
        self
    }
    /// ~30% of the keys masked; with `full`, every key of the last batch entry (fully masked rows).
    pub(crate) fn with_mask(mut self, full: bool, rng: &mut Rng) -> Case {
        let lk = self.lk();
        let mut m: Vec<f32> = (0..self.b * lk)
            .map(|_| if rng.uniform() < 0.3 { 0.0 } else { 1.0 })
            .collect();
        if full {
            m[(self.b - 1) * lk..].fill(0.0);
        }
        self.mask = Some(m);
        self
    }
    pub(crate) fn shapes(&self) -> Vec<Vec<usize>> {
        let (b, h, d) = (self.b, self.h, self.d);
        let mut s = vec![
            vec![b, self.lq, h, d],
            vec![b, self.lk1, h, d],
            vec![b, self.lk1, h, d],
        ];
        if self.lk2 > 0 {
            s.extend([vec![b, self.lk2, h, d], vec![b, self.lk2, h, d]]);
        }
        s
    }
}

/// Materialised softmax(scale·q·kᵀ + bias, masked)·v in f64; x = [q, k, v, (k2, v2)]. A row with
/// no attended key is zeros.
pub(crate) fn reference(c: &Case, x: &[Vec<f64>]) -> Vec<f64> {
    let (b, lq, h, d, lk) = (c.b, c.lq, c.h, c.d, c.lk());
    let key = |bi: usize, j: usize, hi: usize| -> (&[f64], &[f64]) {
        let (kk, vv, l, jj) = if j < c.lk1 {
            (&x[1], &x[2], c.lk1, j)
        } else {
            (&x[3], &x[4], c.lk2, j - c.lk1)
        };
        let o = ((bi * l + jj) * h + hi) * d;
        (&kk[o..o + d], &vv[o..o + d])
    };
    let mut out = vec![0.0; b * lq * h * d];
    for bi in 0..b {
        for i in 0..lq {
            for hi in 0..h {
                let qo = ((bi * lq + i) * h + hi) * d;
                let q = &x[0][qo..qo + d];
                let mut scores = Vec::new();
                for j in 0..lk {
                    if c.mask.as_ref().is_some_and(|m| m[bi * lk + j] == 0.0) {
                        continue;
                    }
                    let dot: f64 = q.iter().zip(key(bi, j, hi).0).map(|(a, k)| a * k).sum();
                    let mut s = c.scale as f64 * dot;
                    if let Some((bb, bias)) = &c.bias {
                        let bo = if *bb == 1 { 0 } else { bi };
                        s += bias[((bo * h + hi) * lq + i) * lk + j] as f64;
                    }
                    scores.push((j, s));
                }
                let m = scores.iter().fold(f64::NEG_INFINITY, |a, &(_, s)| a.max(s));
                let l: f64 = scores.iter().map(|&(_, s)| (s - m).exp()).sum();
                for &(j, s) in &scores {
                    let p = (s - m).exp() / l;
                    for (o, v) in out[qo..qo + d].iter_mut().zip(key(bi, j, hi).1) {
                        *o += p * v;
                    }
                }
            }
        }
    }
    out
}

/// The op on uploaded q, k, v (k2, v2) with the case's bias and mask.
pub(crate) fn run(c: &Case, t: &[Tensor]) -> Tensor {
    let g = t[0].gpu();
    let bias = c
        .bias
        .as_ref()
        .map(|(bb, v)| Tensor::from_f32(g, &[*bb, c.h, c.lq, c.lk()], v).unwrap());
    let mask = c
        .mask
        .as_ref()
        .map(|m| Tensor::from_f32(g, &[c.b, c.lk()], m).unwrap());
    attention(&AttentionArgs {
        q: &t[0],
        k: &t[1],
        v: &t[2],
        k2: t.get(3),
        v2: t.get(4),
        bias: bias.as_ref(),
        key_mask: mask.as_ref(),
        scale: c.scale,
    })
    .unwrap()
}

// Gradients are sums over ≤ 14 keys (dQ) or ≤ 11 queries (dK, dV) of terms built from f32 scores
// (a D-term dot product, ≲ 3e-7 relative), exp (≤ ~35 ULP ≈ 2e-6 relative for these score
// spreads, as the forward's tests) and one more D-term dot (dO·v); with the 1/l normalisation the
// error is a few 1e-6 of the largest gradient. The f64 finite differences' truncation error
// (h²·f''' with h = 1e-4 and derivatives of order scale³ ≈ 30) is ~3e-7. 2e-5 covers both with room.
pub(crate) const RTOL: f64 = 2e-5;

/// Check the selected gradients (`wrt` per input: q, k, v, k2, v2) on both kernel variants.
fn check(what: &str, c: &Case, wrt: &[bool], seed: u64) {
    let mut rng = Rng::new(seed);
    let inputs: Vec<GradInput> = c
        .shapes()
        .iter()
        .zip(wrt)
        .map(|(s, &w)| GradInput::new(s, rng.vec(s.iter().product(), -1.0, 1.0), w))
        .collect();
    for cpu in [true, false] {
        let variant = if cpu { "direct" } else { "tiled" };
        check_vjp_on(
            gpu_variant(cpu),
            &format!(
                "attention {what} ({variant}) B{} Lq{} H{} D{} Lk{}+{} bias {:?} mask {}",
                c.b,
                c.lq,
                c.h,
                c.d,
                c.lk1,
                c.lk2,
                c.bias.as_ref().map(|b| b.0),
                c.mask.is_some()
            ),
            &inputs,
            |t| run(c, t),
            |x| reference(c, x),
            RTOL,
            150,
        );
    }
}

const ALL: [bool; 5] = [true; 5];

/// Head dims past the flash kernels' 128 run in query blocks made of recorded ops (matmul,
/// softmax, permutes): their gradients compose to attention's.
#[test]
fn wide_heads_through_query_blocks() {
    check("all", &Case::new(2, 7, 2, 136, 9, 0), &ALL, 505);
}

#[test]
fn two_segments_shared_bias_head_dim_8() {
    let mut rng = Rng::new(500);
    let c = Case::new(2, 11, 3, 8, 5, 9).with_bias(1, &mut rng);
    check("all", &c, &ALL, 501);
}

#[test]
fn two_segments_per_batch_bias_and_mask_with_fully_masked_rows_head_dim_20() {
    let mut rng = Rng::new(510);
    let c = Case::new(2, 11, 3, 20, 5, 9)
        .with_bias(2, &mut rng)
        .with_mask(true, &mut rng);
    check("all", &c, &ALL, 511);
}

#[test]
fn one_segment_with_mask_head_dim_8() {
    let mut rng = Rng::new(520);
    let c = Case::new(2, 11, 3, 8, 5, 0).with_mask(true, &mut rng);
    check("all", &c, &ALL[..3], 521);
}

#[test]
fn subsets_of_the_gradients() {
    let mut rng = Rng::new(530);
    let c = Case::new(2, 11, 3, 20, 5, 9)
        .with_bias(1, &mut rng)
        .with_mask(false, &mut rng);
    // dQ alone; dK of segment 1 and dV of segment 2 without dQ (statistics-only kernel, one output
    // of the dK/dV kernel each); the values alone.
    check("q", &c, &[true, false, false, false, false], 531);
    check("k, v2", &c, &[false, true, false, false, true], 532);
    check("v, v2", &c, &[false, false, true, false, true], 533);
}

/// One sampled row of a gradient: its index, f64 values and per element the bound on the kernels'
/// error (`Weighted`).
pub(crate) struct GradRow {
    pub row: usize,
    pub value: Vec<f64>,
    pub bound: Vec<f64>,
}

/// f64 gradients of Σ dO·attention(q, k, v) for one (batch, head) at sampled query rows (dQ) and
/// key rows (dK, dV), each product's operands taken as `ops` takes them with the weights as the
/// kernels form them: dQ's dS from the unnormalised exp(s − m) (so the first attended key must
/// score highest, see attention.rs), dK's dS and dV's P from the final statistics. Δ = dO·O is
/// read off the forward's output `o` when given, as the kernels read it; x = [q, k, v].
pub(crate) fn sampled_grads(
    c: &Case,
    x: &[Vec<f64>],
    go: &[f64],
    rows: &[usize],
    ops: Operands,
    o: Option<&[f64]>,
) -> [Vec<GradRow>; 3] {
    assert_eq!((c.b, c.h, c.lk2), (1, 1, 0));
    let (lq, lk, d, sc) = (c.lq, c.lk1, c.d, c.scale as f64);
    let [q, k, v, g] = [&x[0][..], &x[1][..], &x[2][..], go].map(|t| ops.inputs(t));
    let row = |t: &[f64], i: usize| t[i * d..(i + 1) * d].to_vec();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mag = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum::<f64>();
    let on = |j: usize| c.mask.as_ref().is_none_or(|m| m[j] != 0.0);
    // Per (i, j) the weight exp(s − m) and its error (0 for masked keys); per row l and its
    // relative error (as attention.rs), Δ_i = dO_i·O_i and its error (D products and additions).
    let mut w = vec![(0.0, 0.0); lq * lk];
    let mut l = vec![(0.0, 0.0); lq];
    let mut delta = vec![(0.0, 0.0); lq];
    for i in 0..lq {
        let qi = row(&q, i);
        let keys: Vec<usize> = (0..lk).filter(|&j| on(j)).collect();
        let s: Vec<(f64, f64)> = keys
            .iter()
            .map(|&j| {
                let b = c.bias.as_ref().map_or(0.0, |(_, b)| b[i * lk + j] as f64);
                let kj = row(&k, j);
                (sc * dot(&qi, &kj) + b, score_err(d, sc * mag(&qi, &kj), b))
            })
            .collect();
        let m = s.iter().map(|f| f.0).fold(f64::NEG_INFINITY, f64::max);
        assert!(ops == Operands::Exact || s.first().is_none_or(|f| f.0 == m));
        let em = s.first().map_or(0.0, |f| f.1);
        let mut oi = Weighted::new(d);
        for (&j, &(sj, e)) in keys.iter().zip(&s) {
            let wij = (sj - m).exp();
            w[i * lk + j] = (wij, exp_err(wij, sj - m, e + em));
            l[i] = (l[i].0 + wij, l[i].1 + w[i * lk + j].1);
            oi.add(ops, wij, w[i * lk + j].1, &row(&v, j));
        }
        let inv = if l[i].0 > 0.0 { 1.0 / l[i].0 } else { 0.0 };
        l[i].1 = l[i].1 * inv + 3.0 * (keys.len() as f64 + 2.0) * U;
        let oi = o.map_or_else(|| oi.finish(inv, 0.0).0, |o| row(o, i));
        let gi = row(go, i);
        delta[i] = (dot(&gi, &oi), 2.02 * d as f64 * U * mag(&gi, &oi));
    }
    // dS = weight·(dO_i·v_j − Δ_i) in f32 from a weight (value, error).
    let ds = |i: usize, j: usize, (wt, ew): (f64, f64)| {
        let (gi, vj) = (row(&g, i), row(&v, j));
        let (dp, edp) = (dot(&gi, &vj), 1.01 * d as f64 * U * mag(&gi, &vj));
        let x = wt * (dp - delta[i].0);
        (
            x,
            ew * (dp - delta[i].0).abs() + wt * (edp + delta[i].1) + 2.0 * U * x.abs(),
        )
    };
    let [mut dq, mut dk, mut dv] = [vec![], vec![], vec![]];
    for &r in rows {
        let i = r % lq;
        let mut aq = Weighted::new(d);
        for j in (0..lk).filter(|&j| on(j)) {
            let (x, e) = ds(i, j, w[i * lk + j]);
            aq.add(ops, x, e, &row(&k, j));
        }
        let inv = if l[i].0 > 0.0 { 1.0 / l[i].0 } else { 0.0 };
        let (value, bound) = aq.finish(sc * inv, l[i].1 + 3.0 * U);
        dq.push(GradRow {
            row: i,
            value,
            bound,
        });
        let j = r % lk;
        let (mut ak, mut av) = (Weighted::new(d), Weighted::new(d));
        for i in (0..lq).filter(|&i| on(j) && l[i].0 > 0.0) {
            let (wt, ew) = w[i * lk + j];
            let p = (wt / l[i].0, (ew + wt * (l[i].1 + 3.0 * U)) / l[i].0);
            let (x, e) = ds(i, j, p);
            ak.add(ops, x, e, &row(&q, i));
            av.add(ops, p.0, p.1, &row(&g, i));
        }
        let ((value, bound), (v2, b2)) = (ak.finish(sc, U), av.finish(1.0, 0.0));
        dk.push(GradRow {
            row: j,
            value,
            bound,
        });
        dv.push(GradRow {
            row: j,
            value: v2,
            bound: b2,
        });
    }
    [dq, dk, dv]
}

/// 1500 queries × 1500 keys at D 64: on CPU adapters both backward loops exceed one dispatch's
/// share (~770 keys or queries, see `grad::attention::per_dispatch`), so dQ and dK/dV carry their
/// sums over two dispatches each. Checked at 24 sampled rows of each gradient against f64.
#[test]
fn long_ranges_split_over_dispatches() {
    let mut rng = Rng::new(540);
    let n = 1500;
    let c = Case::new(1, n, 1, 64, n, 0)
        .with_bias(1, &mut rng)
        .with_mask(false, &mut rng);
    let data: Vec<Vec<f32>> = c
        .shapes()
        .iter()
        .map(|s| rng.vec(s.iter().product(), -1.0, 1.0))
        .collect();
    let go = rng.vec(n * 64, -1.0, 1.0);
    let x: Vec<Vec<f64>> = data
        .iter()
        .map(|v| v.iter().map(|&a| a as f64).collect())
        .collect();
    let go64: Vec<f64> = go.iter().map(|&a| a as f64).collect();
    let rows: Vec<usize> = (0..24).map(|r| r * 997 % n).collect();
    let expected = sampled_grads(&c, &x, &go64, &rows, Operands::Exact, None);
    for cpu in [true, false] {
        // A device of its own, so that the dispatch counts are this test's.
        let g = Gpu::with_options(GpuOptions {
            poison: true,
            cpu_kernels: Some(cpu),
            ..Default::default()
        })
        .unwrap();
        let t: Vec<Tensor> = data
            .iter()
            .zip(c.shapes())
            .map(|(v, s)| Tensor::from_f32(&g, &s, v).unwrap().requires_grad())
            .collect();
        let out = run(&c, &t);
        let cot = Tensor::from_f32(&g, out.shape(), &go).unwrap();
        let suffix = if cpu { "direct" } else { "tiled" };
        let (q_before, kv_before) = (
            g.kernel_dispatches(&format!("attention_grad_q_{suffix}")),
            g.kernel_dispatches(&format!("attention_grad_kv_{suffix}")),
        );
        let grads = grad(&[&out], &[&cot], &[&t[0], &t[1], &t[2]]).unwrap();
        if g.info().adapter.device_type == wgpu::DeviceType::Cpu {
            assert!(g.kernel_dispatches(&format!("attention_grad_q_{suffix}")) - q_before >= 2);
            assert!(g.kernel_dispatches(&format!("attention_grad_kv_{suffix}")) - kv_before >= 2);
        }
        for ((name, got), want) in ["dq", "dk", "dv"].iter().zip(&grads).zip(&expected) {
            assert!(got.guards_intact().unwrap());
            let got = got.to_vec().unwrap();
            let scale = want
                .iter()
                .flat_map(|r| r.value.iter())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            // As RTOL above, but sums of 1500 terms: their f32 rounding grows like √1500·6e-8
            // ≈ 2e-6 relative for round-to-nearest errors.
            for GradRow { row: r, value, .. } in want {
                for (t, w) in value.iter().enumerate() {
                    let gv = got[r * 64 + t] as f64;
                    assert!(
                        (gv - w).abs() <= 5e-5 * scale,
                        "{name} ({suffix}) row {r} dim {t}: {gv}, reference {w} (scale {scale})"
                    );
                }
            }
        }
    }
}

/// f16-stored keys and values are read as the same f32 values: the same gradients as f32 copies.
#[test]
fn f16_keys_and_values_match_f32() {
    let mut rng = Rng::new(550);
    let c = Case::new(2, 11, 3, 20, 5, 9).with_mask(true, &mut rng);
    let g = gpu_variant(true);
    let shapes = c.shapes();
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| {
            rng.vec(s.iter().product(), -1.0, 1.0)
                .into_iter()
                .map(|v| f16::from_f32(v).to_f32())
                .collect()
        })
        .collect();
    let go = rng.vec(shapes[0].iter().product(), -1.0, 1.0);
    let cot = Tensor::from_f32(g, &shapes[0], &go).unwrap();
    let grads_for = |half: bool| -> Vec<Vec<f32>> {
        let t: Vec<Tensor> = data
            .iter()
            .zip(&shapes)
            .enumerate()
            .map(|(i, (v, s))| {
                let t = if half && i > 0 {
                    let h: Vec<f16> = v.iter().map(|&a| f16::from_f32(a)).collect();
                    Tensor::from_f16(g, s, &h).unwrap()
                } else {
                    Tensor::from_f32(g, s, v).unwrap()
                };
                t.requires_grad()
            })
            .collect();
        let out = run(&c, &t);
        let refs: Vec<&Tensor> = t.iter().collect();
        grad(&[&out], &[&cot], &refs)
            .unwrap()
            .iter()
            .map(|t| t.to_vec().unwrap())
            .collect()
    };
    let (a, b) = (grads_for(true), grads_for(false));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        // The kernels see identical f32 values either way: only the binding's storage differs.
        assert_eq!(x, y, "gradient {i} differs between f16 and f32 storage");
    }
}

#[test]
fn asking_for_q_only_launches_no_key_kernel() {
    // A device of its own: the dispatch counters must not see other tests' kernels.
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng::new(560);
    let c = Case::new(2, 7, 2, 8, 5, 3).with_mask(false, &mut rng);
    let t: Vec<Tensor> = c
        .shapes()
        .iter()
        .map(|s| {
            Tensor::from_f32(&g, s, &rng.vec(s.iter().product(), -1.0, 1.0))
                .unwrap()
                .requires_grad()
        })
        .collect();
    let cot = Tensor::from_f32(&g, &c.shapes()[0], &rng.vec(2 * 7 * 2 * 8, -1.0, 1.0)).unwrap();
    let names: Vec<String> = ["q", "lse", "kv"]
        .iter()
        .flat_map(|k| ["direct", "tiled"].map(|v| format!("attention_grad_{k}_{v}")))
        .collect();
    let count = |wrt: &[usize]| -> [u64; 3] {
        let out = run(&c, &t);
        let before: Vec<u64> = names.iter().map(|n| g.kernel_dispatches(n)).collect();
        let w: Vec<&Tensor> = wrt.iter().map(|&i| &t[i]).collect();
        grad(&[&out], &[&cot], &w).unwrap();
        let d: Vec<u64> = names
            .iter()
            .zip(&before)
            .map(|(n, b)| g.kernel_dispatches(n) - b)
            .collect();
        [d[0] + d[1], d[2] + d[3], d[4] + d[5]]
    };
    // One dQ dispatch per key segment; no statistics-only or dK/dV kernel.
    assert_eq!(count(&[0]), [2, 0, 0]);
    // A key alone: the statistics without dQ, then dK/dV of that segment only.
    assert_eq!(count(&[1]), [0, 2, 1]);
    assert_eq!(count(&[4]), [0, 2, 1]);
    // Everything: dQ and both segments' dK/dV.
    assert_eq!(count(&[0, 1, 2, 3, 4]), [2, 0, 2]);
}

/// Rough lavapipe timings for the report: IF stage I's self + text attention shape.
/// `cargo test -p iterinv-engine --test ops grad_attention::timing -- --ignored --nocapture`
#[test]
#[ignore]
fn timing_forward_backward() {
    let g = crate::common::gpu();
    let mut rng = Rng::new(570);
    let c = Case::new(2, 1024, 16, 64, 1024, 77);
    let t: Vec<Tensor> = c
        .shapes()
        .iter()
        .map(|s| {
            Tensor::from_f32(g, s, &rng.vec(s.iter().product(), -1.0, 1.0))
                .unwrap()
                .requires_grad()
        })
        .collect();
    let cot = Tensor::from_f32(g, &c.shapes()[0], &rng.vec(2 * 1024 * 16 * 64, -1.0, 1.0)).unwrap();
    for _ in 0..2 {
        let start = std::time::Instant::now();
        let out = run(&c, &t);
        g.synchronize().unwrap();
        let fwd = start.elapsed();
        let refs: Vec<&Tensor> = t.iter().collect();
        let grads = grad(&[&out], &[&cot], &refs).unwrap();
        g.synchronize().unwrap();
        let all = start.elapsed();
        let only_q = std::time::Instant::now();
        let out = run(&c, &t);
        grad(&[&out], &[&cot], &[&t[0]]).unwrap();
        g.synchronize().unwrap();
        eprintln!(
            "{}: forward {fwd:?}, backward (q, k, v, k2, v2) {:?}, forward + backward (q only) {:?}",
            g.info().adapter.name,
            all - fwd,
            only_q.elapsed()
        );
        drop(grads);
    }
}

fn softmax_ref(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(n) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        out.extend(row.iter().map(|v| (v - m).exp() / s));
    }
    out
}

/// Rows of 1 (gradient identically 0), 7 and 1000 elements, the 7-element rows with −inf
/// (masked) entries, on both workgroup layouts.
#[test]
fn softmax_rule() {
    let mut rng = Rng::new(580);
    for (rows, n) in [(3usize, 1usize), (5, 7), (3, 1000)] {
        let mut x = rng.vec(rows * n, -4.0, 4.0);
        if n == 7 {
            x[1] = f32::NEG_INFINITY;
            x[7 + 3] = f32::NEG_INFINITY;
        }
        // dx_i = y_i·(g_i − Σ g·y): an f32 sum of n products (≤ n·6e-8 relative, ~√n in practice)
        // and exp's ≤ 2e-6 relative error on y; finite differences add ~1e-8. Rows of 1000 have
        // gradients of order 1/1000 of g while the sum is of order g: allow 2e-5 of the largest.
        for cpu in [true, false] {
            check_vjp_on(
                gpu_variant(cpu),
                &format!("softmax {rows}x{n} (cpu kernels {cpu})"),
                &[GradInput::new(&[rows, n], x.clone(), true)],
                |t| t[0].softmax().unwrap(),
                |x| softmax_ref(&x[0], n),
                2e-5,
                300,
            );
        }
    }
}
