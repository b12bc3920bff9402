//! The default cascade compiled into the library (feature `embedded-cascade`, see build.rs): tiny
//! IF stage I (16 px) and II (16 → 32 px) pipeline folders and a latent x4-upscaler-like stage
//! (32 → 128 px), trained for a few CPU minutes on six public sample photos
//! (tools/reference/train_tiny_cascade.py, train_tiny_upscaler.py), written out to a cache folder
//! on first use. They show the whole flow on a fresh machine — the CLI runs them without
//! `--stage1`, the C API with `iterinv_context_new_builtin` —; real work needs the real
//! DeepFloyd-IF and SD x4 upscaler checkpoints.

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use iterinv_models::{Error, Result};

/// Numbers the temporary files of this process's writes.
static WRITERS: AtomicU64 = AtomicU64::new(0);

include!(concat!(env!("OUT_DIR"), "/embedded_cascade.rs"));

/// iterinv's folder in the user's cache: `$XDG_CACHE_HOME/iterinv`, else `~/.cache/iterinv`,
/// else the temporary folder's `iterinv` (always an absolute path).
pub fn cache_dir() -> PathBuf {
    let absolute = |p: PathBuf| Some(p).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(|d| absolute(d.into()))
        .or_else(|| std::env::var_os("HOME").and_then(|h| absolute(Path::new(&h).join(".cache"))))
        .unwrap_or_else(std::env::temp_dir)
        .join("iterinv")
}

/// The folder holding `stage1/`, `stage2/` and `stage3/`, written on first use (one per
/// embedded content) in [`cache_dir`].
pub fn cascade_dir() -> Result<PathBuf> {
    cascade_dir_in(&cache_dir())
}

/// [`cascade_dir`] in the cache folder `cache`. Safe to call from several threads and processes
/// at once: each writes its own temporary files and renames them into place.
pub fn cascade_dir_in(cache: &Path) -> Result<PathBuf> {
    if FILES.is_empty() {
        return Err(Error::Input {
            what: "the built-in cascade".into(),
            detail: "is missing from this build (tests/fixtures/trained_cascade was not found); \
                     give the pipeline folders"
                .into(),
        });
    }
    let dir = cache.join(format!("embedded-cascade-{}-{HASH:016x}", crate::VERSION));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    for (rel, bytes) in FILES {
        let path = dir.join(rel);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            continue;
        }
        let parent = path.parent().expect("a file inside the folder");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        // Write under a temporary name of this writer's own and rename (atomic), so that an
        // interrupted run leaves no half file and concurrent writers (threads, or processes
        // sharing the cache) never rename one another's files: the last rename wins, with the
        // same bytes.
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("partial-{}-{writer}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(dir)
}

/// The built-in cascade's stage folders, written out on first use: stage I's and the
/// super-resolution stages after it, in order.
pub fn stages() -> Result<(PathBuf, Vec<PathBuf>)> {
    stages_in(&cache_dir())
}

/// [`stages`] written out in the cache folder `cache` (see [`cascade_dir_in`]).
pub fn stages_in(cache: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let dir = cascade_dir_in(cache)?;
    let upper = ["stage2", "stage3"]
        .into_iter()
        .map(|s| dir.join(s))
        .filter(|d| d.is_dir())
        .collect();
    Ok((dir.join("stage1"), upper))
}
