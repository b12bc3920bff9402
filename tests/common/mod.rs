//! Shared by the root package's integration tests.

// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

pub mod shape_only;
pub mod texels;
pub mod upscaler_folder;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use iterinv::engine::sched::{Scheduler, SchedulerKind};
use iterinv::models::UNet;
use iterinv::pipeline::{PipelineFolder, Stage};
use iterinv::{Gpu, GpuOptions, Tensor};
use safetensors::{Dtype, SafeTensors};

/// A golden file's arrays by name: shape and values widened to f64.
pub type Golden = HashMap<String, (Vec<usize>, Vec<f64>)>;

/// Every f64, f32 and i64 array of a safetensors file (goldens from tools/reference), as f64.
pub fn read_golden(path: &Path) -> Golden {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter_map(|(k, v)| {
            let data: Vec<f64> = match v.dtype() {
                Dtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                _ => return None,
            };
            Some((k, (v.shape().to_vec(), data)))
        })
        .collect()
}

/// Upload a golden array (f32 inputs round-trip exactly; f64 results are rounded to f32).
pub fn upload(g: &(Vec<usize>, Vec<f64>)) -> Tensor {
    let data: Vec<f32> = g.1.iter().map(|&x| x as f32).collect();
    Tensor::from_f32(gpu(), &g.0, &data).unwrap()
}

/// Entry `i` of a stacked golden `[N, ...]`.
pub fn entry(g: &(Vec<usize>, Vec<f64>), i: usize) -> (Vec<usize>, Vec<f64>) {
    let n: usize = g.0[1..].iter().product();
    (g.0[1..].to_vec(), g.1[i * n..(i + 1) * n].to_vec())
}

/// One device per test binary, with outputs poisoned (NaN) before every kernel writes them.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            ..Default::default()
        })
        .expect("a GPU adapter (lavapipe in CI)")
    })
}

/// The largest error of `got` relative to the golden's largest magnitude (shape `want.0`, values
/// `want.1`); asserts every value is finite and the error is at most `tol`, prints the
/// measurement, and returns it.
pub fn assert_close(what: &str, got: &Tensor, want: &(Vec<usize>, Vec<f64>), tol: f64) -> f64 {
    assert_eq!(got.shape(), &want.0[..], "{what}: shape");
    let got = got.to_vec().unwrap();
    let scale = want.1.iter().fold(0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&want.1)
        .map(|(&a, &b)| {
            assert!(a.is_finite(), "{what}: engine value {a}");
            (a as f64 - b).abs()
        })
        .fold(0f64, f64::max);
    let rel = err / scale;
    eprintln!("{what}: max error {err:.3e} = {rel:.3e} × scale {scale:.3} (tolerance {tol:.0e})");
    assert!(
        rel <= tol,
        "{what}: error {rel:.3e} × scale exceeds {tol:.0e}"
    );
    rel
}

/// The repository's test fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).to_path_buf()
}

/// A stage of the tiny trained cascade: its UNet and its DDIM scheduler set to `steps`, as the
/// engine's inversion builds them (DDIMScheduler.from_config of the folder's config).
pub fn trained_stage(stage: Stage, steps: usize) -> (UNet, Scheduler) {
    let dir = fixtures().join("trained_cascade").join(stage.name());
    let folder = PipelineFolder::open(&dir, stage).unwrap();
    let unet = UNet::load(gpu(), &folder.component("unet").unwrap(), None).unwrap();
    let mut scheduler = folder
        .scheduler("scheduler", Some(SchedulerKind::Ddim))
        .unwrap();
    scheduler.set_timesteps(steps).unwrap();
    (unet, scheduler)
}
