//! Memory plans: the peak pooled memory that planning an inversion predicts for each stage is
//! the peak the inversion holds when it runs (here on the trained three-stage cascade, each
//! stage with the method that holds the most: NTI's guided backward pass at stage I, IterInv's
//! at the pixel and latent super-resolution stages), and a budget below a stage's plan refuses
//! the inversion before anything runs, saying what would fit.

mod common;

use common::{fixtures, gpu};
use iterinv::pipeline::inversion::memory::{check_budget, plan, StagePeaks};
use iterinv::pipeline::inversion::{InvertOptions, SrSettings, SrStage};
use iterinv::pipeline::invert;

fn options(steps: usize) -> InvertOptions {
    let cascade = fixtures().join("trained_cascade");
    let mut opts = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: cascade.join("stage1"),
        steps,
        ..InvertOptions::default()
    };
    opts.stage1_settings.inner_steps = Some(2);
    for name in ["stage2", "stage3"] {
        let mut stage = SrStage::with_defaults(&cascade.join(name)).unwrap();
        stage.settings = SrSettings {
            inner_steps: 2,
            passes: 2,
            ..stage.settings
        };
        opts.super_resolution.push(stage);
    }
    opts
}

#[test]
fn each_stage_holds_at_its_peak_what_its_plan_says() {
    let gpu = gpu();
    let image = fixtures().join("photos/coffee.png");
    let opts = options(3);
    let planned = plan(gpu, &image, &opts).unwrap();
    let mut peaks = StagePeaks::default();
    let mut progress = |e: &iterinv::pipeline::inversion::Event| {
        peaks.observe(gpu, e);
        Ok(())
    };
    invert(gpu, &image, &opts, &mut progress).unwrap();
    let measured = peaks.finish(gpu);
    eprintln!("planned {planned:?}\nmeasured {measured:?}");
    assert_eq!(planned.stages.len(), 3);
    assert_eq!(
        planned.stages.iter().map(|s| s.stage).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for (p, m) in planned.stages.iter().zip(&measured.stages) {
        assert_eq!(p.stage, m.stage);
        // The plan runs one inner iteration where the inversion ran two, and reads 1.0 where
        // the run read its losses: the same tensors at the peak, so the same bytes. A few KiB
        // of slack for the loss bookkeeping that differs between accepted and refused steps.
        let diff = p.peak_bytes.abs_diff(m.peak_bytes);
        assert!(
            diff <= m.peak_bytes / 50,
            "stage {}: planned {} bytes, held {}",
            p.stage,
            p.peak_bytes,
            m.peak_bytes
        );
        assert!(m.peak_bytes > 0);
    }
}

#[test]
fn a_budget_below_a_stage_refuses_before_anything_runs_and_says_what_fits() {
    // A device of its own: the other test's dispatches on the shared one would be counted.
    let gpu = &iterinv::Gpu::new().unwrap();
    let image = fixtures().join("photos/coffee.png");
    let opts = options(2);
    let planned = plan(gpu, &image, &opts).unwrap();
    // Between stage 2's forward-only plan and its IterInv plan: only the fixed point fits.
    let mut forward_only = opts.clone();
    forward_only.super_resolution[0].settings.method = iterinv::pipeline::SrMethod::FixedPoint;
    let fp = plan(gpu, &image, &forward_only).unwrap().stages[1].peak_bytes;
    let full = planned.stages[1].peak_bytes;
    eprintln!("{planned:?}; stage 2 forward-only {fp}");
    assert!(fp < full, "forward-only {fp} vs IterInv {full}");
    let budget = (fp + full) / 2;
    assert!(planned.stages[0].peak_bytes <= budget);
    let dispatches = gpu.dispatch_count();
    let err = check_budget(gpu, &image, &opts, budget)
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert_eq!(gpu.dispatch_count(), dispatches, "planning ran kernels");
    assert!(err.contains("stage 2 of the inversion"), "{err}");
    assert!(err.contains("--sr-method fixed-point"), "{err}");
    // With room for every stage's plan, nothing is refused.
    let most = planned.peak_bytes();
    assert!(check_budget(gpu, &image, &opts, most).is_ok());
}
