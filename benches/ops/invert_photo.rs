//! A whole photo inverted on the tiny trained cascade (`ITERINV_BENCH_INVERT=1`; minutes on a
//! software rasteriser, so off by default): seconds per stage and the peak of pooled GPU memory,
//! for the IterInv code's recipe (NTI with 51 Adam steps per timestep at stage I, faithful
//! IterInv with 21 gradient steps at stage II) and for iterinv's stage-II default, against
//! `tools/reference/bench_invert.py`'s PyTorch loops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use iterinv::pipeline::inversion::{invert, InvertOptions, SrMethod, Stage1Method};
use iterinv::Gpu;

use crate::BenchResult;

const CASCADE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/trained_cascade"
);
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/photos/chelsea.png"
);

/// One run: (row name, stage index, options).
fn runs() -> Vec<(&'static str, usize, InvertOptions)> {
    let base = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: PathBuf::from(CASCADE).join("stage1"),
        ..InvertOptions::default()
    };
    // Stage II rows invert stage I with NPI (no optimization): their time is stage II's alone.
    let sr = |method| {
        let mut o = base.clone();
        o.stage2 = Some(PathBuf::from(CASCADE).join("stage2"));
        o.stage1_settings.method = Stage1Method::Npi;
        o.stage2_settings.method = method;
        o
    };
    vec![
        ("invert_stage1_nti_tiny", 0, base.clone()),
        (
            "invert_stage2_iterinv_faithful_tiny",
            1,
            sr(SrMethod::IterInvFaithful),
        ),
        (
            "invert_stage2_iterinv_default_tiny",
            1,
            sr(SrMethod::IterInv),
        ),
    ]
}

pub fn run(gpu: &Gpu, torch: &HashMap<String, f64>) -> BenchResult<()> {
    println!();
    println!("| inversion (chelsea, 50 steps) | iterinv s | PSNR dB | inner iterations | peak GPU MiB | PyTorch s | iterinv / PyTorch time |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, stage, opts) in runs() {
        gpu.trim_pool();
        gpu.reset_peak();
        let out = invert(gpu, Path::new(PHOTO), &opts, &mut |_| Ok(()))?;
        let peak = gpu.pool_stats().peak_bytes_in_use as f64 / (1 << 20) as f64;
        let r = &out.stages[stage].report;
        let (t, ratio) = match torch.get(name) {
            Some(ms) => (
                format!("{:.1}", ms / 1000.0),
                format!("{:.1}×", r.seconds * 1000.0 / ms),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {name} | {:.1} | {:.2} | {} | {peak:.1} | {t} | {ratio} |",
            r.seconds,
            r.psnr.unwrap_or(f64::INFINITY),
            r.iterations
        );
    }
    Ok(())
}
