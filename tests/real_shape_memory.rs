//! The paper's cascade at its real sizes, planned (no weights, no kernels: see
//! `pipeline::inversion::memory`): IF-I-XL with T5-XXL at 64 px, IF-II-L at 256 px, the SD x4
//! upscaler at 1024 px (a 256×256 latent), from pipeline folders with the real checkpoints'
//! configs and shapes (tests/common/shape_only.rs), on a planner with a GPU's caps (4 GiB storage
//! bindings, the GPU kernel variants). Prints each stage's peak (BENCHMARKS.md records them) and
//! holds iterinv to what issue 13 asks: the 1024² stage fits a 16 GB GPU.

mod common;

use common::shape_only::real_cascade;
use iterinv::engine::precision::{CoopChoice, CoopKernels};
use iterinv::pipeline::inversion::memory::{plan_on, MemoryPlan};
use iterinv::pipeline::inversion::{InvertOptions, SrStage};
use iterinv::{Gpu, Precision};

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
    // An f16 GPU with tensor cores (NVIDIA's 16×16×16 shapes): attention without a bias goes
    // through GEMMs whose probabilities a VJP keeps (one score matrix per attention layer).
    // Issue 12 asks that an IF-I-XL NTI iteration fit 24 GB.
    let mut caps = planner.caps().clone();
    caps.precision = Precision::F16;
    caps.coop = CoopChoice {
        f32: None,
        f16: Some((CoopKernels::F16x16, 32)),
    };
    let tensor_cores = planner.planner_with_caps(caps);
    let planned16 = plan_on(&tensor_cores, &image, &opts).unwrap();
    print("defaults at f16 on tensor cores", &planned16);
    assert!(planned16.stages[0].peak_bytes <= 24 * GIB);
    assert!(planned16.stages[2].peak_bytes <= 16 * GIB);
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

/// Dispatches of one UNet pass at the real networks' shapes and the stage's inversion batch
/// (stage I's guided pair; the upscaler's latent at 1024 px), forward and forward + VJP with
/// respect to the sample (one IterInv inner iteration; NTI's is the same pass with respect to
/// the text). Counted on a planner, so at no cost (BENCHMARKS.md records them: the baseline
/// that fusing kernels, issue 12, is to cut). Each submission holds at most 1024 dispatches
/// (the parameter arena), so these are also the submissions of a pass, 1024 to one.
#[test]
fn dispatches_per_unet_pass_at_real_shapes() {
    use iterinv::grad::backward;
    use iterinv::models::{UNet, UNetInputs};
    use iterinv::Tensor;

    let tmp = tempfile::tempdir().unwrap();
    let [s1, s2, s3] = real_cascade(tmp.path());
    let planner = gpu_planner();
    // (name, folder, batch, sample channels, side, text length × width, class label)
    let cases = [
        (
            "IF-I-XL, 64 px, guided pair",
            s1,
            2,
            3,
            64,
            (77, 4096),
            None,
        ),
        ("IF-II-L, 256 px", s2, 1, 6, 256, (77, 4096), Some(250.0)),
        (
            "x4 upscaler, 256² latent",
            s3,
            1,
            7,
            256,
            (77, 1024),
            Some(100.0),
        ),
    ];
    for (name, folder, b, c, side, (l, d), label) in cases {
        let unet = UNet::load(&planner, &folder.join("unet"), None).unwrap();
        let sample = Tensor::zeros(&planner, &[b, c, side, side]).unwrap();
        let text = Tensor::zeros(&planner, &[b, l, d]).unwrap();
        let labels = label.map(|v| [v]);
        let pass = |sample: &Tensor| {
            unet.forward(&UNetInputs {
                sample,
                timesteps: &[500.0],
                encoder_hidden_states: &text,
                class_labels: labels.as_ref().map(|l| &l[..]),
            })
            .unwrap()
        };
        let before = planner.dispatch_count();
        let out = iterinv::grad::no_grad(|| pass(&sample));
        let forward = planner.dispatch_count() - before;
        drop(out);
        let before = planner.dispatch_count();
        let x = sample.requires_grad();
        let loss = pass(&x)
            .square()
            .unwrap()
            .sum(&[0, 1, 2, 3], false)
            .unwrap();
        backward(&loss, &[&x]).unwrap();
        let both = planner.dispatch_count() - before;
        eprintln!("{name}: forward {forward} dispatches, forward + VJP {both}");
        // The backward pass runs, and computes no weight gradient (the weights are constants
        // here, as in every inversion): no convolution's weight-gradient kernel, and fewer
        // backward dispatches than 1.5 × the forward's (now 1.23–1.31×), which one more product
        // per convolution and linear layer would pass.
        let weight_grads: u64 = iterinv::kernels::families::all()
            .iter()
            .filter(|k| k.name.starts_with("conv2d_grad_weight"))
            .map(|k| planner.kernel_dispatches(k.name))
            .sum();
        assert_eq!(
            weight_grads, 0,
            "{name}: a convolution's weight gradient ran"
        );
        let backward = both - forward;
        assert!(
            both > forward && (backward as f64) < 1.5 * forward as f64,
            "{name}: forward {forward}, forward + VJP {both}"
        );
    }
}
