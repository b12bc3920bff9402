//! Adam and SGD against f64 implementations of torch.optim's update formulas, over 20 steps of
//! fixed random gradients with a decaying learning rate, on parameter sizes that do not divide the
//! kernels' workgroup of 256; plus the autodiff loop they are used in and misuse errors.

use half::bf16;
use iterinv_engine::grad::grad;
use iterinv_engine::ops::elementwise::{unary, Unary};
use iterinv_engine::optim::{Adam, Sgd};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{f64s, gpu, gpu_variant, upload, Rng};

const STEPS: usize = 20;
const SHAPES: &[&[usize]] = &[&[1], &[37], &[1000], &[7, 13]];

/// An uploaded copy of `data` in an op output, so it is followed by guard words in poison mode and
/// `assert_within` catches an update written past its end.
fn guarded(shape: &[usize], data: &[f32]) -> Tensor {
    unary(&upload(shape, data), Unary::Identity).unwrap()
}

fn lr_at(lr0: f64, i: usize) -> f64 {
    lr0 * (1.0 - i as f64 / 100.0)
}

/// Fixed gradients per step and parameter. Parameter 1's are ~1e-6, so sqrt(v̂) is comparable to
/// eps = 1e-8·100 and eps's placement (outside the sqrt) matters; parameter 0's are zero every
/// other step.
fn gradients(rng: &mut Rng, bf16_grads: bool) -> Vec<Vec<Vec<f32>>> {
    (0..STEPS)
        .map(|s| {
            SHAPES
                .iter()
                .enumerate()
                .map(|(k, shape)| {
                    let n: usize = shape.iter().product();
                    let scale = if k == 1 { 1e-6 } else { 1.0 };
                    let mut g = rng.vec(n, -scale, scale);
                    if k == 0 && s % 2 == 0 {
                        g[0] = 0.0;
                    }
                    if bf16_grads {
                        g = g.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
                    }
                    g
                })
                .collect()
        })
        .collect()
}

fn upload_grads(step: &[Vec<f32>], bf16_grads: bool) -> Vec<Tensor> {
    step.iter()
        .zip(SHAPES)
        .map(|(g, shape)| {
            if bf16_grads {
                let h: Vec<bf16> = g.iter().map(|&x| bf16::from_f32(x)).collect();
                Tensor::from_bf16(gpu(), shape, &h).unwrap()
            } else {
                upload(shape, g)
            }
        })
        .collect()
}

/// Per element, the largest magnitude a quantity took over the steps. f32 rounding at step t is
/// relative to the values at step t, so an element that moved from 1.5 towards zero carries
/// ~ulp(1.5)-sized absolute errors: tolerances are relative to these scales. For an element that
/// does not pass near zero the scale is within a few percent of its final value, so this is the
/// plain relative tolerance.
#[derive(Clone)]
struct Scales(Vec<f64>);

impl Scales {
    fn new(init: &[f64]) -> Scales {
        Scales(init.iter().map(|x| x.abs()).collect())
    }
    fn see(&mut self, i: usize, x: f64) {
        self.0[i] = self.0[i].max(x.abs());
    }
    fn times(&self, r: f64) -> Vec<f64> {
        self.0.iter().map(|s| s * r).collect()
    }
}

/// Like `assert_close`, with a tolerance per element.
fn assert_within(what: &str, out: &Tensor, expected: &[f64], tol: &[f64]) {
    let got = out.to_vec().unwrap();
    assert_eq!(got.len(), expected.len(), "{what}: element count");
    assert!(
        out.guards_intact().unwrap(),
        "{what}: a kernel wrote past the end of its output"
    );
    let mut worst = (0.0f64, 0usize);
    for (i, ((&g, &e), &t)) in got.iter().zip(expected).zip(tol).enumerate() {
        assert!(!g.is_nan(), "{what}: element {i} is NaN, expected {e}");
        let excess = (g as f64 - e).abs() - t;
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}: element {i} is {} but the reference is {} (tolerance {})",
        got[i],
        expected[i],
        tol[i]
    );
}

/// Adam's state in the f64 reference, with the scales each quantity reached.
struct AdamRef {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    sp: Scales,
    sm: Scales,
    sv: Scales,
}

impl AdamRef {
    fn new(init: &[f32]) -> AdamRef {
        let p = f64s(init);
        let zero = vec![0.0; p.len()];
        AdamRef {
            sp: Scales::new(&p),
            sm: Scales::new(&zero),
            sv: Scales::new(&zero),
            m: zero.clone(),
            v: zero,
            p,
        }
    }

    /// torch.optim.Adam's update in f64 (amsgrad off, L2 weight decay) at step t (from 1).
    fn step(&mut self, g: &[f32], t: i32, lr: f64, (b1, b2, eps, wd): (f64, f64, f64, f64)) {
        for i in 0..self.p.len() {
            let g = g[i] as f64 + wd * self.p[i];
            self.sm.see(i, g);
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            self.sv.see(i, self.v[i]);
            let mh = self.m[i] / (1.0 - b1.powi(t));
            let vh = self.v[i] / (1.0 - b2.powi(t));
            self.p[i] -= lr * mh / (vh.sqrt() + eps);
            self.sp.see(i, self.p[i]);
        }
    }
}

fn check_adam(seed: u64, hyper: (f64, f64, f64, f64), lr0: f64, bf16_grads: bool) {
    let (b1, b2, eps, wd) = hyper;
    let mut rng = Rng::new(seed);
    let init: Vec<Vec<f32>> = SHAPES
        .iter()
        .map(|s| rng.vec(s.iter().product(), -2.0, 2.0))
        .collect();
    let grads = gradients(&mut rng, bf16_grads);
    let params: Vec<Tensor> = init
        .iter()
        .zip(SHAPES)
        .map(|(d, s)| guarded(s, d))
        .collect();
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut adam = Adam::new(&refs).unwrap();
    (adam.beta1, adam.beta2, adam.eps, adam.weight_decay) = (b1, b2, eps, wd);
    let mut r: Vec<AdamRef> = init.iter().map(|d| AdamRef::new(d)).collect();
    for (s, step) in grads.iter().enumerate() {
        let lr = lr_at(lr0, s);
        adam.step(&refs, &upload_grads(step, bf16_grads), lr)
            .unwrap();
        for (r, g) in r.iter_mut().zip(step) {
            r.step(g, s as i32 + 1, lr, hyper);
        }
    }
    assert_eq!(adam.steps(), STEPS as u64);
    for (k, r) in r.iter().enumerate() {
        let what = format!(
            "adam {hyper:?} bf16 grads {bf16_grads}, param {:?}",
            SHAPES[k]
        );
        // 1e-6 relative (to the scales above), as the issue asks. Each step rounds p −= update
        // once (≤ 0.5 ulp ≈ 6e-8 relative; 20 steps random-walk to ~1.5e-7, at most 1.2e-6 in
        // the never-seen worst case), and the update (~lr ≤ 2e-2) carries a few ulp of sqrt and
        // division error, ≤ 1e-8 of the parameter per step.
        assert_within(
            &format!("{what}: param"),
            &params[k],
            &r.p,
            &r.sp.times(1e-6),
        );
        // m: ~20 roundings of ≤ 1 ulp of the largest (decayed) gradient, geometrically damped.
        let m = adam.exp_avg(k).unwrap();
        assert_within(&format!("{what}: exp_avg"), m, &r.m, &r.sm.times(1e-6));
        // v: a positive sum, no cancellation: a few ulp per step, damped by β2.
        let v = adam.exp_avg_sq(k).unwrap();
        assert_within(&format!("{what}: exp_avg_sq"), v, &r.v, &r.sv.times(2e-6));
    }
}

#[test]
fn adam_matches_torch_formulas() {
    check_adam(1, (0.9, 0.999, 1e-8, 0.0), 1e-2, false);
}

#[test]
fn adam_with_weight_decay_and_other_hyperparameters() {
    // eps 1e-6 is comparable to parameter 1's gradients; β1 = 0.4 takes torch.lerp's second
    // branch (weight ≥ 0.5).
    check_adam(2, (0.8, 0.99, 1e-6, 0.1), 2e-2, false);
    check_adam(3, (0.4, 0.95, 1e-8, 0.01), 1e-2, false);
}

#[test]
fn adam_reads_bf16_gradients() {
    check_adam(4, (0.9, 0.999, 1e-8, 0.05), 1e-2, true);
}

/// SGD's state in the f64 reference; `buf` is None until the first step with momentum.
struct SgdRef {
    p: Vec<f64>,
    buf: Option<Vec<f64>>,
    sp: Scales,
    sb: Scales,
}

impl SgdRef {
    /// torch.optim.SGD's update in f64.
    fn step(&mut self, g: &[f32], lr: f64, o: &Sgd) {
        let n = self.p.len();
        let p = &mut self.p;
        let d: Vec<f64> = (0..n)
            .map(|i| g[i] as f64 + o.weight_decay * p[i])
            .collect();
        let d = if o.momentum != 0.0 {
            let b: Vec<f64> = match self.buf.take() {
                None => d.clone(),
                Some(b) => (0..n)
                    .map(|i| o.momentum * b[i] + (1.0 - o.dampening) * d[i])
                    .collect(),
            };
            for (i, &x) in b.iter().enumerate() {
                self.sb.see(i, x);
                self.sb.see(i, d[i]);
            }
            let out = if o.nesterov {
                (0..n).map(|i| d[i] + o.momentum * b[i]).collect()
            } else {
                b.clone()
            };
            self.buf = Some(b);
            out
        } else {
            d
        };
        for i in 0..n {
            p[i] -= lr * d[i];
            self.sp.see(i, p[i]);
        }
    }
}

#[test]
fn sgd_matches_torch_formulas() {
    // (momentum, dampening, weight_decay, nesterov)
    let cases = [
        (0.0, 0.0, 0.0, false),
        (0.0, 0.0, 0.05, false),
        (0.9, 0.0, 0.0, false),
        (0.9, 0.1, 0.01, false),
        (0.9, 0.0, 0.05, true),
    ];
    for (c, &(momentum, dampening, weight_decay, nesterov)) in cases.iter().enumerate() {
        let mut rng = Rng::new(10 + c as u64);
        let init: Vec<Vec<f32>> = SHAPES
            .iter()
            .map(|s| rng.vec(s.iter().product(), -2.0, 2.0))
            .collect();
        let grads = gradients(&mut rng, false);
        let params: Vec<Tensor> = init
            .iter()
            .zip(SHAPES)
            .map(|(d, s)| guarded(s, d))
            .collect();
        let refs: Vec<&Tensor> = params.iter().collect();
        let mut sgd = Sgd::new(&refs).unwrap();
        sgd.momentum = momentum;
        sgd.dampening = dampening;
        sgd.weight_decay = weight_decay;
        sgd.nesterov = nesterov;
        let mut r: Vec<SgdRef> = init
            .iter()
            .map(|d| SgdRef {
                p: f64s(d),
                buf: None,
                sp: Scales::new(&f64s(d)),
                sb: Scales::new(&vec![0.0; d.len()]),
            })
            .collect();
        for (s, step) in grads.iter().enumerate() {
            let lr = lr_at(0.05, s);
            sgd.step(&refs, &upload_grads(step, false), lr).unwrap();
            for (r, g) in r.iter_mut().zip(step) {
                r.step(g, lr, &sgd);
            }
        }
        for (k, r) in r.iter().enumerate() {
            let what = format!("sgd case {c}, param {:?}", SHAPES[k]);
            // Each step rounds p −= lr·d once (≤ 0.5 ulp) and forms d from two or three f32 ops;
            // 20 steps stay inside 1e-6 relative to the scale the element reached (see Scales).
            assert_within(&what, &params[k], &r.p, &r.sp.times(1e-6));
            match (&r.buf, sgd.momentum_buffer(k)) {
                (None, None) => {}
                // A decaying sum of ≤ 20 gradients: ≤ 1 ulp of its scale per step, damped.
                (Some(b), Some(t)) => {
                    assert_within(&format!("{what}: buffer"), t, b, &r.sb.times(1e-6))
                }
                (b, t) => panic!("{what}: buffer {:?} vs {:?}", b.is_some(), t.is_some()),
            }
        }
    }
}

#[test]
fn one_dispatch_per_parameter_and_step() {
    // A device no other test launches optimizer kernels on, so the counters are this test's own.
    let g = gpu_variant(false);
    let ps: Vec<Tensor> = [5usize, 300, 1]
        .iter()
        .map(|&n| Tensor::zeros(g, &[n]).unwrap())
        .collect();
    let refs: Vec<&Tensor> = ps.iter().collect();
    let grads: Vec<Tensor> = ps
        .iter()
        .map(|p| Tensor::full(g, p.shape(), 0.5).unwrap())
        .collect();
    let mut adam = Adam::new(&refs).unwrap();
    let before = g.kernel_dispatches("optim_adam");
    adam.step(&refs, &grads, 1e-3).unwrap();
    adam.step(&refs, &grads, 1e-3).unwrap();
    assert_eq!(g.kernel_dispatches("optim_adam") - before, 6);
    let mut sgd = Sgd::new(&refs).unwrap();
    sgd.momentum = 0.5;
    let before = g.kernel_dispatches("optim_sgd");
    sgd.step(&refs, &grads, 1e-3).unwrap();
    assert_eq!(g.kernel_dispatches("optim_sgd") - before, 3);
}

#[test]
fn inner_loop_with_autodiff() {
    // Null-text inversion's pattern: a fresh leaf per iteration, gradient, step the untracked
    // parameter. loss = Σ(p − target)², so ∂loss/∂p = 2(p − target); |p − target| ≥ 0.5 stays far
    // from zero over 15 steps of lr ≤ 0.01, so the f64 reference's gradient signs match the GPU's.
    let mut rng = Rng::new(20);
    let shape = [3, 50];
    let target = rng.vec(150, -1.0, 1.0);
    let init: Vec<f32> = target
        .iter()
        .map(|&t| t + if rng.uniform() < 0.5 { -1.0 } else { 1.0 } * rng.vec(1, 0.5, 1.5)[0])
        .collect();
    let emb = guarded(&shape, &init);
    let tgt = upload(&shape, &target);
    let ones = Tensor::full(gpu(), &shape, 1.0).unwrap();
    let mut adam = Adam::new(&[&emb]).unwrap();
    let mut r = AdamRef::new(&init);
    for i in 0..15 {
        let lr = lr_at(1e-2, i);
        let p = emb.requires_grad();
        let d = p.sub(&tgt).unwrap();
        let y = d.mul(&d).unwrap();
        let g = grad(&[&y], &[&ones], &[&p]).unwrap();
        adam.step(&[&emb], &g, lr).unwrap();
        assert!(!emb.is_tracked() && p.is_tracked());
        // The leaf shares emb's storage, so it sees the update too.
        assert_eq!(p.to_vec().unwrap(), emb.to_vec().unwrap());
        let g_ref: Vec<f32> = (0..150)
            .map(|j| (2.0 * (r.p[j] - target[j] as f64)) as f32)
            .collect();
        r.step(&g_ref, i as i32 + 1, lr, (0.9, 0.999, 1e-8, 0.0));
    }
    // The GPU gradient 2(p − t) is computed from the f32 p, within an ulp or two of the reference's;
    // Adam's normalised step is insensitive to that at this distance from the optimum.
    assert_within("adam inner loop", &emb, &r.p, &r.sp.times(1e-6));
}

fn err_text<T>(r: iterinv_engine::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn misuse_is_an_error_that_updates_nothing() {
    let g = gpu();
    let a = upload(&[4], &[1.0, 2.0, 3.0, 4.0]);
    let b = upload(&[2, 3], &[0.5; 6]);
    let ga = upload(&[4], &[0.1; 4]);
    let gb = upload(&[2, 3], &[0.1; 6]);
    let mut adam = Adam::new(&[&a, &b]).unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "built for 2",
            err_text(adam.step(&[&a], std::slice::from_ref(&ga), 0.1)),
        ),
        (
            "3 gradients",
            err_text(adam.step(&[&a, &b], &[ga.clone(), gb.clone(), gb.clone()], 0.1)),
        ),
        (
            "[4]",
            err_text(adam.step(&[&a, &b], &[ga.clone(), ga.clone()], 0.1)),
        ),
        (
            "[6]",
            err_text(adam.step(
                &[&a, &b.reshape(&[6]).unwrap()],
                &[ga.clone(), gb.clone()],
                0.1,
            )),
        ),
        (
            "i32",
            err_text(adam.step(
                &[&a, &b],
                &[Tensor::from_i32(g, &[4], &[1; 4]).unwrap(), gb.clone()],
                0.1,
            )),
        ),
        (
            "shares its storage",
            err_text(adam.step(&[&a, &b], &[a.clone(), gb.clone()], 0.1)),
        ),
        (
            "shares its storage",
            err_text(adam.step(
                &[&a, &b],
                &[adam.exp_avg(0).unwrap().clone(), gb.clone()],
                0.1,
            )),
        ),
        (
            "lr",
            err_text(adam.step(&[&a, &b], &[ga.clone(), gb.clone()], -1.0)),
        ),
        (
            "lr",
            err_text(adam.step(&[&a, &b], &[ga.clone(), gb.clone()], f64::NAN)),
        ),
    ];
    for (needle, msg) in cases {
        assert!(
            msg.contains("adam") && msg.contains(needle),
            "{msg:?} lacks {needle:?}"
        );
    }
    adam.beta1 = 1.0;
    let msg = err_text(adam.step(&[&a, &b], &[ga.clone(), gb.clone()], 0.1));
    assert!(msg.contains("beta1"), "{msg}");
    assert_eq!(adam.steps(), 0);
    assert_eq!(a.to_vec().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(adam.exp_avg(0).unwrap().to_vec().unwrap(), [0.0; 4]);

    // A parameter listed twice would be stepped twice.
    let mut twice = Adam::new(&[&a, &a]).unwrap();
    let msg = err_text(twice.step(&[&a, &a], &[ga.clone(), ga.clone()], 0.1));
    assert!(
        msg.contains("parameter 1") && msg.contains("parameter 0"),
        "{msg}"
    );

    let half = Tensor::from_bf16(g, &[4], &[bf16::ONE; 4]).unwrap();
    let msg = err_text(Adam::new(&[&half]));
    assert!(msg.contains("adam") && msg.contains("f32"), "{msg}");
    let msg = err_text(Sgd::new(&[&half]));
    assert!(msg.contains("sgd") && msg.contains("f32"), "{msg}");

    let mut sgd = Sgd::new(&[&a]).unwrap();
    sgd.nesterov = true;
    let msg = err_text(sgd.step(&[&a], std::slice::from_ref(&ga), 0.1));
    assert!(msg.contains("sgd") && msg.contains("Nesterov"), "{msg}");
    sgd.momentum = 0.9;
    sgd.dampening = 0.1;
    assert!(sgd.step(&[&a], std::slice::from_ref(&ga), 0.1).is_err());
    assert!(sgd.momentum_buffer(0).is_none());
    assert_eq!(a.to_vec().unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn chunked_and_foreign_tensors_are_errors() {
    // A device whose binding limit splits a [10, 100] f32 tensor into chunks.
    let small = Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size: Some(1024),
        ..Default::default()
    })
    .unwrap();
    let big = Tensor::from_f32(&small, &[10, 100], &[0.0; 1000]).unwrap();
    assert!(big.is_chunked());
    assert!(err_text(Adam::new(&[&big])).contains("adam"));
    assert!(err_text(Sgd::new(&[&big])).contains("sgd"));

    let a = upload(&[4], &[1.0; 4]);
    let foreign = Tensor::from_f32(&small, &[4], &[0.1; 4]).unwrap();
    let mut adam = Adam::new(&[&a]).unwrap();
    let msg = err_text(adam.step(&[&a], &[foreign], 0.1));
    assert!(msg.contains("another GPU"), "{msg}");
}
