//! LPIPS (VGG16, v0.1 heads) against the `lpips` package (tools/reference/make_lpips_fixtures.py),
//! float64 goldens:
//! - a channel-reduced VGG16 (widths 8/12/16/24/24, the real 13 convolutions, 4 pools and 5 taps;
//!   random backbone and non-negative heads) on three pairs of photo crops, 40×56, 37×29 (odd
//!   sizes: the pools floor) and 32×32 — distances and each tap's term;
//! - the REAL v0.1 heads from the lpips wheel at their real widths 64/128/256/512/512, on a
//!   full-width VGG16 whose 14.7M weights are not stored: both sides generate them from the
//!   element index (splitmix64, [`generated`]), and this test writes them with the real heads
//!   into the real file layout, so the loader reads a real-shaped file.
//!
//! Tolerance 1e-5 relative to the distance, for the total and each term: f32 convolutions with
//! f32 accumulation through up to 13 layers (lavapipe: at most 6e-7 observed, printed); a wrong
//! normalization, pool or head moves distances by percents.

mod common;

use common::golden::{load_io, Array};
use common::{fixture, poisoned_gpu, write, Raw};
use iterinv_models::engine::Tensor;
use iterinv_models::lpips::LpipsDistance;
use iterinv_models::{Error, Lpips};
use safetensors::Dtype;

fn image(a: &Array) -> Tensor {
    let data: Vec<f32> = a.data.iter().map(|&x| x as f32).collect();
    let mut shape = vec![1];
    shape.extend(&a.shape);
    Tensor::from_f32(poisoned_gpu(), &shape, &data).unwrap()
}

fn check(what: &str, got: LpipsDistance, distance: f64, per_layer: &[f64]) {
    let err = (got.distance - distance).abs();
    eprintln!(
        "{what}: {} vs {distance} (relative error {:.1e})",
        got.distance,
        err / distance
    );
    assert!(err <= 1e-5 * distance, "{what}: {got:?} vs {distance}");
    for (k, (&g, &w)) in got.per_layer.iter().zip(per_layer).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * distance,
            "{what}: term {k} {g} vs {w}"
        );
    }
}

#[test]
fn reduced_vgg_matches_the_lpips_package() {
    let dir = fixture("lpips");
    let lpips = Lpips::load(poisoned_gpu(), &dir.join("reduced.safetensors")).unwrap();
    assert_eq!(lpips.widths(), [8, 12, 16, 24, 24], "widths from the file");
    let io = load_io(&dir.join("reduced_io.safetensors"));
    for k in 0..3 {
        let (a, b) = (image(&io[&format!("a{k}")]), image(&io[&format!("b{k}")]));
        let got = lpips.distance(&a, &b).unwrap();
        let per = &io["per_layer"].data[5 * k..5 * k + 5];
        check(
            &format!("pair {k} {:?}", a.shape()),
            got,
            io["distance"].data[k],
            per,
        );
        // A distance to itself is 0 and symmetric.
        assert_eq!(lpips.distance(&a, &a).unwrap().distance, 0.0);
        let back = lpips.distance(&b, &a).unwrap().distance;
        assert!((back - got.distance).abs() <= 1e-6 * got.distance);
    }
}

/// n values in [−0.5, 0.5): splitmix64 of (stream·2³² + index), top 24 bits, as
/// make_lpips_fixtures.py's `splitmix_uniform` (exact in f32 and f64 on both sides).
fn uniform(n: usize, stream: u64) -> impl Iterator<Item = f64> {
    (0..n as u64).map(move |i| {
        let mut z = (i + (stream << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f64 / (1u64 << 24) as f64 - 0.5
    })
}

fn f32_raw(key: &str, shape: &[usize], values: impl Iterator<Item = f64>) -> Raw {
    Raw {
        key: key.into(),
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: values.flat_map(|v| (v as f32).to_le_bytes()).collect(),
    }
}

/// The full-width backbone of make_lpips_fixtures.py's `generated_backbone`: conv k has weights
/// u·sqrt(24/fan_in) (stream 2k) and biases u·0.1 (stream 2k + 1), rounded once to f32.
fn generated() -> Vec<Raw> {
    let slices: [(&[usize], usize); 5] = [
        (&[0, 2], 64),
        (&[5, 7], 128),
        (&[10, 12, 14], 256),
        (&[17, 19, 21], 512),
        (&[24, 26, 28], 512),
    ];
    let (mut out, mut cin, mut k) = (Vec::new(), 3, 0u64);
    for (s, (convs, cout)) in slices.iter().enumerate() {
        for i in convs.iter() {
            let scale = (24.0 / (cin * 9) as f64).sqrt();
            let name = format!("net.slice{}.{i}", s + 1);
            out.push(f32_raw(
                &format!("{name}.weight"),
                &[*cout, cin, 3, 3],
                uniform(cout * cin * 9, 2 * k).map(move |u| u * scale),
            ));
            out.push(f32_raw(
                &format!("{name}.bias"),
                &[*cout],
                uniform(*cout, 2 * k + 1).map(|u| u * 0.1),
            ));
            cin = *cout;
            k += 1;
        }
    }
    out
}

#[test]
fn real_heads_at_real_width_match_the_lpips_package() {
    let io = load_io(&fixture("lpips").join("real_heads.safetensors"));
    let mut tensors = generated();
    for key in ["scaling_layer.shift", "scaling_layer.scale"]
        .into_iter()
        .map(String::from)
        .chain((0..5).map(|k| format!("lin{k}.model.1.weight")))
    {
        let a = &io[&key];
        tensors.push(f32_raw(&key, &a.shape, a.data.iter().copied()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lpips_vgg.safetensors");
    write(&path, &tensors.iter().collect::<Vec<_>>());
    drop(tensors);
    let lpips = Lpips::load(poisoned_gpu(), &path).unwrap();
    assert_eq!(lpips.widths(), [64, 128, 256, 512, 512]);
    let got = lpips.distance(&image(&io["a"]), &image(&io["b"])).unwrap();
    check(
        "real heads 24×32",
        got,
        io["distance"].data[0],
        &io["per_layer"].data,
    );
}

#[test]
fn bad_files_and_inputs_are_errors() {
    let gpu = poisoned_gpu();
    let dir = fixture("lpips");
    // A file without LPIPS' keys (the real-heads golden holds the heads but no backbone).
    let e = Lpips::load(gpu, &dir.join("real_heads.safetensors"))
        .err()
        .unwrap();
    assert!(matches!(e, Error::MissingKey { .. }), "{e}");
    assert!(e.to_string().contains("net.slice1.0.weight"), "{e}");
    let e = Lpips::load(gpu, &dir.join("missing.safetensors"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("missing.safetensors"), "{e}");

    let lpips = Lpips::load(gpu, &dir.join("reduced.safetensors")).unwrap();
    let img =
        |h: usize, w: usize| Tensor::from_f32(gpu, &[1, 3, h, w], &vec![0.1; 3 * h * w]).unwrap();
    let e = lpips.distance(&img(20, 20), &img(20, 21)).unwrap_err();
    assert!(e.to_string().contains("same size"), "{e}");
    let e = lpips.distance(&img(15, 40), &img(15, 40)).unwrap_err();
    assert!(e.to_string().contains("at least 16"), "{e}");
}
