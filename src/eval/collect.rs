//! Reading the records of one output folder, or of several shards' folders together
//! (`iterinv eval --merge`), into one [`Summary`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iterinv_models::{Error, Result};

use super::record::{ImageRecord, RunInfo};
use super::summary::Summary;

/// The records of the runs in `dirs`, which must be runs of the same settings and methods on
/// the same dataset (the shards of one job array, or one folder); each image may be in one of
/// them only.
pub fn collect(dirs: &[PathBuf]) -> Result<Summary> {
    let Some(first) = dirs.first() else {
        return Err(Error::Input {
            what: "merge".into(),
            detail: "needs at least one output folder of `iterinv eval`".into(),
        });
    };
    let base = load_run(first)?;
    let mut owner: BTreeMap<String, &Path> = BTreeMap::new();
    let mut records = Vec::new();
    let mut unfinished = Vec::new();
    for dir in dirs {
        let run = load_run(dir)?;
        if (&run.settings, &run.methods, run.dataset_images)
            != (&base.settings, &base.methods, base.dataset_images)
        {
            return Err(Error::Input {
                what: format!("{} and {}", first.display(), dir.display()),
                detail: format!(
                    "are not shards of one evaluation ({}); merge only the folders of one job \
                     array",
                    base.difference(&run)
                ),
            });
        }
        for id in &run.images {
            if let Some(other) = owner.insert(id.clone(), dir) {
                return Err(Error::Input {
                    what: format!("image `{id}`"),
                    detail: format!(
                        "is in both {} and {}; merge each shard once",
                        other.display(),
                        dir.display()
                    ),
                });
            }
            let image_dir = RunInfo::image_dir(dir, id);
            match ImageRecord::load(&image_dir)? {
                Some(r) if r.id == *id => records.push(r),
                Some(r) => {
                    return Err(Error::Input {
                        what: image_dir
                            .join(super::record::RECORD_FILE)
                            .display()
                            .to_string(),
                        detail: format!("is the record of `{}`, not of `{id}`", r.id),
                    })
                }
                None => unfinished.push(id.clone()),
            }
        }
    }
    Ok(Summary::new(
        &base.methods,
        base.dataset_images,
        &records,
        unfinished,
    ))
}

fn load_run(dir: &Path) -> Result<RunInfo> {
    RunInfo::load(dir)?.ok_or_else(|| Error::NotFound {
        path: dir.join(super::record::RUN_FILE),
        holds: "the folder is not an output folder of `iterinv eval` (give the --out of each \
                shard)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::record::{MethodScores, StageScores};
    use crate::eval::shard::Shard;

    fn scores(id: &str, k: f64) -> ImageRecord {
        let mut r = ImageRecord::new(id, Path::new(&format!("{id}.png")), "a photo");
        r.methods.push(MethodScores {
            method: "ddim+ddim".into(),
            stages: vec![StageScores {
                stage: "stage1".into(),
                size: 16,
                mse: 0.001 * k,
                psnr: 20.0 + k,
                ssim: Some(0.5 + k / 100.0),
                lpips: Some(0.25 / k),
                clip_score: None,
                seconds: k,
                latent_psnr: None,
                round_trip_psnr: None,
            }],
        });
        r
    }

    /// Write the run of `shard` over `ids` with its records, as `iterinv eval` does.
    fn write_run(dir: &Path, shard: Option<Shard>, ids: &[&str], finished: &[&str]) {
        let all: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let mine: Vec<String> = match shard {
            Some(s) => s.select(&all).into_iter().cloned().collect(),
            None => all.clone(),
        };
        assert_eq!(mine, ids);
        RunInfo::new(
            serde_json::json!({"steps": 3}),
            vec!["ddim+ddim".into()],
            all.len(),
            shard,
            mine,
        )
        .start(dir)
        .unwrap();
        for id in finished {
            let k = all.iter().position(|a| a == id).unwrap() as f64 + 1.0;
            let image_dir = RunInfo::image_dir(dir, id);
            std::fs::create_dir_all(&image_dir).unwrap();
            scores(id, k).save(&image_dir).unwrap();
        }
    }

    #[test]
    fn merged_shards_equal_the_unsharded_run() {
        let tmp = tempfile::tempdir().unwrap();
        let (one, s1, s2) = (
            tmp.path().join("all"),
            tmp.path().join("1"),
            tmp.path().join("2"),
        );
        let all = ["a", "b", "c", "d", "e"];
        write_run(&one, None, &all, &all);
        write_run(
            &s1,
            Some(Shard::new(1, 2).unwrap()),
            &["a", "c", "e"],
            &["a", "c", "e"],
        );
        write_run(
            &s2,
            Some(Shard::new(2, 2).unwrap()),
            &["b", "d"],
            &["b", "d"],
        );
        let single = collect(std::slice::from_ref(&one)).unwrap();
        let merged = collect(&[s2.clone(), s1.clone()]).unwrap();
        assert_eq!(merged, single);
        assert_eq!(merged.to_csv(), single.to_csv());
        assert_eq!(single.scored.len(), 5);
        // PSNR 21..25: mean 23.
        assert_eq!(single.rows[0].psnr.unwrap().mean, 23.0);

        // One shard alone: the others' images are counted as not run.
        let half = collect(std::slice::from_ref(&s2)).unwrap();
        assert_eq!((half.scored.len(), half.not_run), (2, 3));
        // The same shard twice is refused.
        let e = collect(&[s1.clone(), s1.clone()]).unwrap_err().to_string();
        assert!(e.contains("is in both"), "{e}");
    }

    #[test]
    fn unfinished_images_and_foreign_folders_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        write_run(&dir, None, &["a", "b", "c", "d", "e"], &["a", "b"]);
        let s = collect(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(s.unfinished, ["c", "d", "e"]);
        assert_eq!(s.not_run, 0);

        let other = tmp.path().join("other");
        RunInfo::new(
            serde_json::json!({"steps": 4}),
            vec!["ddim+ddim".into()],
            5,
            None,
            vec![],
        )
        .start(&other)
        .unwrap();
        let e = collect(&[dir.clone(), other]).unwrap_err().to_string();
        assert!(
            e.contains("not shards of one evaluation") && e.contains("`steps`"),
            "{e}"
        );
        let e = collect(&[tmp.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("eval.json"), "{e}");
        assert!(collect(&[]).is_err());
    }
}
