//! Backward rule of matmul (both operands, bias, fused activation) against finite differences.

use iterinv_engine::ops::matmul::{matmul, MatmulOptions};
use iterinv_engine::Activation;

use crate::common::{check_vjp, GradInput, Rng};

#[allow(clippy::too_many_arguments)]
fn reference(
    a: &[f64],
    b: &[f64],
    bias: Option<&[f64]>,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    o: MatmulOptions,
    b_batched: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j]);
                for l in 0..k {
                    let av = if o.trans_a {
                        a[bi * m * k + l * m + i]
                    } else {
                        a[bi * m * k + i * k + l]
                    };
                    let boff = if b_batched { bi * n * k } else { 0 };
                    let bv = if o.trans_b {
                        b[boff + j * k + l]
                    } else {
                        b[boff + l * n + j]
                    };
                    s += av * bv;
                }
                let at = if o.trans_out {
                    (bi * n + j) * m + i
                } else {
                    (bi * m + i) * n + j
                };
                out[at] = match o.activation {
                    Activation::Silu => s / (1.0 + (-s).exp()),
                    _ => s,
                };
            }
        }
    }
    out
}

#[test]
fn matmul_rule_all_layouts() {
    let mut rng = Rng::new(200);
    let (batch, m, n, k) = (2, 5, 7, 6);
    // (trans_a, trans_b, B batched, bias, activation, output transposed).
    for (ta, tb, bb, with_bias, act, to) in [
        (false, false, false, true, Activation::None, false),
        (false, true, false, true, Activation::Silu, false),
        (true, false, false, false, Activation::None, false),
        (true, true, false, true, Activation::None, false),
        (false, false, true, false, Activation::None, false),
        (true, true, true, true, Activation::Silu, false),
        // Transposed outputs: a linear layer into a feature map's layout (tb), from one read
        // channels first (ta, tb), into batched and shared B.
        (false, true, false, true, Activation::None, true),
        (true, true, false, true, Activation::Silu, true),
        (false, false, false, false, Activation::None, true),
        (true, false, true, true, Activation::None, true),
    ] {
        let o = MatmulOptions {
            trans_a: ta,
            trans_b: tb,
            trans_out: to,
            activation: act,
        };
        let sa = if ta {
            vec![batch, k, m]
        } else {
            vec![batch, m, k]
        };
        let mut sb = if bb { vec![batch] } else { vec![] };
        sb.extend(if tb { [n, k] } else { [k, n] });
        let mut inputs = vec![
            GradInput::new(&sa, rng.vec(batch * m * k, -1.0, 1.0), true),
            GradInput::new(&sb, rng.vec(sb.iter().product(), -1.0, 1.0), true),
        ];
        if with_bias {
            inputs.push(GradInput::new(&[n], rng.vec(n, -1.0, 1.0), true));
        }
        // Gradients are sums of at most batch·M·K ≈ 60 f32 products: 1e-5 of their scale.
        check_vjp(
            &format!("matmul ta {ta} tb {tb} bb {bb} bias {with_bias} {act:?} to {to}"),
            &inputs,
            |t| matmul(&t[0], &t[1], t.get(2), o).unwrap(),
            |x| {
                reference(
                    &x[0],
                    &x[1],
                    x.get(2).map(|v| &v[..]),
                    batch,
                    m,
                    n,
                    k,
                    o,
                    bb,
                )
            },
            1e-5,
            200,
        );
    }
}

#[test]
fn linear_rule_through_reshapes() {
    let mut rng = Rng::new(201);
    let (rows, k, n) = (6, 5, 4);
    check_vjp(
        "linear",
        &[
            GradInput::new(&[2, 3, k], rng.vec(rows * k, -1.0, 1.0), true),
            GradInput::new(&[n, k], rng.vec(n * k, -1.0, 1.0), true),
            GradInput::new(&[n], rng.vec(n, -1.0, 1.0), true),
        ],
        |t| t[0].linear(&t[1], Some(&t[2])).unwrap(),
        |x| {
            let o = MatmulOptions {
                trans_b: true,
                ..Default::default()
            };
            reference(&x[0], &x[1], Some(&x[2]), 1, rows, n, k, o, false)
        },
        1e-5,
        200,
    );
}
