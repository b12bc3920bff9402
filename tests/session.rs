//! Frame-driven sessions (src/session.rs) on the trained three-stage cascade: stepped one event
//! at a time, with previews, an inversion gives bit for bit what the one-call function gives; a
//! reconstruction and a generation session likewise; a cancelled session stops where it is and
//! leaves no GPU memory held; one dropped before its first step runs nothing.

mod common;

use common::{fixtures, gpu};
use iterinv::image_io::{load_rgb, Rgb};
use iterinv::pipeline::cascade::{generate, CascadeOptions, CascadeStage};
use iterinv::pipeline::inversion::{
    invert_rgb, reconstruct, FolderOverrides, InvertOptions, SrSettings, SrStage,
};
use iterinv::pipeline::SeededNoise;
use iterinv::session::{self, Slice, StepOutcome, StepRequest};
use iterinv::{Gpu, Tensor};

fn options() -> InvertOptions {
    let cascade = fixtures().join("trained_cascade");
    let mut opts = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: cascade.join("stage1"),
        steps: 3,
        ..InvertOptions::default()
    };
    opts.stage1_settings.inner_steps = Some(2);
    for name in ["stage2", "stage3"] {
        let mut stage = SrStage::with_defaults(&cascade.join(name)).unwrap();
        stage.settings = SrSettings {
            inner_steps: 2,
            ..stage.settings
        };
        opts.super_resolution.push(stage);
    }
    opts
}

fn photo() -> (Rgb, std::path::PathBuf) {
    let path = fixtures().join("photos/chelsea.png");
    (load_rgb(&path).unwrap(), path)
}

fn same_bits(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    let differ = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(differ, 0, "{what}: {differ} of {} values differ", a.len());
}

#[test]
fn an_inversion_stepped_event_by_event_is_the_one_call_inversion() {
    let gpu = gpu();
    let (rgb, path) = photo();
    let opts = options();
    let direct = invert_rgb(gpu, &rgb, &path, &opts, &mut |_| Ok(())).unwrap();

    let mut s = session::inversion(gpu, rgb, path, opts.clone());
    let mut events = Vec::new();
    let mut previews = Vec::new();
    loop {
        // Ask for a preview every third step, as a render loop might.
        let preview = events.len() % 3 == 0;
        match s
            .step(StepRequest {
                slice: Slice::Event,
                preview,
            })
            .unwrap()
        {
            StepOutcome::Paused { event, preview: p } => {
                if let Some(p) = p {
                    previews.push((event.stage, event.phase, p));
                }
                events.push(event);
            }
            StepOutcome::Finished => break,
        }
    }
    assert!(s.is_finished());
    let stepped = s.finish().unwrap();

    for (i, (a, b)) in direct.stages.iter().zip(&stepped.stages).enumerate() {
        same_bits(
            &format!("stage {} reconstruction", i + 1),
            &a.reconstruction,
            &b.reconstruction,
        );
    }
    assert_eq!(
        direct.artifacts.tensors.len(),
        stepped.artifacts.tensors.len()
    );
    for (name, t) in &direct.artifacts.tensors {
        let u = &stepped.artifacts.tensors[name];
        assert_eq!(t.data, u.data, "artifact {name}");
    }

    // Every pause point was an event: each phase's start, each timestep, and NTI's and
    // IterInv's inner iterations (2 per timestep at stage I and at the super-resolution stages).
    let count = |stage: usize, phase: &str, inner: bool| {
        events
            .iter()
            .filter(|e| e.stage == stage && e.phase == phase && e.inner.is_some() == inner)
            .count()
    };
    assert_eq!(count(1, "DDIM inversion", false), 1 + 3);
    assert_eq!(count(1, "null-text inversion", true), 3 * 2);
    assert_eq!(count(1, "null-text inversion", false), 1 + 3);
    assert_eq!(count(1, "reconstruction", false), 1 + 3);
    for stage in [2, 3] {
        assert_eq!(
            count(stage, "reconstruction", false),
            1 + 3,
            "stage {stage}"
        );
        assert_eq!(count(stage, "IterInv", false), 1 + 3, "stage {stage}");
    }
    // Timesteps count up within each phase.
    for w in events.windows(2) {
        if (w[0].stage, w[0].phase) == (w[1].stage, w[1].phase) {
            assert!(w[1].step >= w[0].step && w[1].step <= w[1].total, "{w:?}");
        }
    }

    // Previews: images of the active stage's size in [−1, 1].
    assert!(previews.len() >= 10, "{} previews", previews.len());
    for (stage, _, p) in &previews {
        let size = direct.stages[stage - 1].reconstruction.shape().to_vec();
        assert_eq!(p.shape(), &size[..]);
        assert!(p.to_vec().unwrap().iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn timestep_slices_pause_only_at_timesteps_and_phases() {
    let gpu = gpu();
    let (rgb, path) = photo();
    let mut opts = options();
    opts.super_resolution.truncate(1);
    let mut s = session::inversion(gpu, rgb, path, opts);
    let request = StepRequest {
        slice: Slice::Timestep,
        preview: false,
    };
    let mut pauses = 0;
    while let StepOutcome::Paused { event, preview } = s.step(request).unwrap() {
        assert!(event.inner.is_none(), "{event:?}");
        assert!(preview.is_none());
        pauses += 1;
    }
    // Stage I: loading, DDIM inversion, NTI, reconstruction (a start and 3 timesteps each but
    // loading); stage II: loading, IterInv and reconstruction likewise.
    assert_eq!(pauses, (1 + 3 * 4) + (1 + 2 * 4));
    s.finish().unwrap();
}

/// Bytes the device's buffer pool has handed out.
fn in_use(gpu: &Gpu) -> u64 {
    gpu.pool_stats().bytes_in_use
}

#[test]
fn a_cancelled_session_stops_and_leaves_nothing_behind() {
    // A device of its own: the other tests' tensors on the shared one would be counted.
    let gpu = &Gpu::new().unwrap();
    let before = (in_use(gpu), gpu.dispatch_count());

    // Dropped before its first step: nothing ran.
    let (rgb, path) = photo();
    drop(session::inversion(gpu, rgb, path, options()));
    assert_eq!((in_use(gpu), gpu.dispatch_count()), before);

    // Cancelled in stage I's NTI, with its UNet, text and trace alive.
    let (rgb, path) = photo();
    let mut s = session::inversion(gpu, rgb, path, options());
    let mut held = 0;
    loop {
        let StepOutcome::Paused { event, .. } = s.step(StepRequest::default()).unwrap() else {
            panic!("the inversion ended before its null-text inversion");
        };
        held = held.max(in_use(gpu));
        if event.phase == "null-text inversion" && event.inner == Some(1) {
            break;
        }
    }
    assert!(held > before.0, "the session held nothing while it ran");
    s.cancel();
    assert_eq!(
        in_use(gpu),
        before.0,
        "GPU memory still held after the cancel"
    );
    // The device is as usable as before.
    let x = Tensor::from_f32(gpu, &[2], &[1.0, 2.0]).unwrap();
    assert_eq!(x.mul_scalar(3.0).unwrap().to_vec().unwrap(), vec![3.0, 6.0]);
}

#[test]
fn a_reconstruction_session_is_the_one_call_reconstruction() {
    let gpu = gpu();
    let (rgb, path) = photo();
    let opts = options();
    let inverted = invert_rgb(gpu, &rgb, &path, &opts, &mut |_| Ok(())).unwrap();
    let folders = FolderOverrides::default();
    let direct = reconstruct(gpu, &inverted.artifacts, &folders, &mut |_| Ok(())).unwrap();

    let mut s = session::reconstruction(gpu, inverted.artifacts.clone(), folders);
    let mut stages_previewed = std::collections::BTreeSet::new();
    while let StepOutcome::Paused { event, preview } = s
        .step(StepRequest {
            slice: Slice::Event,
            preview: true,
        })
        .unwrap()
    {
        if preview.is_some() {
            stages_previewed.insert(event.stage);
        }
    }
    let stepped = s.finish().unwrap();
    assert_eq!(direct.len(), 3);
    for (i, (a, b)) in direct.iter().zip(&stepped).enumerate() {
        same_bits(&format!("stage {}", i + 1), a, b);
    }
    // The upscaler stage's latent estimates are decoded for its previews too.
    assert_eq!(
        stages_previewed.into_iter().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn a_generation_session_is_the_one_call_generation() {
    let gpu = gpu();
    let cascade = fixtures().join("trained_cascade");
    let mut opts = CascadeOptions {
        prompt: "a photo of a cat".into(),
        stage1: cascade.join("stage1"),
        ..CascadeOptions::default()
    };
    opts.stage1_settings.steps = 4;
    for name in ["stage2", "stage3"] {
        let mut stage = CascadeStage::with_defaults(&cascade.join(name)).unwrap();
        stage.settings.steps = 3;
        opts.super_resolution.push(stage);
    }
    let direct = generate(gpu, &opts, &mut SeededNoise::new(gpu, 7), &mut |_| Ok(())).unwrap();

    let mut s = session::generation(gpu, opts, Box::new(SeededNoise::new(gpu, 7)));
    let mut sampled = Vec::new();
    while let StepOutcome::Paused { event, preview } = s
        .step(StepRequest {
            slice: Slice::Event,
            preview: true,
        })
        .unwrap()
    {
        if event.phase == "sampling" && event.step > 0 {
            // Each sampling step's x̂₀, as an image of the stage's size (the upscaler's latent
            // decoded by its VAE).
            let p = preview.expect("a sampling step has an estimate");
            let size = direct.images[event.stage - 1].shape();
            assert_eq!(p.shape(), size, "{event:?}");
            sampled.push((event.stage, event.step, event.total));
        }
    }
    let stepped = s.finish().unwrap();
    for (i, (a, b)) in direct.images.iter().zip(&stepped.images).enumerate() {
        same_bits(&format!("stage {}", i + 1), a, b);
    }
    let want: Vec<_> = [(1, 4), (2, 3), (3, 3)]
        .into_iter()
        .flat_map(|(stage, n)| (1..=n).map(move |k| (stage, k, n)))
        .collect();
    assert_eq!(sampled, want);
}
