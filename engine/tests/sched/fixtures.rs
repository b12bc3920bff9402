//! Every case of tests/fixtures/schedulers against the engine's schedulers.
//!
//! Tolerances: alphas_cumprod, final_alpha_cumprod and the timestep schedules must be identical
//! (the CPU code reproduces torch's and NumPy's arithmetic). Step and add_noise outputs are float32
//! values mostly of order 1: |got − expected| ≤ 1e-6·max(1, |expected|), i.e. 1e-6 absolute for
//! |values| ≤ 1 and 1e-6 relative above (a few unclipped x0 at large t reach 86 and 231, where an
//! f32 ulp alone is 8e-6 and 1.5e-5). The remaining differences from torch are the f32 reciprocal
//! in place of a division and the GPU's exp (learned_range), each an ulp or so.

use std::sync::OnceLock;

use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind, StepOptions};
use iterinv_engine::Tensor;
use serde_json::Value;

use crate::common::gpu;

const TOL: f64 = 1e-6;

pub struct Fixtures {
    pub manifest: Value,
    data: Vec<f32>,
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/schedulers");
        let text = std::fs::read_to_string(format!("{dir}/cases.json")).expect("cases.json");
        let bytes = std::fs::read(format!("{dir}/tensors.bin")).expect("tensors.bin");
        Fixtures {
            manifest: serde_json::from_str(&text).expect("cases.json parses"),
            data: bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        }
    })
}

impl Fixtures {
    /// The values and shape of a {"offset", "shape"} reference.
    pub fn get(&self, r: &Value) -> (Vec<usize>, Vec<f32>) {
        let shape: Vec<usize> = r["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let off = r["offset"].as_u64().unwrap() as usize;
        let n: usize = shape.iter().product();
        (shape, self.data[off..off + n].to_vec())
    }

    pub fn input(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        self.get(&self.manifest["inputs"][name])
    }
}

pub fn kind(v: &Value) -> SchedulerKind {
    match v.as_str().unwrap() {
        "ddpm" => SchedulerKind::Ddpm,
        "ddim" => SchedulerKind::Ddim,
        k => panic!("unknown kind {k}"),
    }
}

pub fn scheduler(entry: &Value) -> Scheduler {
    let config = SchedulerConfig::from_json_str(entry["config_json"].as_str().unwrap())
        .expect("diffusers' config parses");
    Scheduler::new(kind(&entry["kind"]), config).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect()
}

/// The first `channels` channels (dim 1) of a [B, C, ...] tensor's values.
fn first_channels(shape: &[usize], data: &[f32], channels: usize) -> (Vec<usize>, Vec<f32>) {
    let inner: usize = shape[2..].iter().product();
    let mut out = Vec::new();
    for b in 0..shape[0] {
        let start = b * shape[1] * inner;
        out.extend_from_slice(&data[start..start + channels * inner]);
    }
    let mut s = shape.to_vec();
    s[1] = channels;
    (s, out)
}

/// Worst |got − expected| / max(1, |expected|), with its index; fails on NaN or a shape mismatch.
fn compare(what: &str, got: &Tensor, shape: &[usize], expected: &[f32]) -> f64 {
    assert_eq!(got.shape(), shape, "{what}: shape");
    let got = got.to_vec().unwrap();
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert!(!g.is_nan(), "{what}: element {i} is NaN, expected {e}");
        let err = (g as f64 - e as f64).abs() / (e as f64).abs().max(1.0);
        if err > worst.0 {
            worst = (err, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= TOL,
        "{what}: element {i} is {} but diffusers gives {} (scaled error {:.3e} > {TOL})",
        got[i],
        expected[i],
        worst.0
    );
    worst.0
}

#[test]
fn alphas_cumprod_match_diffusers() {
    let f = fixtures();
    for entry in f.manifest["alphas_cumprod"].as_array().unwrap() {
        let s = scheduler(entry);
        let (_, expected) = f.get(&entry["alphas_cumprod"]);
        let got = s.alphas_cumprod();
        assert_eq!(got.len(), expected.len());
        // Bit-identical, except through torch's (MKL's) float32 sqrt, which is not correctly
        // rounded: rescale_betas_zero_snr takes square roots (see the script's docstring).
        let rtol = if s.config().rescale_betas_zero_snr {
            1e-6
        } else {
            0.0
        };
        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e as f64).abs() <= rtol * (e as f64).abs(),
                "alphas_cumprod[{i}] is {g}, diffusers gives {e} for {}",
                entry["config_json"]
            );
        }
        if let Some(r) = entry.get("final_alpha_cumprod") {
            assert_eq!(s.final_alpha_cumprod(), f.get(r).1[0] as f64);
        }
    }
}

#[test]
fn timesteps_match_diffusers() {
    let f = fixtures();
    for entry in f.manifest["timesteps"].as_array().unwrap() {
        let config =
            SchedulerConfig::from_json_str(entry["config_json"].as_str().unwrap()).unwrap();
        let what = format!(
            "{} offset {} of {}",
            config.timestep_spacing, config.steps_offset, config.num_train_timesteps
        );
        for kind in [SchedulerKind::Ddpm, SchedulerKind::Ddim] {
            let mut s = Scheduler::new(kind, config.clone()).unwrap();
            for (n, list) in entry["lists"].as_object().unwrap() {
                s.set_timesteps(n.parse().unwrap()).unwrap();
                assert_eq!(s.timesteps(), usizes(list), "{what}, {n} steps");
            }
            for (i, sum) in entry["checksums"].as_array().unwrap().iter().enumerate() {
                let n = i + 1;
                s.set_timesteps(n).unwrap();
                assert_eq!(s.num_inference_steps(), Some(n));
                // diffusers' extra trailing −1 (see extra_minus_one in the script) is dropped.
                assert_eq!(s.timesteps().len(), n, "{what}, {n} steps");
                let got: u64 = s
                    .timesteps()
                    .iter()
                    .enumerate()
                    .map(|(j, &t)| (j as u64 + 1) * t as u64)
                    .sum();
                assert_eq!(
                    got,
                    sum.as_u64().unwrap(),
                    "{what}, {n} steps: {:?}",
                    s.timesteps()
                );
            }
        }
    }
}

#[test]
fn steps_match_diffusers() {
    let f = fixtures();
    let g = gpu();
    let upload =
        |(shape, data): (Vec<usize>, Vec<f32>)| Tensor::from_f32(g, &shape, &data).unwrap();
    let sample = upload(f.input("sample"));
    let noise = upload(f.input("noise"));
    let mut count = 0;
    for spec in f.manifest["steps"].as_array().unwrap() {
        let name = spec["name"].as_str().unwrap();
        let mut s = scheduler(spec);
        if let Some(n) = spec["num_inference_steps"].as_u64() {
            s.set_timesteps(n as usize).unwrap();
        }
        if spec["custom_timesteps"].is_array() {
            s.set_custom_timesteps(&usizes(&spec["custom_timesteps"]))
                .unwrap();
        }
        if spec["timesteps"].is_array() {
            assert_eq!(s.timesteps(), usizes(&spec["timesteps"]), "{name} schedule");
        }
        let (mo_shape, mo_data) = f.input(spec["model_output"].as_str().unwrap());
        let channels = spec["channels"].as_u64().unwrap() as usize;
        let model_output = upload(first_channels(&mo_shape, &mo_data, channels));
        let eta = spec["eta"].as_f64().unwrap() as f32;
        for case in spec["cases"].as_array().unwrap() {
            let t = case["t"].as_u64().unwrap() as usize;
            let opts = StepOptions {
                noise: case["noise"].as_bool().unwrap().then_some(&noise),
                eta,
            };
            let out = s.step(&model_output, t, &sample, opts).unwrap();
            let what = format!("{name} at t = {t}");
            let (shape, exp) = f.get(&case["prev_sample"]);
            let e1 = compare(
                &format!("{what}: prev_sample"),
                &out.prev_sample,
                &shape,
                &exp,
            );
            let (shape, exp) = f.get(&case["pred_original_sample"]);
            let e2 = compare(
                &format!("{what}: pred_original_sample"),
                &out.pred_original_sample,
                &shape,
                &exp,
            );
            println!("{what}: worst scaled errors {e1:.2e} (prev), {e2:.2e} (x0)");
            count += 1;
        }
    }
    assert!(count >= 40, "only {count} step cases");
}

#[test]
fn add_noise_matches_diffusers() {
    let f = fixtures();
    let g = gpu();
    let upload =
        |(shape, data): (Vec<usize>, Vec<f32>)| Tensor::from_f32(g, &shape, &data).unwrap();
    let original = upload(f.input("original"));
    let noise = upload(f.input("noise"));
    for case in f.manifest["add_noise"].as_array().unwrap() {
        let s = scheduler(case);
        let out = s
            .add_noise(&original, &noise, &usizes(&case["timesteps"]))
            .unwrap();
        let (shape, exp) = f.get(&case["out"]);
        compare(case["name"].as_str().unwrap(), &out, &shape, &exp);
    }
}

#[test]
fn previous_timesteps_follow_diffusers() {
    let f = fixtures();
    let spec = &f.manifest["steps"][0];
    assert_eq!(spec["name"], "if_stage1_ddpm");
    let mut ddpm = scheduler(spec);
    // No schedule: t − 1, and "before 0" at 0.
    assert_eq!(ddpm.previous_timestep(500), Some(499));
    assert_eq!(ddpm.previous_timestep(0), None);
    ddpm.set_timesteps(100).unwrap();
    assert_eq!(ddpm.previous_timestep(990), Some(980));
    assert_eq!(ddpm.previous_timestep(0), None);
    // Custom schedules step to the next listed timestep (IF's fast27 jumps 800 → 799 → 600).
    ddpm.set_custom_timesteps(&[999, 800, 799, 600, 0]).unwrap();
    assert_eq!(ddpm.previous_timestep(800), Some(799));
    assert_eq!(ddpm.previous_timestep(799), Some(600));
    assert_eq!(ddpm.try_previous_timestep(0).unwrap(), None);
    assert!(ddpm.try_previous_timestep(500).is_err());

    // DDIM: t − 1000 // n whatever the spacing; trailing's last step lands past 0.
    let mut config = SchedulerConfig {
        timestep_spacing: "trailing".into(),
        ..Default::default()
    };
    let mut ddim = Scheduler::new(SchedulerKind::Ddim, config.clone()).unwrap();
    ddim.set_timesteps(7).unwrap();
    assert_eq!(ddim.timesteps(), [999, 856, 713, 570, 428, 285, 142]);
    assert_eq!(ddim.previous_timestep(999), Some(857));
    assert_eq!(ddim.previous_timestep(142), Some(0));
    config.timestep_spacing = "leading".into();
    let mut ddim = Scheduler::new(SchedulerKind::Ddim, config).unwrap();
    ddim.set_timesteps(50).unwrap();
    assert_eq!(ddim.previous_timestep(20), Some(0));
    assert_eq!(ddim.previous_timestep(0), None);
}
