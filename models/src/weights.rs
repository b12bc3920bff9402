//! Checkpoint loading: safetensors files, memory-mapped, single or sharded (with an
//! `*.safetensors.index.json`), optionally a variant (`fp16`), in a model folder or a pipeline's
//! subfolder. Weights are uploaded in their stored precision (F32, F16, BF16: never widened) straight
//! from the mapping, so a multi-GB file is not copied into RAM on the way to the GPU.
//!
//! A model asks for each weight by key and expected shape ([`Checkpoint::tensor`]); the
//! checkpoint records which keys were asked for, so the caller can warn once about the rest
//! ([`Checkpoint::unused_keys`]). [`KeyIndex`] holds the keys, shapes and dtypes alone, so the same
//! checks run on a parameter list without any weights.

mod file;
mod index;
mod locate;
mod source;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use iterinv_engine::{Gpu, Tensor};

use crate::error::{Error, Result};
use file::MappedFile;
use locate::Layout;

pub use index::{engine_dtype, FileDType, KeyEntry, KeyIndex};
pub(crate) use locate::abbreviate;
pub use locate::list_folder;
pub use source::{ShapeCheck, Upload, WeightSource, Weights};

/// The file stem diffusers gives model weights (UNets, VAEs).
pub const DIFFUSERS_STEM: &str = "diffusion_pytorch_model";
/// The file stem transformers gives model weights (T5, CLIP text encoders).
pub const TRANSFORMERS_STEM: &str = "model";

/// Default for [`Checkpoint::set_flush_every`].
pub const FLUSH_EVERY_BYTES: u64 = 256 << 20;

/// An opened checkpoint: its files mapped, their headers indexed by key.
pub struct Checkpoint {
    /// The single file, or the shard index.
    location: PathBuf,
    files: Vec<MappedFile>,
    index: KeyIndex,
    /// Bytes uploaded since the last submission. wgpu keeps a host-side staging copy of every
    /// queue write until the next submission, so a loader that never submits would hold the
    /// whole checkpoint twice in RAM; we submit and wait every `flush_every` bytes.
    staged: AtomicU64,
    flush_every: AtomicU64,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Checkpoint({}, {} tensors in {} file(s))",
            self.location.display(),
            self.index.len(),
            self.files.len()
        )
    }
}

impl Checkpoint {
    /// Open the checkpoint in `dir` (or in `dir/subfolder` for a pipeline folder), named
    /// `{file_stem}.safetensors` or `{file_stem}.safetensors.index.json`, or with a `variant`
    /// `{file_stem}.{variant}.safetensors` / `{file_stem}.safetensors.index.{variant}.json`.
    /// `file_stem` is [`DIFFUSERS_STEM`] or [`TRANSFORMERS_STEM`]. When `dir` is a file it is
    /// opened as it is (see [`open_file`](Self::open_file)) and the other arguments are unused.
    pub fn open(
        dir: &Path,
        subfolder: Option<&str>,
        variant: Option<&str>,
        file_stem: &str,
    ) -> Result<Checkpoint> {
        match locate::locate(dir, subfolder, variant, file_stem)? {
            Layout::Single(path) => Checkpoint::open_single(&path),
            Layout::Sharded(path) => Checkpoint::open_sharded(&path),
        }
    }

    /// Open one `.safetensors` file, or the shards of a `.json` shard index.
    pub fn open_file(path: &Path) -> Result<Checkpoint> {
        if !path.is_file() {
            return Err(Error::NotFound {
                path: path.to_path_buf(),
                holds: match path.parent() {
                    Some(p) if p.is_dir() => {
                        format!("{} holds: {}", p.display(), locate::list_folder(p))
                    }
                    _ => "its folder does not exist either".into(),
                },
            });
        }
        match Layout::of_file(path) {
            Layout::Single(p) => Checkpoint::open_single(&p),
            Layout::Sharded(p) => Checkpoint::open_sharded(&p),
        }
    }

    fn open_single(path: &Path) -> Result<Checkpoint> {
        let file = MappedFile::open(path)?;
        let mut index = KeyIndex::new(path.display().to_string());
        let f = index.add_file(path);
        for (key, mut entry) in file.entries.iter().cloned() {
            entry.file = f;
            index.insert_entry(key, entry);
        }
        Ok(Checkpoint {
            location: path.to_path_buf(),
            files: vec![file],
            index,
            staged: AtomicU64::new(0),
            flush_every: AtomicU64::new(FLUSH_EVERY_BYTES),
        })
    }

    fn open_sharded(index_path: &Path) -> Result<Checkpoint> {
        let weight_map = locate::read_index(index_path)?;
        let folder = index_path.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<&str> = weight_map.values().map(String::as_str).collect();
        shards.sort();
        shards.dedup();
        let mut index = KeyIndex::new(format!(
            "{} ({} shard{}: {})",
            index_path.display(),
            shards.len(),
            if shards.len() == 1 { "" } else { "s" },
            shards.join(", ")
        ));
        let mut files = Vec::with_capacity(shards.len());
        for shard in &shards {
            let path = folder.join(shard);
            if !path.is_file() {
                return Err(Error::BadIndex {
                    path: index_path.to_path_buf(),
                    detail: format!(
                        "it names shard {shard}, which is not in {} (the folder holds: {})",
                        folder.display(),
                        locate::list_folder(folder)
                    ),
                });
            }
            let file = MappedFile::open(&path)?;
            let f = index.add_file(&path);
            for (key, mut entry) in file.entries.iter().cloned() {
                entry.file = f;
                // A key in several shards: the one the weight_map names wins (checked below).
                let owner = weight_map.get(&key).map(String::as_str);
                if index.contains(&key) && owner != Some(*shard) {
                    if owner.is_none() {
                        log::warn!("{key} is in several shards of {}", index_path.display());
                    }
                    continue;
                }
                index.insert_entry(key, entry);
            }
            files.push(file);
        }
        for (key, shard) in &weight_map {
            let holder = index.get(key).map(|e| index.files()[e.file].as_path());
            if holder.and_then(Path::file_name) != Some(std::ffi::OsStr::new(shard)) {
                return Err(Error::BadIndex {
                    path: index_path.to_path_buf(),
                    detail: format!(
                        "its weight_map puts `{key}` in {shard}, which does not hold it"
                    ),
                });
            }
        }
        Ok(Checkpoint {
            location: index_path.to_path_buf(),
            files,
            index,
            staged: AtomicU64::new(0),
            flush_every: AtomicU64::new(FLUSH_EVERY_BYTES),
        })
    }

    /// Upload the weight `key`, which must have `expected_shape`, in its stored precision.
    /// Marks the key used.
    pub fn tensor(&self, gpu: &Gpu, key: &str, expected_shape: &[usize]) -> Result<Tensor> {
        let (bytes, dtype) = self.bytes(key, expected_shape)?;
        let tensor = Tensor::from_bytes(gpu, expected_shape, dtype, bytes).map_err(|source| {
            Error::Upload {
                key: key.to_string(),
                file: self.file_of(key),
                source,
            }
        })?;
        let len = bytes.len() as u64;
        let staged = self.staged.fetch_add(len, Ordering::Relaxed) + len;
        if staged >= self.flush_every.load(Ordering::Relaxed) {
            self.staged.store(0, Ordering::Relaxed);
            // Submit the queued writes (an empty submission carries them) and wait, so wgpu
            // frees their staging copies.
            gpu.flush();
            gpu.queue().submit(None);
            gpu.synchronize()?;
        }
        Ok(tensor)
    }

    /// Submit uploads and wait for them every `bytes` uploaded (default [`FLUSH_EVERY_BYTES`]):
    /// this bounds the host memory wgpu holds in staging copies while a model loads.
    pub fn set_flush_every(&self, bytes: u64) {
        self.flush_every.store(bytes.max(1), Ordering::Relaxed);
    }

    /// The stored little-endian bytes of `key` and their dtype, after the same checks as
    /// [`tensor`](Self::tensor) (for weights a model reads on the CPU). Marks the key used.
    pub fn bytes(
        &self,
        key: &str,
        expected_shape: &[usize],
    ) -> Result<(&[u8], iterinv_engine::DType)> {
        let (entry, dtype) = self.index.lookup(key, expected_shape)?;
        Ok((file::bytes(&self.files, &self.index, key, entry)?, dtype))
    }

    /// The stored shape of `key` (does not mark it used).
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.index.shape(key)
    }

    /// The stored dtype of `key` (does not mark it used).
    pub fn dtype(&self, key: &str) -> Option<FileDType> {
        self.index.get(key).map(|e| e.dtype)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains(key)
    }

    /// Every key, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.index.keys()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Keys no [`tensor`](Self::tensor) / [`bytes`](Self::bytes) call asked for, sorted.
    pub fn unused_keys(&self) -> Vec<String> {
        self.index.unused_keys()
    }

    /// Keys, shapes, dtypes and the used-key record.
    pub fn index(&self) -> &KeyIndex {
        &self.index
    }

    /// The single file or the shard index that was opened.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// The safetensors files, in the order entries number them.
    pub fn files(&self) -> &[PathBuf] {
        self.index.files()
    }

    fn file_of(&self, key: &str) -> PathBuf {
        self.index
            .get(key)
            .map(|e| self.index.file_of(e).to_path_buf())
            .unwrap_or_else(|| self.location.clone())
    }
}

/// Where a network lives in a folder and how its weight files are named.
#[derive(Clone, Copy, Debug)]
pub struct NetworkFiles {
    /// The subfolder a pipeline folder keeps it in (`unet`, `text_encoder`, `vae`).
    pub subfolder: &'static str,
    /// [`DIFFUSERS_STEM`] or [`TRANSFORMERS_STEM`].
    pub stem: &'static str,
    /// How errors and warnings name it ("the UNet").
    pub name: &'static str,
}

/// Load a network from its own folder (`config.json` + `<stem>[.variant].safetensors`, single or
/// sharded) or from a pipeline folder holding it in `files.subfolder`: its config with `config`,
/// then the network with `build`, which uploads each weight it asks for. Unused checkpoint keys
/// are logged once as a warning.
pub fn load_network<C, T>(
    gpu: &Gpu,
    dir: &Path,
    variant: Option<&str>,
    files: NetworkFiles,
    config: impl FnOnce(&Path, Option<&str>) -> Result<C>,
    build: impl FnOnce(C, &Weights) -> Result<T>,
) -> Result<T> {
    let subfolder = crate::config::model_subfolder(dir, files.subfolder);
    let config = config(dir, subfolder)?;
    build_from_checkpoint(gpu, dir, subfolder, variant, files.stem, files.name, |w| {
        build(config, w)
    })
}

/// Build a network from the checkpoint in `dir` (or `dir/subfolder`) with `build`, uploading each
/// weight it asks for; then log once, as a warning, the checkpoint keys it did not use.
/// `network` names it in that warning ("the IF UNet").
pub fn build_from_checkpoint<T>(
    gpu: &Gpu,
    dir: &Path,
    subfolder: Option<&str>,
    variant: Option<&str>,
    file_stem: &str,
    network: &str,
    build: impl FnOnce(&Weights) -> Result<T>,
) -> Result<T> {
    let checkpoint = Checkpoint::open(dir, subfolder, variant, file_stem)?;
    let source = Upload {
        gpu,
        checkpoint: &checkpoint,
    };
    let built = build(&Weights::new(&source))?;
    let unused = checkpoint.unused_keys();
    if !unused.is_empty() {
        log::warn!(
            "{} weight(s) in {} are not part of {network} and were ignored: {}",
            unused.len(),
            checkpoint.location().display(),
            abbreviate(&unused)
        );
    }
    Ok(built)
}
