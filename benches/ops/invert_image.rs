//! A whole image inverted on the tiny trained cascade (`ITERINV_BENCH_INVERT=1`; about a quarter
//! of an hour on lavapipe, so off by default): chelsea.png with "a photo of a cat", 50 steps, for
//! (a) the IterInv code's recipe — NTI (51 Adam steps per timestep) at stage I, faithful IterInv
//! (21 gradient steps per timestep) at stage II — and (b) iterinv's default (NTI, then the safe
//! IterInv with its fixed-point warm start). Per stage: the inversion's seconds
//! (`StageReport::seconds`: not model loading, not the reconstruction), PSNR, inner iterations and
//! the peak of pooled GPU memory, against `tools/reference/bench_invert.py`'s PyTorch loops.
//!
//! Memory: `invert` runs both stages in one call, so the peak is windowed through its progress
//! callback: the peak is reset at a stage's first event (its model loaded, its input on the GPU)
//! and read at its "reconstruction" event (the inversion done), i.e. over exactly the span
//! `seconds` times. Pooled bytes count every tensor, weights included. The run's overall peak
//! (text encoding and reconstructions too) is the largest reading over contiguous windows from a
//! reset at the start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use iterinv::pipeline::inversion::{
    invert, Event, InvertOptions, SrMethod, SrSettings, SrStage, Stage1Method,
};
use iterinv::Gpu;

use crate::BenchResult;

const CASCADE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/trained_cascade"
);
const IMAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/photos/chelsea.png"
);
const MIB: f64 = (1 << 20) as f64;

/// One `invert` call: its label, options, and the PyTorch keys of its two stages (None where
/// PyTorch has no such loop).
struct Run {
    label: &'static str,
    opts: InvertOptions,
    torch_keys: [Option<&'static str>; 2],
}

fn runs() -> Vec<Run> {
    let opts = |sr| {
        let mut o = InvertOptions {
            prompt: "a photo of a cat".into(),
            stage1: PathBuf::from(CASCADE).join("stage1"),
            super_resolution: vec![SrStage {
                folder: PathBuf::from(CASCADE).join("stage2"),
                // Spelled out rather than left to the defaults, so the rows mean what they say.
                settings: SrSettings {
                    method: sr,
                    inner_steps: 21,
                    noise_level: 250,
                    ..SrSettings::default()
                },
            }],
            steps: 50,
            ..InvertOptions::default()
        };
        o.stage1_settings.method = Stage1Method::Nti;
        o.stage1_settings.inner_steps = Some(51);
        o
    };
    vec![
        Run {
            label: "reference",
            opts: opts(SrMethod::IterInvFaithful),
            torch_keys: [
                Some("invert_image_stage1_nti_tiny"),
                Some("invert_image_stage2_iterinv_faithful_tiny"),
            ],
        },
        // Stage I is the same work as the reference's: compared with the same PyTorch loop.
        Run {
            label: "default",
            opts: opts(SrMethod::IterInv),
            torch_keys: [Some("invert_image_stage1_nti_tiny"), None],
        },
    ]
}

/// Peak pooled bytes per stage's inversion, and over the whole call.
#[derive(Default)]
struct Peaks {
    stage: [u64; 2],
    overall: u64,
    current: Option<usize>,
}

impl Peaks {
    fn on_event(&mut self, gpu: &Gpu, e: &Event) {
        let index = usize::from(e.stage == 2);
        let peak = gpu.pool_stats().peak_bytes_in_use;
        self.overall = self.overall.max(peak);
        if e.phase == "reconstruction" {
            self.stage[index] = peak;
            self.current = None;
        } else if self.current != Some(index) {
            // A stage's first event: start its window (the reading above closed the last one).
            self.current = Some(index);
            gpu.reset_peak();
        }
    }
}

pub fn run(gpu: &Gpu, torch: &HashMap<String, f64>) -> BenchResult<()> {
    println!();
    println!("Whole-image inversion (chelsea.png, \"a photo of a cat\", 50 steps, tiny trained cascade):");
    println!("| run | stage | method | iterinv s | PSNR dB | inner iterations | peak pooled MiB | PyTorch s | iterinv / PyTorch time |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for run in runs() {
        gpu.trim_pool();
        gpu.reset_peak();
        let mut peaks = Peaks::default();
        let out = invert(gpu, Path::new(IMAGE), &run.opts, &mut |e| {
            peaks.on_event(gpu, e);
            Ok(())
        })?;
        peaks.overall = peaks.overall.max(gpu.pool_stats().peak_bytes_in_use);
        for (i, stage) in out.stages.iter().enumerate() {
            let r = &stage.report;
            let (t, ratio) = match run.torch_keys[i].and_then(|k| torch.get(k)) {
                Some(ms) => (
                    format!("{:.1}", ms / 1000.0),
                    format!("{:.1}×", r.seconds * 1000.0 / ms),
                ),
                None => ("—".into(), "—".into()),
            };
            let psnr = r.psnr.map_or("∞".into(), |p| format!("{p:.2}"));
            println!(
                "| {} | {} | {} | {:.1} | {psnr} | {} | {:.2} | {t} | {ratio} |",
                run.label,
                r.name,
                r.method,
                r.seconds,
                r.iterations,
                peaks.stage[i] as f64 / MIB
            );
        }
        println!(
            "{}: peak pooled memory over the whole call (text encoding, both stages, reconstructions): {:.2} MiB",
            run.label,
            peaks.overall as f64 / MIB
        );
    }
    Ok(())
}
