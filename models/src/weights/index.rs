//! [`KeyIndex`]: what a checkpoint holds (key → shape, stored dtype, file), without the data.
//!
//! A [`Checkpoint`](super::Checkpoint) builds one from its files' headers; a test can build one
//! from a list of (key, shape, dtype) entries (e.g. a real checkpoint's published parameter list)
//! and check that a model asks for exactly those keys and shapes without allocating any weight.
//! Lookups record which keys were used, so the caller can report the ones nobody asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use iterinv_engine::DType;

use crate::error::{Error, Result};

/// Element types as a safetensors header names them.
pub use safetensors::Dtype as FileDType;

/// How many near-miss keys a missing-key error suggests.
const NEAR_MISSES: usize = 3;

/// The engine dtype a stored dtype uploads as, if it is one iterinv loads (F32, F16, BF16).
pub fn engine_dtype(dtype: FileDType) -> Option<DType> {
    match dtype {
        FileDType::F32 => Some(DType::F32),
        FileDType::F16 => Some(DType::F16),
        FileDType::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// One tensor of a checkpoint: its shape, stored dtype, and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub shape: Vec<usize>,
    pub dtype: FileDType,
    /// Index into [`KeyIndex::files`].
    pub file: usize,
    /// Byte range of the data inside the file's data section (empty for entries without data).
    pub(crate) data: Range<usize>,
}

impl KeyEntry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Key → [`KeyEntry`] for every tensor of a checkpoint, plus the record of which keys were used.
#[derive(Debug)]
pub struct KeyIndex {
    /// The checkpoint in words, for error messages ("/m/unet/x.safetensors.index.json (2 shards)").
    source: String,
    files: Vec<PathBuf>,
    entries: BTreeMap<String, KeyEntry>,
    used: Mutex<BTreeSet<String>>,
}

impl KeyIndex {
    /// An empty index; `source` describes the checkpoint in error messages.
    pub fn new(source: impl Into<String>) -> KeyIndex {
        KeyIndex {
            source: source.into(),
            files: Vec::new(),
            entries: BTreeMap::new(),
            used: Mutex::new(BTreeSet::new()),
        }
    }

    /// An index of entries that all come from one (possibly imaginary) file, e.g. a parameter
    /// list read from a spec: no data is attached, so only the checks can run on it.
    pub fn from_entries(
        file: impl Into<PathBuf>,
        entries: impl IntoIterator<Item = (String, Vec<usize>, FileDType)>,
    ) -> KeyIndex {
        let file = file.into();
        let mut index = KeyIndex::new(file.display().to_string());
        let f = index.add_file(file);
        for (key, shape, dtype) in entries {
            index.insert(key, shape, dtype, f);
        }
        index
    }

    /// Register a file entries can point at; returns its number.
    pub fn add_file(&mut self, path: impl Into<PathBuf>) -> usize {
        self.files.push(path.into());
        self.files.len() - 1
    }

    /// Add (or replace) an entry without data; returns the entry it replaced.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        shape: Vec<usize>,
        dtype: FileDType,
        file: usize,
    ) -> Option<KeyEntry> {
        self.insert_entry(
            key.into(),
            KeyEntry {
                shape,
                dtype,
                file,
                data: 0..0,
            },
        )
    }

    pub(crate) fn insert_entry(&mut self, key: String, entry: KeyEntry) -> Option<KeyEntry> {
        self.entries.insert(key, entry)
    }

    /// The checkpoint in words, as error messages name it.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The file an entry lives in.
    pub fn file_of(&self, entry: &KeyEntry) -> &Path {
        self.files
            .get(entry.file)
            .map(PathBuf::as_path)
            .unwrap_or_else(|| Path::new(&self.source))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Every (key, entry), sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &KeyEntry)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// The entry of `key`, without marking it used.
    pub fn get(&self, key: &str) -> Option<&KeyEntry> {
        self.entries.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The stored shape of `key`, without marking it used.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    /// Total number of elements over all entries.
    pub fn total_numel(&self) -> usize {
        self.entries.values().map(KeyEntry::numel).sum()
    }

    /// Check that `key` exists, has `expected_shape` and a dtype iterinv loads; mark it used and
    /// return its entry with the engine dtype. Errors name the key, the file(s) and what differs.
    pub fn lookup(&self, key: &str, expected_shape: &[usize]) -> Result<(&KeyEntry, DType)> {
        let Some(entry) = self.entries.get(key) else {
            return Err(Error::MissingKey {
                key: key.to_string(),
                searched: self.source.clone(),
                near: self.near_misses(key, NEAR_MISSES),
            });
        };
        if entry.shape != expected_shape {
            return Err(Error::Shape {
                key: key.to_string(),
                file: self.file_of(entry).to_path_buf(),
                expected: expected_shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        let Some(dtype) = engine_dtype(entry.dtype) else {
            return Err(Error::DType {
                key: key.to_string(),
                file: self.file_of(entry).to_path_buf(),
                dtype: entry.dtype.to_string(),
            });
        };
        self.mark_used(key);
        Ok((entry, dtype))
    }

    /// Record `key` as used (for keys a model consumes without [`lookup`](Self::lookup)).
    pub fn mark_used(&self, key: &str) {
        if self.entries.contains_key(key) {
            self.used_set().insert(key.to_string());
        }
    }

    /// Keys that no lookup asked for, sorted. The caller reports them once, as a warning.
    pub fn unused_keys(&self) -> Vec<String> {
        let used = self.used_set();
        self.entries
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    }

    /// How many distinct keys lookups asked for.
    pub fn used_count(&self) -> usize {
        self.used_set().len()
    }

    /// The `n` keys closest to `key`: longest shared prefix first, then longest shared suffix
    /// (so `mid_block.attentions.0.query.weight` finds `mid_block.attentions.0.to_q.weight`).
    pub fn near_misses(&self, key: &str, n: usize) -> Vec<String> {
        let mut scored: Vec<(usize, usize, &String)> = self
            .entries
            .keys()
            .map(|k| (common_prefix(k, key), common_suffix(k, key), k))
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        scored
            .into_iter()
            .take(n)
            .map(|(_, _, k)| k.clone())
            .collect()
    }

    fn used_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic elsewhere while holding the lock leaves the set intact: keep using it.
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

fn common_suffix(a: &str, b: &str) -> usize {
    a.bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count()
}
