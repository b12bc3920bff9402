//! The default cascade compiled into the binary (see build.rs): tiny IF stage I (16 px) and II
//! (16 → 32 px) pipeline folders and a latent x4-upscaler-like stage (32 → 128 px), trained for
//! a few CPU minutes on six public sample photos (tools/reference/train_tiny_cascade.py,
//! train_tiny_upscaler.py), written out to a cache folder on first use. They show the whole
//! flow on a fresh machine; real work needs the real DeepFloyd-IF and SD x4 upscaler checkpoints
//! (`--stage1`, `--stage2`, `--stage3`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

include!(concat!(env!("OUT_DIR"), "/embedded_cascade.rs"));

/// The folder holding `stage1/`, `stage2/` and `stage3/`, written on first use (one per
/// embedded content).
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

/// The stage folders the user gave — stage I and the super-resolution stages after it, in order —
/// or (without `--stage1`) the built-in cascade's, each given upper stage replacing the built-in
/// one at its place.
pub fn stages_or_builtin(
    stage1: &Option<PathBuf>,
    stage2: &Option<PathBuf>,
    stage3: &Option<PathBuf>,
) -> Result<(PathBuf, Vec<PathBuf>)> {
    match stage1 {
        Some(dir) => {
            if stage2.is_none() && stage3.is_some() {
                bail!(
                    "--stage3 needs --stage2: the stages run in order (to run the upscaler right \
                     after stage I, give it as --stage2)"
                );
            }
            Ok((
                dir.clone(),
                [stage2, stage3].into_iter().flatten().cloned().collect(),
            ))
        }
        None => {
            let dir = cascade_dir()?;
            eprintln!(
                "no --stage1 given: running the tiny built-in cascade ({})",
                dir.display()
            );
            let mut upper = Vec::new();
            for (given, builtin) in [(stage2, "stage2"), (stage3, "stage3")] {
                match given {
                    Some(d) => upper.push(d.clone()),
                    None if dir.join(builtin).is_dir() => upper.push(dir.join(builtin)),
                    None => {}
                }
            }
            Ok((dir.join("stage1"), upper))
        }
    }
}
