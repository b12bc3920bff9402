//! The default cascade compiled into the binary (see build.rs): tiny IF stage I (16 px) and II
//! (16 → 32 px) pipeline folders, trained for a few CPU minutes on six public sample photos
//! (tools/reference/train_tiny_cascade.py), written out to a cache folder on first use. They
//! show the whole flow on a fresh machine; real work needs the real DeepFloyd-IF checkpoints
//! (`--stage1`, `--stage2`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

include!(concat!(env!("OUT_DIR"), "/embedded_cascade.rs"));

/// The folder holding `stage1/` and `stage2/`, written on first use (one per embedded content).
pub fn cascade_dir() -> Result<PathBuf> {
    if FILES.is_empty() {
        bail!("this build has no embedded cascade; give --stage1 and --stage2");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "iterinv/embedded-cascade-{}-{HASH:016x}",
        iterinv::VERSION
    ));
    for (rel, bytes) in FILES {
        let path = dir.join(rel);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            continue;
        }
        let parent = path.parent().expect("a file inside the folder");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        // Write under a temporary name and rename, so an interrupted run leaves no half file.
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// The stage folders the user gave, or (without `--stage1`) the built-in cascade's.
pub fn stages_or_builtin(
    stage1: &Option<PathBuf>,
    stage2: &Option<PathBuf>,
) -> Result<(PathBuf, Option<PathBuf>)> {
    Ok(match stage1 {
        Some(dir) => (dir.clone(), stage2.clone()),
        None => {
            let dir = cascade_dir()?;
            eprintln!(
                "no --stage1 given: running the tiny built-in cascade ({})",
                dir.display()
            );
            let stage2 = stage2.clone().unwrap_or(dir.join("stage2"));
            (dir.join("stage1"), Some(stage2))
        }
    })
}
