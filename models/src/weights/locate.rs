//! Finding a checkpoint's files the way diffusers and transformers name them: one
//! `{stem}.safetensors`, or shards listed by `{stem}.safetensors.index.json`, each optionally with
//! a variant (`{stem}.fp16.safetensors`, `{stem}.safetensors.index.fp16.json`), in a model folder
//! or in a subfolder of a pipeline folder (`unet/`, `text_encoder/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// How many folder entries an error lists before "...".
const LIST_MAX: usize = 24;

pub(crate) enum Layout {
    Single(PathBuf),
    Sharded(PathBuf),
}

impl Layout {
    /// A file given directly: an index if it ends in `.json`, else a single safetensors file.
    pub fn of_file(path: &Path) -> Layout {
        if path.extension().is_some_and(|e| e == "json") {
            Layout::Sharded(path.to_path_buf())
        } else {
            Layout::Single(path.to_path_buf())
        }
    }
}

/// The file names a checkpoint may have, most preferred first.
pub(crate) fn candidates(stem: &str, variant: Option<&str>) -> Vec<(String, bool)> {
    match variant {
        None => vec![
            (format!("{stem}.safetensors"), false),
            (format!("{stem}.safetensors.index.json"), true),
        ],
        Some(v) => vec![
            (format!("{stem}.{v}.safetensors"), false),
            // diffusers' and transformers' `_add_variant` puts the variant before the last suffix.
            (format!("{stem}.safetensors.index.{v}.json"), true),
            (format!("{stem}.{v}.safetensors.index.json"), true),
        ],
    }
}

pub(crate) fn locate(
    dir: &Path,
    subfolder: Option<&str>,
    variant: Option<&str>,
    stem: &str,
) -> Result<Layout> {
    if !dir.exists() {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
            holds: describe_parent(dir),
        });
    }
    if dir.is_file() {
        return Ok(Layout::of_file(dir));
    }
    let folder = match subfolder {
        Some(s) => dir.join(s),
        None => dir.to_path_buf(),
    };
    if !folder.is_dir() {
        return Err(Error::NotFound {
            path: folder,
            holds: format!("{} holds: {}", dir.display(), list_folder(dir)),
        });
    }
    let names = candidates(stem, variant);
    for (name, sharded) in &names {
        let path = folder.join(name);
        if path.is_file() {
            return Ok(if *sharded {
                Layout::Sharded(path)
            } else {
                Layout::Single(path)
            });
        }
    }
    Err(Error::MissingFile {
        looked_for: names.into_iter().map(|(n, _)| n).collect(),
        holds: list_folder(&folder),
        hint: hint(&folder, subfolder, variant, stem),
        folder,
    })
}

/// The `weight_map` of a shard index: key → shard file name.
pub(crate) fn read_index(path: &Path) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct ShardIndex {
        weight_map: BTreeMap<String, String>,
    }
    let bad = |detail: String| Error::BadIndex {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let index: ShardIndex = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a shard index with a `weight_map` ({e})")))?;
    if index.weight_map.is_empty() {
        return Err(bad("its `weight_map` lists no weights".into()));
    }
    for (key, shard) in &index.weight_map {
        let plain = Path::new(shard)
            .file_name()
            .is_some_and(|n| n == shard.as_str());
        if !plain || shard == ".." {
            return Err(bad(format!(
                "`{key}` is in shard \"{shard}\", which is not a plain file name in the index's folder"
            )));
        }
    }
    Ok(index.weight_map)
}

/// The entries of `dir`, sorted, comma-separated (folders with a trailing `/`), for error messages.
pub fn list_folder(dir: &Path) -> String {
    let Ok(read) = std::fs::read_dir(dir) else {
        return "(cannot be listed)".into();
    };
    let mut names: Vec<String> = read
        .flatten()
        .map(|e| {
            let mut n = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                n.push('/');
            }
            n
        })
        .collect();
    if names.is_empty() {
        return "nothing (it is empty)".into();
    }
    names.sort();
    abbreviate(&names)
}

/// The first few of `names`, comma-separated, with a count of the rest.
pub(crate) fn abbreviate(names: &[String]) -> String {
    let more = names.len().saturating_sub(LIST_MAX);
    let mut s = names[..names.len() - more].join(", ");
    if more > 0 {
        s.push_str(&format!(", ... ({more} more)"));
    }
    s
}

fn describe_parent(path: &Path) -> String {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) if p.is_dir() => format!("{} holds: {}", p.display(), list_folder(p)),
        Some(p) => format!("its parent {} does not exist either", p.display()),
        None => "check the path".into(),
    }
}

/// Advice for a folder with no checkpoint of the expected name, from what it does hold.
fn hint(folder: &Path, subfolder: Option<&str>, variant: Option<&str>, stem: &str) -> String {
    let names: Vec<String> = std::fs::read_dir(folder)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut hints = Vec::new();
    // Variants present: `{stem}.{v}.safetensors` or `{stem}.safetensors.index.{v}.json`.
    let mut variants: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let v = n
                .strip_prefix(&format!("{stem}."))
                .and_then(|r| r.strip_suffix(".safetensors"))
                .or_else(|| {
                    n.strip_prefix(&format!("{stem}.safetensors.index."))
                        .and_then(|r| r.strip_suffix(".json"))
                })?;
            (!v.is_empty() && !v.contains('.') && !v.contains("-of-") && Some(v) != variant)
                .then(|| v.to_string())
        })
        .collect();
    variants.sort();
    variants.dedup();
    match (variant, variants.is_empty()) {
        (None, false) => hints.push(format!(
            "only the variant(s) {} exist: open it with a variant (e.g. \"{}\")",
            variants.join(", "),
            variants[0]
        )),
        (Some(v), _) => {
            if names.iter().any(|n| {
                *n == format!("{stem}.safetensors")
                    || *n == format!("{stem}.safetensors.index.json")
            }) {
                hints.push(format!(
                    "there is no `{v}` variant, but {stem}.safetensors exists: open it without a variant"
                ));
            } else if !variants.is_empty() {
                hints.push(format!(
                    "there is no `{v}` variant; the folder has {}",
                    variants.join(", ")
                ));
            }
        }
        _ => {}
    }
    if names
        .iter()
        .any(|n| n.ends_with(".bin") || n.ends_with(".ckpt"))
    {
        hints.push(
            "PyTorch .bin/.ckpt checkpoints are not read: convert them to safetensors".into(),
        );
    }
    let others: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".safetensors") && !n.starts_with(stem))
        .collect();
    if !others.is_empty() {
        hints.push(format!(
            "{} is not named {stem}.*: is this the right model folder?",
            others[0]
        ));
    }
    if subfolder.is_none() {
        let subs: Vec<String> = ["unet", "text_encoder", "vae"]
            .into_iter()
            .filter(|s| folder.join(s).is_dir())
            .map(String::from)
            .collect();
        if !subs.is_empty() {
            hints.push(format!(
                "this looks like a pipeline folder: name its subfolder ({})",
                subs.join(", ")
            ));
        }
    }
    hints.iter().map(|h| format!("; {h}")).collect()
}
