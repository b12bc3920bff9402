//! Group norm (with affine, scale/shift and activation epilogue), layer norm and RMS norm against
//! f64 references computed from the same (f32/f16/bf16-rounded) inputs.
//!
//! Tolerances: the kernels' f32 error is dominated by the variance sum. Each invocation adds at
//! most 64 terms serially (rows are split into chunks of at most 16,384 elements over 256
//! invocations), then 8 tree levels and at most 6 merge levels: a relative error bound of
//! ~80·2⁻²⁴ ≈ 5e-6 on M2, ~2.5e-6 on rsqrt (plus inverseSqrt's 2 ULP). The mean is centred on a
//! first-pass shift, so its error is relative to the spread, not to the mean. The epilogue adds a
//! few roundings of terms of size ≲ 10, hence rtol 5e-6 and atol 1e-5 (outputs near zero come
//! from cancelling terms of that size). Measured errors are below 1e-6 everywhere; dropping the
//! mean correction, the merge's d² term or the shift (naive E[x²] − E[x]²) each fails these bounds.

use half::{bf16, f16};
use iterinv_engine::ops::norm::{group_norm, layer_norm, rms_norm, GroupNormArgs, ScaleShift};
use iterinv_engine::{Activation, Gpu, GpuOptions, Tensor};

use crate::common::{act64, assert_close, f64s, gpu, reduction_device, upload, Rng};

const ATOL: f64 = 1e-5;
const RTOL: f64 = 5e-6;

#[derive(Clone, Copy, Debug)]
enum Store {
    F32,
    F16,
    Bf16,
}

/// A random tensor in the given storage, and its exact values as f64.
fn tensor(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64, store: Store) -> (Tensor, Vec<f64>) {
    let v = rng.vec(shape.iter().product(), lo, hi);
    match store {
        Store::F32 => (upload(shape, &v), f64s(&v)),
        Store::F16 => {
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let exact = h.iter().map(|x| x.to_f64()).collect();
            (Tensor::from_f16(gpu(), shape, &h).unwrap(), exact)
        }
        Store::Bf16 => {
            let h: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            let exact = h.iter().map(|x| x.to_f64()).collect();
            (Tensor::from_bf16(gpu(), shape, &h).unwrap(), exact)
        }
    }
}

/// `n` samples of mean + N(0, sd²) (Box–Muller).
fn gaussian(rng: &mut Rng, n: usize, mean: f64, sd: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u = 1.0 - rng.uniform();
            let r = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.uniform()).cos();
            (mean + sd * r) as f32
        })
        .collect()
}

/// Mean and biased variance, two-pass in f64.
fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
}

pub(crate) struct GnRef<'a> {
    pub groups: usize,
    pub eps: f64,
    pub gamma: Option<&'a [f64]>,
    pub beta: Option<&'a [f64]>,
    pub ss: Option<(&'a [f64], &'a [f64])>,
    pub act: Activation,
}

pub(crate) fn group_norm_ref(x: &[f64], shape: &[usize], r: &GnRef) -> Vec<f64> {
    let (b, c) = (shape[0], shape[1]);
    let s: usize = shape[2..].iter().product();
    let n = c / r.groups * s;
    let mut out = vec![0.0; x.len()];
    for row in 0..b * r.groups {
        let (mean, var) = moments(&x[row * n..(row + 1) * n]);
        let rstd = 1.0 / (var + r.eps).sqrt();
        for i in 0..n {
            let ch = (row % r.groups) * (c / r.groups) + i / s;
            let bi = row / r.groups;
            let mut y = (x[row * n + i] - mean) * rstd;
            y = y * r.gamma.map_or(1.0, |g| g[ch]) + r.beta.map_or(0.0, |g| g[ch]);
            if let Some((sc, sh)) = r.ss {
                y = y * (1.0 + sc[bi * c + ch]) + sh[bi * c + ch];
            }
            out[row * n + i] = act64(r.act, y);
        }
    }
    out
}

/// Layer norm (rms = false) or RMS norm over rows of length n.
pub(crate) fn rows_ref(
    x: &[f64],
    n: usize,
    gamma: Option<&[f64]>,
    beta: Option<&[f64]>,
    eps: f64,
    rms: bool,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(n) {
        let (mean, var) = if rms {
            (0.0, row.iter().map(|v| v * v).sum::<f64>() / n as f64)
        } else {
            moments(row)
        };
        let rstd = 1.0 / (var + eps).sqrt();
        for (i, v) in row.iter().enumerate() {
            out.push((v - mean) * rstd * gamma.map_or(1.0, |g| g[i]) + beta.map_or(0.0, |g| g[i]));
        }
    }
    out
}

#[test]
fn group_norm_shapes_weights_and_scale_shift() {
    let mut rng = Rng::new(11);
    // (shape, groups, gamma/beta storage (None: absent), scale_shift storage).
    type Case<'a> = (&'a [usize], usize, Option<Store>, Option<Store>);
    let cases: [Case; 8] = [
        (&[2, 12, 7, 9], 4, Some(Store::F32), None),
        (&[2, 12, 7, 9], 4, None, Some(Store::F32)),
        (&[3, 6, 33], 3, Some(Store::F16), Some(Store::F16)),
        (&[1, 64, 5], 32, Some(Store::Bf16), None),
        (&[4, 10], 5, Some(Store::F32), Some(Store::Bf16)),
        (&[2, 6, 1, 1, 3], 2, None, None),
        (&[1, 32, 96, 96], 32, Some(Store::F16), Some(Store::F32)),
        // Rows of 2·127·81 = 20,574 elements: two splits of 10,287, merged.
        (&[2, 4, 127, 81], 2, Some(Store::Bf16), Some(Store::F16)),
    ];
    for (shape, groups, affine, ss) in cases {
        let (b, c) = (shape[0], shape[1]);
        let (x, xv) = tensor(&mut rng, shape, -3.0, 5.0, Store::F32);
        let (gamma, beta) = match affine {
            Some(st) => (
                Some(tensor(&mut rng, &[c], 0.5, 1.5, st)),
                Some(tensor(&mut rng, &[c], -1.0, 1.0, st)),
            ),
            None => (None, None),
        };
        let ssv = ss.map(|st| {
            (
                tensor(&mut rng, &[b, c], -0.5, 0.5, st),
                tensor(&mut rng, &[b, c], -1.0, 1.0, st),
            )
        });
        let args = GroupNormArgs {
            gamma: gamma.as_ref().map(|t| &t.0),
            beta: beta.as_ref().map(|t| &t.0),
            scale_shift: ssv.as_ref().map(|(s, h)| ScaleShift::Separate(&s.0, &h.0)),
            ..GroupNormArgs::new(groups, 1e-5)
        };
        let out = group_norm(&x, &args).unwrap();
        assert_eq!(out.shape(), shape);
        let expected = group_norm_ref(
            &xv,
            shape,
            &GnRef {
                groups,
                eps: 1e-5,
                gamma: gamma.as_ref().map(|t| &t.1[..]),
                beta: beta.as_ref().map(|t| &t.1[..]),
                ss: ssv.as_ref().map(|(s, h)| (&s.1[..], &h.1[..])),
                act: Activation::None,
            },
        );
        let what = format!("group_norm {shape:?} / {groups}, affine {affine:?}, ss {ss:?}");
        assert_close(&what, &out, &expected, ATOL, RTOL);
        // The same scale and shift packed side by side in one [B, 2C] tensor, read in place.
        if let Some((s, h)) = &ssv {
            let packed: Vec<f32> = (0..b)
                .flat_map(|i| {
                    s.1[i * c..(i + 1) * c]
                        .iter()
                        .chain(&h.1[i * c..(i + 1) * c])
                })
                .map(|&v| v as f32)
                .collect();
            let packed = upload(&[b, 2 * c], &packed);
            let args = GroupNormArgs {
                scale_shift: Some(ScaleShift::Packed(&packed)),
                ..args
            };
            let out = group_norm(&x, &args).unwrap();
            assert_close(&format!("{what}, packed"), &out, &expected, ATOL, RTOL);
        }
    }
}

#[test]
fn group_norm_half_input_gamma_or_beta_alone_and_each_activation() {
    let mut rng = Rng::new(12);
    let shape = [2, 12, 7, 9];
    let (x, xv) = tensor(&mut rng, &shape, -2.0, 2.0, Store::F16);
    let (g, gv) = tensor(&mut rng, &[12], 0.5, 1.5, Store::F32);
    let (bt, btv) = tensor(&mut rng, &[12], -1.0, 1.0, Store::F32);
    let (sc, scv) = tensor(&mut rng, &[2, 12, 1, 1], -0.5, 0.5, Store::F32);
    let (sh, shv) = tensor(&mut rng, &[2, 12], -1.0, 1.0, Store::F32);
    let acts = [
        Activation::None,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Relu,
        Activation::QuickGelu,
    ];
    for (i, act) in acts.into_iter().enumerate() {
        // Alternate gamma-only and beta-only to cover each flag alone.
        let (gamma, beta) = if i % 2 == 0 {
            (Some(&g), None)
        } else {
            (None, Some(&bt))
        };
        let args = GroupNormArgs {
            gamma,
            beta,
            scale_shift: Some(ScaleShift::Separate(&sc, &sh)),
            activation: act,
            ..GroupNormArgs::new(4, 1e-6)
        };
        let expected = group_norm_ref(
            &xv,
            &shape,
            &GnRef {
                groups: 4,
                eps: 1e-6,
                gamma: gamma.map(|_| &gv[..]),
                beta: beta.map(|_| &btv[..]),
                ss: Some((&scv, &shv)),
                act,
            },
        );
        let out = x.group_norm(&args).unwrap();
        assert_close(&format!("group_norm {act:?}"), &out, &expected, ATOL, RTOL);
    }
}

#[test]
fn group_norm_keeps_precision_when_the_mean_dwarfs_the_spread() {
    // 1000 + N(0, 1): E[x²] − E[x]² in f32 would cancel ~1e6 against ~1e6 and lose everything.
    let mut rng = Rng::new(13);
    // One-workgroup rows, and rows of 4·200·200 = 160,000 elements over 10 merged splits.
    for (shape, groups) in [(&[2, 8, 33, 31][..], 4), (&[1, 4, 200, 200][..], 1)] {
        let n: usize = shape.iter().product();
        let v = gaussian(&mut rng, n, 1000.0, 1.0);
        let out = group_norm(&upload(shape, &v), &GroupNormArgs::new(groups, 1e-5)).unwrap();
        let expected = group_norm_ref(
            &f64s(&v),
            shape,
            &GnRef {
                groups,
                eps: 1e-5,
                gamma: None,
                beta: None,
                ss: None,
                act: Activation::None,
            },
        );
        // The same tolerance as for centred data: precision must not depend on the offset.
        assert_close(
            &format!("1000+N(0,1) {shape:?}"),
            &out,
            &expected,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn group_norm_at_if_stage_two_size() {
    // IF stage II: 32 groups over 320 channels of 256² pixels, 655,360 elements per group, with a
    // large offset and an outlier-heavy tail (a few values 1e3 from the mean).
    let mut rng = Rng::new(14);
    let shape = [1, 320, 256, 256];
    let n: usize = shape.iter().product();
    let mut v = gaussian(&mut rng, n, 50.0, 3.0);
    for _ in 0..100 {
        let i = rng.range(0, n - 1);
        v[i] += 1000.0;
    }
    let (g, gv) = tensor(&mut rng, &[320], 0.5, 1.5, Store::F16);
    let (b, bv) = tensor(&mut rng, &[320], -1.0, 1.0, Store::F16);
    let args = GroupNormArgs {
        gamma: Some(&g),
        beta: Some(&b),
        activation: Activation::Silu,
        ..GroupNormArgs::new(32, 1e-5)
    };
    let out = group_norm(&upload(&shape, &v), &args).unwrap();
    let expected = group_norm_ref(
        &f64s(&v),
        &shape,
        &GnRef {
            groups: 32,
            eps: 1e-5,
            gamma: Some(&gv),
            beta: Some(&bv),
            ss: None,
            act: Activation::Silu,
        },
    );
    assert_close("group_norm IF-II size", &out, &expected, ATOL, RTOL);
}

#[test]
fn constant_groups_give_beta_not_nan() {
    let shape = [2, 4, 3, 5];
    let v = vec![7.25f32; 120];
    let beta = upload(&[4], &[0.5, -1.0, 2.0, 0.0]);
    let args = GroupNormArgs {
        beta: Some(&beta),
        ..GroupNormArgs::new(2, 1e-5)
    };
    let out = group_norm(&upload(&shape, &v), &args).unwrap();
    let expected: Vec<f64> = (0..120)
        .map(|i| [0.5, -1.0, 2.0, 0.0][(i / 15) % 4])
        .collect();
    // x − mean is exactly 0 for a constant row.
    assert_close("constant group", &out, &expected, 0.0, 0.0);
}

#[test]
fn layer_norm_rows() {
    let mut rng = Rng::new(15);
    let stores = [None, Some(Store::F32), Some(Store::F16), Some(Store::Bf16)];
    for (k, n) in [1usize, 7, 384, 4100, 40_000].into_iter().enumerate() {
        let rows = rng.range(1, 5);
        let shape = [rows, 1, n];
        let (x, xv) = tensor(&mut rng, &shape, -4.0, 6.0, Store::F32);
        let st = stores[k % stores.len()];
        let w = st.map(|s| {
            (
                tensor(&mut rng, &[n], 0.5, 1.5, s),
                tensor(&mut rng, &[n], -1.0, 1.0, s),
            )
        });
        let out = layer_norm(
            &x,
            w.as_ref().map(|w| &w.0 .0),
            w.as_ref().map(|w| &w.1 .0),
            1e-5,
        )
        .unwrap();
        let expected = rows_ref(
            &xv,
            n,
            w.as_ref().map(|w| &w.0 .1[..]),
            w.as_ref().map(|w| &w.1 .1[..]),
            1e-5,
            false,
        );
        let what = format!("layer_norm {shape:?} weights {st:?}");
        assert_close(&what, &out, &expected, ATOL, RTOL);
    }
    // Large offset on a layer-norm row too.
    let v = gaussian(&mut rng, 3 * 4100, -1000.0, 1.0);
    let out = upload(&[3, 4100], &v).layer_norm(None, None, 1e-6).unwrap();
    let expected = rows_ref(&f64s(&v), 4100, None, None, 1e-6, false);
    assert_close("layer_norm -1000+N(0,1)", &out, &expected, ATOL, RTOL);
}

#[test]
fn rms_norm_rows() {
    let mut rng = Rng::new(16);
    let stores = [Some(Store::F32), None, Some(Store::Bf16), Some(Store::F16)];
    for (k, n) in [1usize, 7, 384, 4100, 40_000].into_iter().enumerate() {
        let rows = rng.range(1, 5);
        let (x, xv) = tensor(&mut rng, &[rows, n], -30.0, 20.0, Store::F32);
        let st = stores[k % stores.len()];
        let w = st.map(|s| tensor(&mut rng, &[n], 0.1, 2.0, s));
        let out = rms_norm(&x, w.as_ref().map(|w| &w.0), 1e-6).unwrap();
        let expected = rows_ref(&xv, n, w.as_ref().map(|w| &w.1[..]), None, 1e-6, true);
        let what = format!("rms_norm [{rows}, {n}] weight {st:?}");
        assert_close(&what, &out, &expected, ATOL, RTOL);
    }
}

#[test]
fn empty_inputs_give_empty_outputs() {
    let x = upload(&[0, 4, 3], &[]);
    assert_eq!(
        group_norm(&x, &GroupNormArgs::new(2, 1e-5))
            .unwrap()
            .shape(),
        [0, 4, 3]
    );
    let x = upload(&[3, 0], &[]);
    assert_eq!(layer_norm(&x, None, None, 1e-5).unwrap().shape(), [3, 0]);
    assert_eq!(rms_norm(&x, None, 1e-5).unwrap().shape(), [3, 0]);
}

/// The error message of `r`, which must be an error naming `op` and containing every `needle`.
fn expect_err<T: std::fmt::Debug>(r: iterinv_engine::Result<T>, op: &str, needles: &[&str]) {
    let msg = r.expect_err("an error").to_string();
    assert!(msg.contains(op), "{msg:?} does not name {op}");
    for n in needles {
        assert!(msg.contains(n), "{msg:?} does not mention {n}");
    }
}

#[test]
fn bad_arguments_are_errors_naming_the_op_and_shapes() {
    let x = upload(&[2, 12, 7, 9], &vec![0.0; 2 * 12 * 63]);
    let gn = |args: &GroupNormArgs| group_norm(&x, args);
    let op = "group_norm";
    expect_err(
        gn(&GroupNormArgs::new(5, 1e-5)),
        op,
        &["[2, 12, 7, 9]", "12", "5 groups"],
    );
    expect_err(gn(&GroupNormArgs::new(0, 1e-5)), op, &["[2, 12, 7, 9]"]);
    expect_err(gn(&GroupNormArgs::new(4, 0.0)), op, &["eps"]);
    expect_err(gn(&GroupNormArgs::new(4, f32::NAN)), op, &["eps"]);
    let v11 = upload(&[11], &[1.0; 11]);
    let args = GroupNormArgs {
        gamma: Some(&v11),
        ..GroupNormArgs::new(4, 1e-5)
    };
    expect_err(gn(&args), op, &["gamma", "[11]", "[12]", "[2, 12, 7, 9]"]);
    let args = GroupNormArgs {
        beta: Some(&v11),
        ..GroupNormArgs::new(4, 1e-5)
    };
    expect_err(gn(&args), op, &["beta", "[11]"]);
    let good = upload(&[2, 12], &[0.0; 24]);
    for bad_shape in [&[12][..], &[1, 12], &[2, 12, 2], &[12, 2]] {
        let bad = upload(bad_shape, &vec![0.0; bad_shape.iter().product()]);
        let args = GroupNormArgs {
            scale_shift: Some(ScaleShift::Separate(&bad, &good)),
            ..GroupNormArgs::new(4, 1e-5)
        };
        let shown = format!("{bad_shape:?}");
        expect_err(gn(&args), op, &["scale", &shown, "[2, 12]"]);
        let args = GroupNormArgs {
            scale_shift: Some(ScaleShift::Separate(&good, &bad)),
            ..GroupNormArgs::new(4, 1e-5)
        };
        expect_err(gn(&args), op, &["shift", &shown]);
    }
    for bad_shape in [&[2, 12][..], &[2, 24, 2], &[1, 24]] {
        let bad = upload(bad_shape, &vec![0.0; bad_shape.iter().product()]);
        let args = GroupNormArgs {
            scale_shift: Some(ScaleShift::Packed(&bad)),
            ..GroupNormArgs::new(4, 1e-5)
        };
        let shown = format!("{bad_shape:?}");
        expect_err(
            gn(&args),
            op,
            &["packed scale and shift", &shown, "[2, 24]"],
        );
    }
    let ints = Tensor::from_i32(gpu(), &[12], &[0; 12]).unwrap();
    let args = GroupNormArgs {
        gamma: Some(&ints),
        ..GroupNormArgs::new(4, 1e-5)
    };
    expect_err(gn(&args), op, &["gamma", "i32"]);
    expect_err(
        group_norm(&upload(&[12], &[0.0; 12]), &GroupNormArgs::new(4, 1e-5)),
        op,
        &["[12]", "rank"],
    );
    let xi = Tensor::from_i32(gpu(), &[2, 4], &[0; 8]).unwrap();
    expect_err(
        group_norm(&xi, &GroupNormArgs::new(2, 1e-5)),
        op,
        &["x", "i32"],
    );

    let x = upload(&[3, 7], &[0.0; 21]);
    let v6 = upload(&[6], &[1.0; 6]);
    let v7 = upload(&[1, 7], &[1.0; 7]);
    expect_err(
        layer_norm(&x, Some(&v6), None, 1e-5),
        "layer_norm",
        &["gamma", "[6]", "[3, 7]"],
    );
    expect_err(
        layer_norm(&x, None, Some(&v7), 1e-5),
        "layer_norm",
        &["beta", "[1, 7]"],
    );
    expect_err(layer_norm(&x, None, None, -1.0), "layer_norm", &["eps"]);
    expect_err(
        rms_norm(&x, Some(&v6), 1e-6),
        "rms_norm",
        &["weight", "[6]", "[3, 7]"],
    );
    let scalar = upload(&[], &[1.0]);
    expect_err(rms_norm(&scalar, None, 1e-6), "rms_norm", &["rank"]);
    expect_err(
        layer_norm(&scalar, None, None, 1e-6),
        "layer_norm",
        &["rank"],
    );
}

#[test]
fn rows_too_long_for_a_loop_cap_are_errors() {
    // lavapipe silently ends every loop of an invocation after 65535 iterations; no row that fits
    // its bindings gets near that, so a forced cap of 600 stands in: half of it (the margin kept)
    // admits IF stage II's 655,360-element groups (224 iterations) but not 2M-element rows
    // (chunks of 31,250: 390).
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        max_loop_iterations: Some(600),
        ..Default::default()
    })
    .unwrap();
    let ok = Tensor::full(&g, &[1, 655_360], 1.0).unwrap();
    assert!(layer_norm(&ok, None, None, 1e-5).is_ok());
    let long = Tensor::full(&g, &[1, 2_000_000], 1.0).unwrap();
    let err = layer_norm(&long, None, None, 1e-5).unwrap_err().to_string();
    assert!(
        err.contains("layer_norm") && err.contains("[1, 2000000]") && err.contains("loop"),
        "{err}"
    );
}

/// The forward kernels on both variants of the row-reduction template: workgroup-memory trees
/// (forced) and subgroup operations (where the adapter has them; lavapipe does): group norm on
/// rows one workgroup takes and on split rows, layer norm and RMS norm.
#[test]
fn both_reduction_variants_normalise() {
    let mut rng = Rng::new(17);
    for subgroups in [false, true] {
        let g = reduction_device(subgroups);
        let up = |shape: &[usize], v: &[f32]| Tensor::from_f32(&g, shape, v).unwrap();
        for (shape, groups) in [(&[2, 12, 7, 9][..], 4), (&[2, 4, 127, 81], 2)] {
            let (b, c) = (shape[0], shape[1]);
            let n: usize = shape.iter().product();
            let x = rng.vec(n, -3.0, 5.0);
            let (gamma, beta) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -1.0, 1.0));
            let (scale, shift) = (rng.vec(b * c, -0.5, 0.5), rng.vec(b * c, -1.0, 1.0));
            let (tg, tb, ts, th) = (
                up(&[c], &gamma),
                up(&[c], &beta),
                up(&[b, c], &scale),
                up(&[b, c], &shift),
            );
            let args = GroupNormArgs {
                gamma: Some(&tg),
                beta: Some(&tb),
                scale_shift: Some(ScaleShift::Separate(&ts, &th)),
                activation: Activation::Silu,
                ..GroupNormArgs::new(groups, 1e-5)
            };
            let out = group_norm(&up(shape, &x), &args).unwrap();
            let (g64, b64, s64, h64) = (f64s(&gamma), f64s(&beta), f64s(&scale), f64s(&shift));
            let expected = group_norm_ref(
                &f64s(&x),
                shape,
                &GnRef {
                    groups,
                    eps: 1e-5,
                    gamma: Some(&g64),
                    beta: Some(&b64),
                    ss: Some((&s64, &h64)),
                    act: Activation::Silu,
                },
            );
            let what = format!("group_norm {shape:?} (subgroups {subgroups})");
            assert_close(&what, &out, &expected, ATOL, RTOL);
        }
        let (rows, n) = (5, 300);
        let x = rng.vec(rows * n, -2.0, 3.0);
        let w = rng.vec(n, 0.5, 1.5);
        let (tx, tw) = (up(&[rows, n], &x), up(&[n], &w));
        for rms in [false, true] {
            let out = if rms {
                rms_norm(&tx, Some(&tw), 1e-6).unwrap()
            } else {
                layer_norm(&tx, Some(&tw), None, 1e-6).unwrap()
            };
            let expected = rows_ref(&f64s(&x), n, Some(&f64s(&w)), None, 1e-6, rms);
            let what = format!("rms {rms} (subgroups {subgroups})");
            assert_close(&what, &out, &expected, ATOL, RTOL);
        }
        let ran = g.kernel_dispatches("norm_subgroup") + g.kernel_dispatches("norm_stats_subgroup");
        assert_eq!(
            ran > 0,
            subgroups && g.caps().subgroups,
            "subgroups {subgroups}"
        );
    }
}
