//! Backward rules of the elementwise ops against finite differences of f64 references.

use iterinv_engine::ops::elementwise::{binary, unary, Binary, Unary};

use crate::common::{
    broadcast_ref, check_vjp, gelu64, gelu_tanh64, quick_gelu64, GradInput, Ref1, Ref2, Rng,
};

/// Values in [lo, hi] kept at least `gap` away from `kink` (relu, abs, clamp corners).
fn away_from(rng: &mut Rng, n: usize, lo: f64, hi: f64, kinks: &[f64], gap: f64) -> Vec<f32> {
    (0..n)
        .map(|_| loop {
            let v = lo + (hi - lo) * rng.uniform();
            if kinks.iter().all(|k| (v - k).abs() > gap) {
                break v as f32;
            }
        })
        .collect()
}

/// Name, op, sampling range of x, kinks to keep the samples away from, the f64 reference.
type UnaryCase = (&'static str, Unary, f64, f64, Vec<f64>, Ref1);

#[test]
fn unary_rules() {
    let mut rng = Rng::new(100);
    let n = 203;
    let cases: Vec<UnaryCase> = vec![
        ("gelu", Unary::Gelu, -5.0, 5.0, vec![], gelu64),
        ("gelu_tanh", Unary::GeluTanh, -5.0, 5.0, vec![], gelu_tanh64),
        ("silu", Unary::Silu, -6.0, 6.0, vec![], |x| {
            x / (1.0 + (-x).exp())
        }),
        ("relu", Unary::Relu, -3.0, 3.0, vec![0.0], |x| x.max(0.0)),
        (
            "quick_gelu",
            Unary::QuickGelu,
            -6.0,
            6.0,
            vec![],
            quick_gelu64,
        ),
        ("exp", Unary::Exp, -3.0, 3.0, vec![], f64::exp),
        ("sqrt", Unary::Sqrt, 0.2, 4.0, vec![], f64::sqrt),
        ("rsqrt", Unary::Rsqrt, 0.2, 4.0, vec![], |x| 1.0 / x.sqrt()),
        ("abs", Unary::Abs, -3.0, 3.0, vec![0.0], f64::abs),
        ("square", Unary::Square, -3.0, 3.0, vec![], |x| x * x),
        ("sigmoid", Unary::Sigmoid, -6.0, 6.0, vec![], |x| {
            1.0 / (1.0 + (-x).exp())
        }),
        ("tanh", Unary::Tanh, -4.0, 4.0, vec![], f64::tanh),
        ("log", Unary::Log, 0.2, 4.0, vec![], f64::ln),
        (
            "clamp",
            Unary::Clamp {
                min: -1.0,
                max: 1.5,
            },
            -3.0,
            3.0,
            vec![-1.0, 1.5],
            |x| x.clamp(-1.0, 1.5),
        ),
        (
            "affine",
            Unary::Affine {
                scale: -1.5,
                shift: 0.5,
            },
            -3.0,
            3.0,
            vec![],
            |x| -1.5 * x + 0.5,
        ),
        (
            "recip",
            Unary::Recip { numerator: 2.0 },
            0.3,
            3.0,
            vec![],
            |x| 2.0 / x,
        ),
        ("identity", Unary::Identity, -3.0, 3.0, vec![], |x| x),
    ];
    for (name, op, lo, hi, kinks, f) in cases {
        let x = away_from(&mut rng, n, lo, hi, &kinks, 1e-2);
        // One f32 evaluation of f' per element: a few ULP of exp/tanh/erf, far below 1e-4.
        check_vjp(
            name,
            &[GradInput::new(&[n], x, true)],
            |t| unary(&t[0], op).unwrap(),
            |x| x[0].iter().map(|&v| f(v)).collect(),
            1e-4,
            n,
        );
    }
}

#[test]
fn binary_rules_sum_over_broadcast_dims() {
    let mut rng = Rng::new(101);
    let shapes: [(&[usize], &[usize]); 3] = [
        (&[3, 4, 5], &[3, 4, 5]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 5], &[3, 1]),
    ];
    let ops: [(Binary, Ref2); 6] = [
        (Binary::Add, |a, b| a + b),
        (Binary::Sub, |a, b| a - b),
        (Binary::Mul, |a, b| a * b),
        (Binary::Div, |a, b| a / b),
        (Binary::Max, f64::max),
        (Binary::Min, f64::min),
    ];
    for (sa, sb) in shapes {
        let out: Vec<usize> =
            iterinv_engine::ops::elementwise::broadcast_shape("t", sa, sb).unwrap();
        for (op, f) in ops {
            // Positive divisors; x and y drawn from disjoint-ish grids so max/min have no ties.
            let a: Vec<f32> = (0..sa.iter().product())
                .map(|_| (rng.range(0, 40) as f32 - 20.0) / 7.0 + 0.013)
                .collect();
            let b: Vec<f32> = (0..sb.iter().product())
                .map(|_| (rng.range(1, 40) as f32) / 9.0)
                .collect();
            let (sa2, sb2, out2) = (sa.to_vec(), sb.to_vec(), out.clone());
            check_vjp(
                &format!("{op:?} {sa:?} {sb:?}"),
                &[GradInput::new(sa, a, true), GradInput::new(sb, b, true)],
                |t| binary(&t[0], &t[1], op).unwrap(),
                move |x| broadcast_ref(&x[0], &sa2, &x[1], &sb2, &out2, f),
                1e-5,
                64,
            );
        }
    }
}

#[test]
fn max_and_min_split_ties_evenly_like_pytorch() {
    let g = crate::common::gpu();
    let x = iterinv_engine::Tensor::from_f32(g, &[3], &[1.0, 2.0, 3.0])
        .unwrap()
        .requires_grad();
    let y = iterinv_engine::Tensor::from_f32(g, &[3], &[1.0, 5.0, 0.0])
        .unwrap()
        .requires_grad();
    let out = x.maximum(&y).unwrap();
    let one = iterinv_engine::Tensor::full(g, &[3], 1.0).unwrap();
    let gr = iterinv_engine::grad::grad(&[&out], &[&one], &[&x, &y]).unwrap();
    assert_eq!(gr[0].to_vec().unwrap(), vec![0.5, 0.0, 1.0]);
    assert_eq!(gr[1].to_vec().unwrap(), vec![0.5, 1.0, 0.0]);
}

/// Both halves' gradients of the gated activation from its one backward kernel.
#[test]
fn gated_rule() {
    use iterinv_engine::ops::elementwise::gated;
    use iterinv_engine::Activation;
    let mut rng = Rng::new(110);
    for act in [Activation::Gelu, Activation::Silu, Activation::GeluTanh] {
        let shape = [2, 3, 2 * 9];
        let n: usize = shape.iter().product();
        check_vjp(
            &format!("gated {act:?}"),
            &[GradInput::new(&shape, rng.vec(n, -3.0, 3.0), true)],
            |t| gated(&t[0], act).unwrap(),
            |x| crate::elementwise::gated_ref(&x[0], 9, act),
            1e-5,
            200,
        );
    }
}
