//! Several inversions at once in threads on one `Gpu` (one device, one pool, one queue) give the
//! results of the same inversions run one after the other, bit for bit: the engine's shared
//! state (buffer pool, pipeline cache, recorder) never mixes two callers' work.

mod common;

use std::path::Path;

use common::{fixtures, gpu};
use iterinv::pipeline::inversion::{InvertOptions, SrSettings, SrStage};
use iterinv::pipeline::{SrMethod, Stage1Method};
use iterinv::Gpu;

/// A fast two-stage inversion of `photo` (DDIM at stage I, two fixed-point passes at stage II,
/// 2 steps): every reconstruction and artifact tensor, as bits.
fn invert(gpu: &Gpu, photo: &str) -> Vec<Vec<u32>> {
    let mut opts = InvertOptions {
        prompt: "a photo".into(),
        stage1: fixtures().join("trained_cascade/stage1"),
        super_resolution: vec![SrStage {
            folder: fixtures().join("trained_cascade/stage2"),
            settings: SrSettings {
                method: SrMethod::FixedPoint,
                passes: 2,
                ..SrSettings::default()
            },
        }],
        steps: 2,
        ..InvertOptions::default()
    };
    opts.stage1_settings.method = Stage1Method::Ddim;
    let path = fixtures().join("photos").join(photo);
    let out = iterinv::pipeline::invert(gpu, Path::new(&path), &opts, &mut |_| Ok(())).unwrap();
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    out.stages
        .iter()
        .map(|s| bits(s.reconstruction.to_vec().unwrap()))
        .chain(out.artifacts.tensors.values().map(|t| bits(t.data.clone())))
        .collect()
}

#[test]
fn inversions_in_threads_equal_serial_runs() {
    let gpu = gpu();
    let photos = ["chelsea.png", "camera.png"];
    let serial: Vec<_> = photos.iter().map(|p| invert(gpu, p)).collect();
    let parallel: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = photos
            .iter()
            .map(|p| s.spawn(move || invert(gpu, p)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (photo, (a, b)) in photos.iter().zip(serial.iter().zip(&parallel)) {
        assert_eq!(a, b, "{photo}: a threaded run differs from the serial one");
    }
}
