//! The paper's table over a dataset: per method and stage, the mean ± std over images of MSE,
//! LPIPS, SSIM, PSNR and CLIP score (spec/method.md, "Evaluation in the paper"), as Markdown,
//! CSV and JSON. A function of the image records alone (see record.rs), so one run, a resumed
//! run and merged shards give the same files.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::record::{ImageRecord, StageScores};
use super::stats::{display, num, Stat};

/// One row of the table: a method's stage over the images that did not fail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub method: String,
    pub stage: String,
    pub size: usize,
    /// Images in the means.
    pub n: usize,
    pub mse: Option<Stat>,
    /// None where not measured (no `--lpips`, no `--clip`) or not measurable (SSIM of a side
    /// of 5 pixels or less).
    pub lpips: Option<Stat>,
    pub ssim: Option<Stat>,
    pub psnr: Option<Stat>,
    pub clip_score: Option<Stat>,
    /// Mean inversion seconds of the stage; not compared between runs (it is a timing).
    #[serde(with = "num")]
    pub seconds: f64,
}

/// An image that failed, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub id: String,
    pub file: String,
    pub error: String,
}

/// The summary of a run or of merged shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub methods: Vec<String>,
    /// Images the dataset lists.
    pub dataset_images: usize,
    /// Images in the means (finished without error), by id.
    pub scored: Vec<String>,
    pub failed: Vec<Failure>,
    /// Images started but not finished (an interrupted run not yet resumed).
    pub unfinished: Vec<String>,
    /// Images of the dataset that no merged run took (shards not merged, or not started).
    pub not_run: usize,
    pub rows: Vec<Row>,
}

impl Summary {
    /// The summary of `records` (any order) for `methods` (the table's order).
    pub fn new(
        methods: &[String],
        dataset_images: usize,
        records: &[ImageRecord],
        mut unfinished: Vec<String>,
    ) -> Summary {
        let mut records: Vec<&ImageRecord> = records.iter().collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        unfinished.sort();
        let (ok, failed): (Vec<&ImageRecord>, Vec<&ImageRecord>) =
            records.iter().partition(|r| r.error.is_none());
        let mut rows = Vec::new();
        for method in methods {
            // Every image's stages of this method, in cascade order.
            let per_image: Vec<&[StageScores]> = ok
                .iter()
                .filter_map(|r| r.methods.iter().find(|m| &m.method == method))
                .map(|m| m.stages.as_slice())
                .collect();
            let stages = per_image.iter().map(|s| s.len()).max().unwrap_or(0);
            for i in 0..stages {
                let scores: Vec<&StageScores> = per_image.iter().filter_map(|s| s.get(i)).collect();
                // A score enters the table only if every image has it, so that each column's
                // mean is over the same images.
                let all = |f: fn(&StageScores) -> Option<f64>| -> Option<Stat> {
                    let v: Option<Vec<f64>> = scores.iter().map(|s| f(s)).collect();
                    Stat::of(&v?)
                };
                rows.push(Row {
                    method: method.clone(),
                    stage: scores[0].stage.clone(),
                    size: scores[0].size,
                    n: scores.len(),
                    mse: all(|s| Some(s.mse)),
                    lpips: all(|s| s.lpips),
                    ssim: all(|s| s.ssim),
                    psnr: all(|s| Some(s.psnr)),
                    clip_score: all(|s| s.clip_score),
                    seconds: scores.iter().map(|s| s.seconds).sum::<f64>() / scores.len() as f64,
                });
            }
        }
        let seen = records.len() + unfinished.len();
        Summary {
            methods: methods.to_vec(),
            dataset_images,
            scored: ok.iter().map(|r| r.id.clone()).collect(),
            failed: failed
                .iter()
                .map(|r| Failure {
                    id: r.id.clone(),
                    file: r.file.display().to_string(),
                    error: r.error.clone().unwrap_or_default(),
                })
                .collect(),
            unfinished,
            not_run: dataset_images.saturating_sub(seen),
            rows,
        }
    }

    /// The table in the paper's columns and rounding, then what was left out and why.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# iterinv eval\n\n{} of {} images scored; mean ± sample std over them, each stage \
             against the photo at that stage's size, in [0, 1].\n",
            self.scored.len(),
            self.dataset_images
        );
        s.push_str("| method | stage | size | n | MSE | LPIPS | SSIM | PSNR (dB) | CLIP | s |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                r.method,
                r.stage,
                r.size,
                r.n,
                display(r.mse, 6),
                display(r.lpips, 4),
                display(r.ssim, 4),
                display(r.psnr, 2),
                display(r.clip_score, 2),
                r.seconds
            );
        }
        if !self.failed.is_empty() {
            s.push_str("\n## Failed (left out of the means)\n\n");
            for f in &self.failed {
                let _ = writeln!(s, "- `{}`: {}", f.file, f.error.replace('\n', " "));
            }
        }
        if !self.unfinished.is_empty() {
            let _ = writeln!(
                s,
                "\nUnfinished (rerun to finish): {}",
                self.unfinished.join(", ")
            );
        }
        if self.not_run > 0 {
            let _ = writeln!(
                s,
                "\n{} images of the dataset are in no merged run (other shards?).",
                self.not_run
            );
        }
        s
    }

    /// One line per row: each score's mean and std at full precision (empty where none).
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "method,stage,size,n,mse_mean,mse_std,lpips_mean,lpips_std,ssim_mean,ssim_std,\
             psnr_mean,psnr_std,clip_score_mean,clip_score_std,seconds\n",
        );
        for r in &self.rows {
            let _ = write!(s, "{},{},{},{}", csv_text(&r.method), r.stage, r.size, r.n);
            for stat in [r.mse, r.lpips, r.ssim, r.psnr, r.clip_score] {
                let mean = stat.map(|t| t.mean.to_string()).unwrap_or_default();
                let std = stat
                    .and_then(|t| t.std)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let _ = write!(s, ",{mean},{std}");
            }
            let _ = writeln!(s, ",{}", r.seconds);
        }
        s
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a summary serializes");
        s.push('\n');
        s
    }

    /// The summary with its timings zeroed: what two runs of the same work must agree on.
    pub fn without_timings(&self) -> Summary {
        let mut s = self.clone();
        for r in &mut s.rows {
            r.seconds = 0.0;
        }
        s
    }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_text(t: &str) -> String {
    if t.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::eval::record::MethodScores;

    fn record(id: &str, psnrs: &[(f64, f64)], lpips: Option<f64>) -> ImageRecord {
        let mut r = ImageRecord::new(id, Path::new(&format!("{id}.png")), "p");
        for (m, &(p1, p2)) in ["a+b", "c+d"].iter().zip(psnrs) {
            let stage = |name: &str, size, psnr: f64| StageScores {
                stage: name.into(),
                size,
                mse: 10f64.powf(-psnr / 10.0),
                psnr,
                ssim: Some(psnr / 100.0),
                lpips,
                clip_score: None,
                seconds: 2.0,
                latent_psnr: None,
                round_trip_psnr: None,
            };
            r.methods.push(MethodScores {
                method: m.to_string(),
                stages: vec![stage("stage1", 16, p1), stage("stage2", 32, p2)],
            });
        }
        r
    }

    fn methods() -> Vec<String> {
        vec!["a+b".into(), "c+d".into()]
    }

    /// The means and stds against numbers worked out here, independently of `Stat`.
    #[test]
    fn rows_hold_mean_and_std_per_method_and_stage() {
        let mut failed = record("z", &[(99.0, 99.0), (99.0, 99.0)], Some(0.1));
        failed.error = Some("image z.png is 8×8".into());
        let records = vec![
            record("y", &[(20.0, 30.0), (10.0, 12.0)], Some(0.3)),
            record("x", &[(22.0, 36.0), (14.0, 12.0)], Some(0.1)),
            failed,
        ];
        let s = Summary::new(&methods(), 5, &records, vec!["w".into()]);
        assert_eq!(s.scored, ["x", "y"]);
        assert_eq!(s.failed[0].file, "z.png");
        assert_eq!((s.unfinished.len(), s.not_run), (1, 1));
        assert_eq!(s.rows.len(), 4);
        let r = &s.rows[1];
        assert_eq!(
            (r.method.as_str(), r.stage.as_str(), r.size, r.n),
            ("a+b", "stage2", 32, 2)
        );
        // 30 and 36: mean 33, sample std √((9 + 9)/1) = √18.
        assert_eq!(r.psnr.unwrap().mean, 33.0);
        assert!((r.psnr.unwrap().std.unwrap() - 18f64.sqrt()).abs() < 1e-12);
        // 0.3 and 0.1: mean 0.2, std √(0.01 + 0.01) = √0.02.
        assert!((r.lpips.unwrap().mean - 0.2).abs() < 1e-15);
        assert!((r.lpips.unwrap().std.unwrap() - 0.02f64.sqrt()).abs() < 1e-15);
        let r = &s.rows[3];
        assert_eq!(r.psnr.unwrap().mean, 12.0);
        assert_eq!(r.psnr.unwrap().std, Some(0.0));
        assert_eq!(r.clip_score, None);

        let md = s.to_markdown();
        assert!(md.contains("| a+b | stage2 | 32 | 2 |"), "{md}");
        assert!(md.contains("| 33.00 ± 4.24 |"), "{md}");
        assert!(md.contains("`z.png`: image z.png is 8×8"), "{md}");
        let csv = s.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(header.len(), row.len());
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("psnr_mean").parse::<f64>().unwrap(), 33.0);
        assert_eq!(col("clip_score_mean"), "");
        let back: Summary = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }

    /// A score some images lack (here LPIPS) is left out rather than averaged over fewer images.
    #[test]
    fn a_column_is_over_all_images_or_none() {
        let records = vec![
            record("a", &[(20.0, 30.0), (10.0, 12.0)], Some(0.3)),
            record("b", &[(22.0, 36.0), (14.0, 12.0)], None),
        ];
        let s = Summary::new(&methods(), 2, &records, vec![]);
        assert!(s.rows.iter().all(|r| r.lpips.is_none() && r.psnr.is_some()));
    }

    /// The order records come in does not matter (shards merge in any order).
    #[test]
    fn the_summary_does_not_depend_on_the_records_order() {
        let records = vec![
            record("a", &[(20.0, 30.0), (10.0, 12.0)], None),
            record("b", &[(22.0, 36.0), (14.0, 12.5)], None),
            record("c", &[(21.0, 33.0), (11.0, 17.0)], None),
        ];
        let mut reversed = records.clone();
        reversed.reverse();
        let a = Summary::new(&methods(), 3, &records, vec![]);
        let b = Summary::new(&methods(), 3, &reversed, vec![]);
        assert_eq!(a.to_csv(), b.to_csv());
        assert_eq!(a.to_markdown(), b.to_markdown());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_text("a+b"), "a+b");
        assert_eq!(csv_text("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
