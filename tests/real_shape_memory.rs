//! The paper's cascade at its real sizes, planned (no weights, no kernels: see
//! `pipeline::inversion::memory`): IF-I-XL with T5-XXL at 64 px, IF-II-L at 256 px, the SD x4
//! upscaler at 1024 px (a 256×256 latent), from pipeline folders with the real checkpoints'
//! configs and shapes (tests/common/shape_only.rs), on a planner with a GPU's caps (4 GiB storage
//! bindings, the GPU kernel variants). Prints each stage's peak (BENCHMARKS.md records them) and
//! holds iterinv to what issue 13 asks: the 1024² stage fits a 16 GB GPU.

mod common;

use common::shape_only::real_cascade;
use iterinv::pipeline::inversion::memory::{plan_on, MemoryPlan};
use iterinv::pipeline::inversion::{InvertOptions, SrStage};
use iterinv::Gpu;

const GIB: u64 = 1 << 30;

/// A planner for a desktop GPU: 4 GiB storage bindings, GPU kernel variants, no loop cap.
fn gpu_planner() -> Gpu {
    let gpu = Gpu::new().expect("a GPU adapter (lavapipe in CI)");
    let mut caps = gpu.caps().clone();
    caps.max_binding_size = (4 * GIB - 4) & !3;
    caps.max_buffer_size = 64 * GIB;
    caps.cpu_kernels = false;
    caps.max_loop_iterations = None;
    gpu.planner_with_caps(caps)
}

fn photo(dir: &std::path::Path, side: u32) -> std::path::PathBuf {
    let path = dir.join("photo.png");
    image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    })
    .save(&path)
    .unwrap();
    path
}

fn print(what: &str, p: &MemoryPlan) {
    let cells: Vec<String> = p
        .stages
        .iter()
        .map(|s| {
            format!(
                "stage {}: {:.2} GiB",
                s.stage,
                s.peak_bytes as f64 / GIB as f64
            )
        })
        .collect();
    eprintln!("{what}: {}", cells.join(", "));
}

#[test]
fn the_paper_cascade_plans_and_its_1024_px_stage_fits_16_gb() {
    let tmp = tempfile::tempdir().unwrap();
    let [s1, s2, s3] = real_cascade(tmp.path());
    let image = photo(tmp.path(), 1024);
    let opts = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: s1,
        super_resolution: vec![
            SrStage::with_defaults(&s2).unwrap(),
            SrStage::with_defaults(&s3).unwrap(),
        ],
        ..InvertOptions::default()
    };
    let planner = gpu_planner();
    let planned = plan_on(&planner, &image, &opts).unwrap();
    print("defaults (NTI, IterInv, IterInv)", &planned);
    assert_eq!(planned.stages.len(), 3);
    let mut forward_only = opts.clone();
    forward_only.stage1_settings.method = iterinv::pipeline::Stage1Method::Npi;
    for s in &mut forward_only.super_resolution {
        s.settings.method = iterinv::pipeline::SrMethod::FixedPoint;
    }
    print(
        "forward only (NPI, fixed point, fixed point)",
        &plan_on(&planner, &image, &forward_only).unwrap(),
    );
    // The README's example: a 10 GiB budget refuses stage I's NTI and offers NPI.
    let err = iterinv::pipeline::inversion::memory::check_budget(&planner, &image, &opts, 10 * GIB);
    let message = err.unwrap_err().to_string();
    eprintln!("{message}");
    assert!(message.starts_with("stage 1 of the inversion"), "{message}");
    assert!(message.contains("--stage1-method npi"), "{message}");
    let stage3 = planned.stages[2].peak_bytes;
    assert!(
        stage3 <= 16 * GIB,
        "stage III at 1024² needs {:.2} GiB",
        stage3 as f64 / GIB as f64
    );
}
