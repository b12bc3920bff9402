//! One image of `iterinv eval`: invert and reconstruct it with every method, write each
//! method's artifacts, PNGs and report, score every stage, draw the contact sheet, and write the
//! record last (see iterinv::eval::record).

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::MultiProgress;
use iterinv::eval::contact_sheet::{cell_size, contact_sheet, encode_png, SheetRow};
use iterinv::eval::{ImageRecord, Item, MethodScores, MethodSpec, StageScores};
use iterinv::image_io::{save_png, to_rgb, Rgb};
use iterinv::pipeline::inversion::{self, artifacts::write_atomic, InvertOptions};
use iterinv::scoring::Scorer;
use iterinv::Gpu;
use serde_json::json;

use crate::progress::Bars;

/// The contact sheet's file in an image's folder.
pub const SHEET_FILE: &str = "contact.png";

/// What one image is run with.
pub struct Job<'a> {
    pub gpu: &'a Gpu,
    pub scorer: &'a Scorer,
    /// Each method and its options (the prompt is set per image).
    pub methods: &'a [(MethodSpec, InvertOptions)],
    pub multi: &'a MultiProgress,
}

/// Run `item` (its file at `path`) into `dir`, which is emptied first (a folder without a
/// record is what an interrupted run left). An error is the image's: the caller records it,
/// unless it is an interruption.
pub fn run(job: &Job, item: &Item, path: &Path, dir: &Path) -> Result<ImageRecord> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut record = ImageRecord::new(&item.id, &item.file, &item.prompt);
    // Per stage: the input (the same for every method) and each method's reconstruction.
    let mut inputs: Vec<Rgb> = Vec::new();
    let mut reconstructions: Vec<Vec<Rgb>> = Vec::new();
    for (spec, template) in job.methods {
        let opts = InvertOptions {
            prompt: item.prompt.clone(),
            ..template.clone()
        };
        let mut bars = Bars::in_multi(job.multi);
        let result = inversion::invert(job.gpu, path, &opts, &mut |e| bars.update(e));
        bars.finish();
        let result = result.with_context(|| format!("method {}", spec.name()))?;
        let out = dir.join(spec.name());
        result.artifacts.save(&out)?;
        let mut stages = Vec::new();
        for (i, s) in result.stages.iter().enumerate() {
            let name = format!("stage{}", i + 1);
            save_png(&s.reconstruction, 0, &out.join(format!("{name}.png")))?;
            save_png(&s.input, 0, &out.join(format!("input-{name}.png")))?;
            let input = to_rgb(&s.input)?;
            let rec = to_rgb(&s.reconstruction)?;
            let scores = job.scorer.score(&input, &rec, &item.prompt)?;
            stages.push(StageScores {
                stage: name,
                size: input.height,
                mse: scores.mse,
                psnr: scores.psnr,
                ssim: scores.ssim,
                lpips: scores.lpips,
                clip_score: scores.clip_score,
                seconds: s.report.seconds,
                latent_psnr: s.report.latent_psnr,
                round_trip_psnr: s.report.round_trip_psnr,
            });
            if inputs.len() == i {
                inputs.push(input);
                reconstructions.push(Vec::new());
            }
            reconstructions[i].push(rec);
        }
        let report = json!({
            "iterinv_version": iterinv::VERSION,
            "image": path,
            "prompt": item.prompt,
            "method": spec.name(),
            "stages": result.stages.iter().map(|s| &s.report).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec_pretty(&report).context("serializing report.json")?;
        write_atomic(&out.join("report.json"), &bytes)?;
        record.methods.push(MethodScores {
            method: spec.name(),
            stages,
        });
    }
    let rows: Vec<SheetRow> = inputs
        .iter()
        .zip(&reconstructions)
        .map(|(input, recs)| SheetRow {
            input,
            reconstructions: recs.iter().collect(),
        })
        .collect();
    let largest = inputs.iter().map(|r| r.height).max().unwrap_or(0);
    let sheet = contact_sheet(&rows, cell_size(largest))?;
    write_atomic(&dir.join(SHEET_FILE), &encode_png(&sheet)?)?;
    // Last: from here on the image counts as done.
    record.save(dir)?;
    Ok(record)
}
