//! Unary maps, broadcasting binary ops and scalar forms against f64.

use iterinv_engine::ops::elementwise::{binary, unary, Binary, Unary};
use iterinv_engine::Tensor;

use crate::common::{
    assert_close, broadcast_ref, f64s, gelu64, gelu_tanh64, gpu, quick_gelu64, upload, Ref1, Ref2,
    Rng,
};

#[test]
fn gelu_erf_form_is_within_1e6_of_f64() {
    // A dense grid over [-10, 10] plus the tails; the bound is absolute, as the issue states.
    let mut xs: Vec<f32> = (0..=200_000)
        .map(|i| -10.0 + 20.0 * i as f32 / 200_000.0)
        .collect();
    xs.extend([-1e4f32, -100.0, -30.0, 30.0, 100.0, 1e4]);
    let out = upload(&[xs.len()], &xs).gelu().unwrap();
    let expected: Vec<f64> = xs.iter().map(|&x| gelu64(x as f64)).collect();
    // Absolute 1e-6 near zero; for |x| > 10 the f32 rounding of the result (~6e-8·|x|) dominates.
    assert_close("gelu", &out, &expected, 1e-6, 1.2e-7);
}

#[test]
fn unary_maps_match_f64() {
    let mut rng = Rng::new(1);
    let n = 1000 + 37;
    let xs = rng.vec(n, -6.0, 6.0);
    let pos = rng.vec(n, 0.01, 9.0);
    let cases: Vec<(&str, Unary, &Vec<f32>, Ref1)> = vec![
        ("gelu_tanh", Unary::GeluTanh, &xs, gelu_tanh64),
        ("silu", Unary::Silu, &xs, |x| x / (1.0 + (-x).exp())),
        ("relu", Unary::Relu, &xs, |x| x.max(0.0)),
        ("quick_gelu", Unary::QuickGelu, &xs, quick_gelu64),
        ("exp", Unary::Exp, &xs, f64::exp),
        ("sqrt", Unary::Sqrt, &pos, f64::sqrt),
        ("rsqrt", Unary::Rsqrt, &pos, |x| 1.0 / x.sqrt()),
        ("abs", Unary::Abs, &xs, f64::abs),
        ("square", Unary::Square, &xs, |x| x * x),
        ("sigmoid", Unary::Sigmoid, &xs, |x| 1.0 / (1.0 + (-x).exp())),
        ("tanh", Unary::Tanh, &xs, f64::tanh),
        ("log", Unary::Log, &pos, f64::ln),
        ("identity", Unary::Identity, &xs, |x| x),
        (
            "clamp",
            Unary::Clamp {
                min: -1.5,
                max: 2.0,
            },
            &xs,
            |x| x.clamp(-1.5, 2.0),
        ),
        (
            "affine",
            Unary::Affine {
                scale: -0.5,
                shift: 3.0,
            },
            &xs,
            |x| -0.5 * x + 3.0,
        ),
        ("recip", Unary::Recip { numerator: 2.0 }, &pos, |x| 2.0 / x),
    ];
    for (name, op, input, f) in cases {
        let out = unary(&upload(&[n], input), op).unwrap();
        let expected: Vec<f64> = input.iter().map(|&x| f(x as f64)).collect();
        // WGSL allows a few ULP for exp/log/tanh/inverseSqrt; 4e-6 relative covers them with room.
        assert_close(name, &out, &expected, 1e-6, 4e-6);
    }
}

#[test]
fn extreme_inputs_give_no_nan() {
    let xs = [-1e30f32, -200.0, -90.0, 0.0, 90.0, 200.0, 1e30];
    let t = upload(&[xs.len()], &xs);
    for (name, out) in [
        ("silu", t.silu()),
        ("quick_gelu", t.quick_gelu()),
        ("sigmoid", t.sigmoid()),
        ("gelu_tanh", t.gelu_tanh()),
        ("tanh", t.tanh()),
    ] {
        let v = out.unwrap().to_vec().unwrap();
        assert!(v.iter().all(|x| !x.is_nan()), "{name} gave NaN: {v:?}");
    }
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let mut rng = Rng::new(2);
    let shapes: [(&[usize], &[usize], &[usize]); 5] = [
        (&[3, 5, 7], &[3, 5, 7], &[3, 5, 7]),
        (&[2, 3, 5, 7], &[7], &[2, 3, 5, 7]),
        (&[2, 1, 5, 1], &[3, 1, 6], &[2, 3, 5, 6]),
        (&[1], &[4, 9], &[4, 9]),
        (
            &[2, 1, 3, 1, 2, 1, 2, 3],
            &[1, 2, 1, 3, 1, 2, 1, 1],
            &[2, 2, 3, 3, 2, 2, 2, 3],
        ),
    ];
    let ops: [(Binary, Ref2); 6] = [
        (Binary::Add, |a, b| a + b),
        (Binary::Sub, |a, b| a - b),
        (Binary::Mul, |a, b| a * b),
        (Binary::Div, |a, b| a / b),
        (Binary::Max, f64::max),
        (Binary::Min, f64::min),
    ];
    for (sa, sb, so) in shapes {
        let a = rng.vec(sa.iter().product(), -3.0, 3.0);
        // Keep divisors away from zero.
        let b: Vec<f32> = rng
            .vec(sb.iter().product(), 0.5, 3.0)
            .iter()
            .map(|x| if rng.uniform() < 0.5 { -x } else { *x })
            .collect();
        let (ta, tb) = (upload(sa, &a), upload(sb, &b));
        for (op, f) in ops {
            let out = binary(&ta, &tb, op).unwrap();
            assert_eq!(out.shape(), so);
            // One f32 rounding per element (division: WGSL allows 2.5 ULP).
            assert_close(
                &format!("{op:?} {sa:?} {sb:?}"),
                &out,
                &broadcast_ref(&f64s(&a), sa, &f64s(&b), sb, so, f),
                1e-6,
                1e-6,
            );
        }
    }
}

#[test]
fn scalar_forms() {
    let mut rng = Rng::new(3);
    let xs = rng.vec(333, 0.5, 4.0);
    let t = upload(&[333], &xs);
    let checks: Vec<(&str, Tensor, Ref1)> = vec![
        ("add_scalar", t.add_scalar(1.5).unwrap(), |x| x + 1.5),
        ("sub_scalar", t.sub_scalar(1.5).unwrap(), |x| x - 1.5),
        ("mul_scalar", t.mul_scalar(-2.5).unwrap(), |x| x * -2.5),
        ("div_scalar", t.div_scalar(3.0).unwrap(), |x| x / 3.0),
        ("rsub_scalar", t.rsub_scalar(1.0).unwrap(), |x| 1.0 - x),
        ("rdiv_scalar", t.rdiv_scalar(1.0).unwrap(), |x| 1.0 / x),
    ];
    for (name, out, f) in checks {
        let expected: Vec<f64> = xs.iter().map(|&x| f(x as f64)).collect();
        assert_close(name, &out, &expected, 1e-6, 1e-6);
    }
}

#[test]
fn sixteen_bit_storage_is_widened_exactly() {
    let mut rng = Rng::new(4);
    let xs = rng.vec(1001, -70000.0, 70000.0);
    let mut h: Vec<half::f16> = xs
        .iter()
        .map(|&x| half::f16::from_f32(x / 1000.0))
        .collect();
    // Subnormals, zero, infinities' neighbours.
    h.extend([
        half::f16::from_bits(1),
        half::f16::from_bits(0x8001),
        half::f16::from_bits(0x03ff),
        half::f16::ZERO,
        half::f16::MAX,
        half::f16::MIN,
    ]);
    let b: Vec<half::bf16> = xs.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let th = Tensor::from_f16(gpu(), &[h.len()], &h)
        .unwrap()
        .to_f32()
        .unwrap();
    let tb = Tensor::from_bf16(gpu(), &[b.len()], &b)
        .unwrap()
        .to_f32()
        .unwrap();
    assert_close(
        "f16",
        &th,
        &h.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
        0.0,
        0.0,
    );
    assert_close(
        "bf16",
        &tb,
        &b.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
        0.0,
        0.0,
    );
}

#[test]
fn mismatched_shapes_are_errors_naming_both() {
    let a = upload(&[2, 3], &[0.0; 6]);
    let b = upload(&[4], &[0.0; 4]);
    let err = a.add(&b).unwrap_err().to_string();
    assert!(err.contains("[2, 3]") && err.contains("[4]"), "{err}");
    let ids = Tensor::from_i32(gpu(), &[2], &[1, 2]).unwrap();
    assert!(ids.gelu().is_err());
}

/// `x[..., :F]·act(x[..., F:])` in f64, rows of 2F.
pub(crate) fn gated_ref(x: &[f64], f: usize, act: iterinv_engine::Activation) -> Vec<f64> {
    x.chunks(2 * f)
        .flat_map(|row| (0..f).map(move |j| row[j] * crate::common::act64(act, row[f + j])))
        .collect()
}

/// The gated activation (GEGLU with GELU) reads its halves in place: every activation, rows whose
/// length is not a multiple of the workgroup, f16 storage, and an odd last dim refused.
#[test]
fn gated_activation_matches_f64() {
    use iterinv_engine::ops::elementwise::gated;
    use iterinv_engine::Activation;
    let mut rng = Rng::new(9);
    for (shape, act) in [
        (&[2, 37, 2 * 70][..], Activation::Gelu),
        (&[3, 2 * 5], Activation::GeluTanh),
        (&[2 * 129], Activation::Silu),
        (&[4, 3, 2 * 8], Activation::Relu),
        (&[5, 2 * 3], Activation::QuickGelu),
        (&[5, 2 * 3], Activation::None),
    ] {
        let n: usize = shape.iter().product();
        let x = rng.vec(n, -4.0, 4.0);
        let f = shape[shape.len() - 1] / 2;
        let out = gated(&upload(shape, &x), act).unwrap();
        let mut want_shape = shape.to_vec();
        *want_shape.last_mut().unwrap() = f;
        assert_eq!(out.shape(), &want_shape[..]);
        // The activations' own bounds (1e-6, see above) times |values| ≤ 4, plus the product's
        // rounding.
        assert_close(
            &format!("gated {shape:?} {act:?}"),
            &out,
            &gated_ref(&f64s(&x), f, act),
            5e-6,
            2e-7,
        );
    }
    let h: Vec<half::f16> = rng
        .vec(24, -3.0, 3.0)
        .into_iter()
        .map(half::f16::from_f32)
        .collect();
    let x16 = Tensor::from_f16(gpu(), &[2, 12], &h).unwrap();
    let xs: Vec<f64> = h.iter().map(|v| v.to_f64()).collect();
    let out = gated(&x16, Activation::Gelu).unwrap();
    assert_close(
        "gated, f16 storage",
        &out,
        &gated_ref(&xs, 6, Activation::Gelu),
        5e-6,
        2e-7,
    );
    let err = gated(&upload(&[2, 7], &[0.0; 14]), Activation::Gelu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gated") && err.contains("[2, 7]") && err.contains("even"),
        "{err}"
    );
}
