//! What an evaluation leaves on disk, and reading it back.
//!
//! ```text
//! OUT/eval.json                  the run: its settings, methods, shard and images (RunInfo)
//! OUT/images/<id>/<method>/...   each method's artifacts, report.json and PNGs
//! OUT/images/<id>/record.json    the image's scores (ImageRecord), written last
//! OUT/summary.{md,csv,json}, OUT/chart.svg
//! ```
//!
//! An image's `record.json` is written atomically after everything else of the image, so it is
//! the image's "done" marker: a folder without one was interrupted and is redone. The records
//! alone hold every number the summary shows, so the summary of a run, of a resumed run and of
//! merged shards is the same function of the same records. Images live under `images/` so that
//! no image name can collide with the summary files.

use std::path::{Path, PathBuf};

use iterinv_models::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::shard::Shard;
use super::stats::num;

pub const RUN_FILE: &str = "eval.json";
pub const IMAGES_DIR: &str = "images";
pub const RECORD_FILE: &str = "record.json";
const FORMAT: &str = "iterinv-eval";
const VERSION: u32 = 1;

/// One stage of one method on one image: the paper's scores of the reconstruction against the
/// photo as the stage sees it (both in [0, 1]), and what it cost. Non-finite numbers (a diverged
/// method's NaN, the infinite PSNR of identical images) are kept, written as strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageScores {
    /// `stage1`, `stage2`, ...
    pub stage: String,
    /// The stage's side in pixels.
    pub size: usize,
    #[serde(with = "num")]
    pub mse: f64,
    /// Data range = the input's max − min (torchmetrics' default, as the paper).
    #[serde(with = "num")]
    pub psnr: f64,
    /// torchmetrics' SSIM, data range 1.
    #[serde(with = "num::opt", default, skip_serializing_if = "Option::is_none")]
    pub ssim: Option<f64>,
    #[serde(with = "num::opt", default, skip_serializing_if = "Option::is_none")]
    pub lpips: Option<f64>,
    #[serde(with = "num::opt", default, skip_serializing_if = "Option::is_none")]
    pub clip_score: Option<f64>,
    /// The stage's inversion time (not model loading or reconstruction).
    pub seconds: f64,
    /// A latent stage's latent PSNR and VAE round trip PSNR (see `StageReport`).
    #[serde(with = "num::opt", default, skip_serializing_if = "Option::is_none")]
    pub latent_psnr: Option<f64>,
    #[serde(with = "num::opt", default, skip_serializing_if = "Option::is_none")]
    pub round_trip_psnr: Option<f64>,
}

/// One method's stages on one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodScores {
    pub method: String,
    pub stages: Vec<StageScores>,
}

/// Everything measured on one image; `error` set when it failed (unreadable, too small, ...),
/// which leaves it out of every mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub format: String,
    pub version: u32,
    pub id: String,
    /// The image's path in the dataset folder.
    pub file: PathBuf,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub methods: Vec<MethodScores>,
}

impl ImageRecord {
    pub fn new(id: &str, file: &Path, prompt: &str) -> ImageRecord {
        ImageRecord {
            format: FORMAT.into(),
            version: VERSION,
            id: id.into(),
            file: file.into(),
            prompt: prompt.into(),
            error: None,
            methods: Vec::new(),
        }
    }

    /// The record in `image_dir`, or None when the image is not finished (no record yet).
    pub fn load(image_dir: &Path) -> Result<Option<ImageRecord>> {
        let path = image_dir.join(RECORD_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => read_json(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Write the record into `image_dir`, atomically: from now on the image counts as done.
    pub fn save(&self, image_dir: &Path) -> Result<()> {
        write_json(&image_dir.join(RECORD_FILE), self)
    }
}

/// The run an output folder holds: what must match for a rerun to resume it and for shards to
/// merge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub format: String,
    pub version: u32,
    /// Everything that changes the numbers (stage folders, steps, methods' settings, metric
    /// models), as the command states it.
    pub settings: Value,
    /// The methods' names, in the summary's order.
    pub methods: Vec<String>,
    /// How many images the dataset lists (all shards together).
    pub dataset_images: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The ids of the images this run takes (its shard's), in order.
    pub images: Vec<String>,
}

impl RunInfo {
    pub fn new(
        settings: Value,
        methods: Vec<String>,
        dataset_images: usize,
        shard: Option<Shard>,
        images: Vec<String>,
    ) -> RunInfo {
        RunInfo {
            format: FORMAT.into(),
            version: VERSION,
            settings,
            methods,
            dataset_images,
            shard,
            images,
        }
    }

    /// The run recorded in `out`, if any.
    pub fn load(out: &Path) -> Result<Option<RunInfo>> {
        let path = out.join(RUN_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => read_json(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Record this run in `out`, or check that it is the run already recorded there (a rerun
    /// resumes only the same run: other settings would mix numbers of two runs in one summary).
    pub fn start(&self, out: &Path) -> Result<()> {
        match RunInfo::load(out)? {
            None => {
                std::fs::create_dir_all(out).map_err(|source| Error::Io {
                    path: out.to_path_buf(),
                    source,
                })?;
                write_json(&out.join(RUN_FILE), self)
            }
            Some(old) if old == *self => Ok(()),
            Some(old) => Err(Error::Input {
                what: format!("output folder {}", out.display()),
                detail: format!(
                    "holds another run ({}); rerun with the same dataset, shard and flags to \
                     resume it, or give another --out",
                    old.difference(self)
                ),
            }),
        }
    }

    /// What differs between two runs, in words.
    pub fn difference(&self, other: &RunInfo) -> String {
        if self.settings != other.settings {
            let (Value::Object(a), Value::Object(b)) = (&self.settings, &other.settings) else {
                return "other settings".into();
            };
            let keys: Vec<&String> = a
                .keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .collect();
            let mut keys: Vec<String> = keys.into_iter().map(|k| format!("`{k}`")).collect();
            keys.dedup();
            return format!("other settings: {}", keys.join(", "));
        }
        if self.methods != other.methods {
            return format!(
                "methods {} ≠ {}",
                self.methods.join(","),
                other.methods.join(",")
            );
        }
        if self.shard != other.shard {
            let s = |s: &Option<Shard>| s.map_or("none".into(), |s| s.to_string());
            return format!("shard {} ≠ {}", s(&self.shard), s(&other.shard));
        }
        "another list of images".into()
    }

    /// The folder of image `id` in the output folder `out`.
    pub fn image_dir(out: &Path, id: &str) -> PathBuf {
        out.join(IMAGES_DIR).join(id)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    let bad = |detail: String| Error::Input {
        what: path.display().to_string(),
        detail,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("{e}")))?;
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(bad(format!("is not an `{FORMAT}` file")));
    }
    if value.get("version").and_then(Value::as_u64) != Some(VERSION.into()) {
        return Err(bad(format!(
            "has version {}; this iterinv reads version {VERSION}",
            value.get("version").unwrap_or(&Value::Null)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| bad(format!("{e}")))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Input {
        what: path.display().to_string(),
        detail: format!("cannot be serialized: {e}"),
    })?;
    bytes.push(b'\n');
    crate::pipeline::inversion::artifacts::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn stage(psnr: f64) -> StageScores {
        StageScores {
            stage: "stage1".into(),
            size: 16,
            mse: 0.01,
            psnr,
            ssim: Some(0.5),
            lpips: None,
            clip_score: None,
            seconds: 1.5,
            latent_psnr: None,
            round_trip_psnr: None,
        }
    }

    #[test]
    fn records_round_trip_with_non_finite_scores() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ImageRecord::load(dir.path()).unwrap(), None);
        let mut r = ImageRecord::new("cat", Path::new("cat.png"), "a cat");
        r.methods.push(MethodScores {
            method: "ddim+ddim".into(),
            stages: vec![stage(f64::INFINITY), stage(12.5)],
        });
        r.methods[0].stages[1].mse = f64::NAN;
        r.save(dir.path()).unwrap();
        let mut back = ImageRecord::load(dir.path()).unwrap().unwrap();
        assert!(back.methods[0].stages[1].mse.is_nan());
        assert_eq!(back.methods[0].stages[0].psnr, f64::INFINITY);
        // NaN ≠ NaN: compare the rest with that number set alike on both sides.
        back.methods[0].stages[1].mse = 0.0;
        r.methods[0].stages[1].mse = 0.0;
        assert_eq!(back, r);
    }

    #[test]
    fn a_broken_record_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECORD_FILE);
        for (text, expected) in [
            ("{", "EOF"),
            ("{\"format\": \"x\"}", "is not an `iterinv-eval` file"),
            (
                "{\"format\": \"iterinv-eval\", \"version\": 9}",
                "version 9",
            ),
            (
                "{\"format\": \"iterinv-eval\", \"version\": 1, \"id\": 3}",
                "id",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = ImageRecord::load(dir.path()).unwrap_err().to_string();
            assert!(e.contains(RECORD_FILE) && e.contains(expected), "{e}");
        }
    }

    #[test]
    fn a_rerun_resumes_only_the_same_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunInfo::new(
            serde_json::json!({"steps": 3, "seed": 0}),
            vec!["ddim+ddim".into()],
            3,
            None,
            vec!["a".into(), "b".into(), "c".into()],
        );
        run.start(dir.path()).unwrap();
        run.start(dir.path()).unwrap();
        let mut other = run.clone();
        other.settings["steps"] = 4.into();
        let e = other.start(dir.path()).unwrap_err().to_string();
        assert!(e.contains("other settings: `steps`"), "{e}");
        let mut other = run.clone();
        other.shard = Some(Shard::new(1, 2).unwrap());
        let e = other.start(dir.path()).unwrap_err().to_string();
        assert!(e.contains("shard none ≠ 1/2"), "{e}");
    }
}
