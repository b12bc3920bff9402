//! One memory-mapped `.safetensors` file: its header, parsed and checked by the `safetensors`
//! crate, and byte slices of its tensors straight from the mapping (no copy into RAM).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{SafeTensorError, SafeTensors};

use super::index::{KeyEntry, KeyIndex};
use crate::error::{Error, Result};

/// The 8-byte little-endian header length that starts every safetensors file.
const HEADER_LEN_BYTES: u64 = 8;

pub(crate) struct MappedFile {
    pub path: PathBuf,
    map: Mmap,
    /// Offset of the data section (after the header) in the file.
    data_start: usize,
    /// (key, entry without its file number) for every tensor, from the header.
    pub entries: Vec<(String, KeyEntry)>,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<MappedFile> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < HEADER_LEN_BYTES {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "the file holds {len} bytes, fewer than the {HEADER_LEN_BYTES}-byte header length"
                ),
            });
        }
        // SAFETY: the mapping is read-only. Like every memory-mapped loader, we rely on nobody
        // truncating or rewriting the checkpoint while it is open; the header and every offset
        // are checked against the mapped length before any slice is taken.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (header, metadata) = SafeTensors::read_metadata(&map).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            detail: describe(&e, len),
        })?;
        let data_start = header + HEADER_LEN_BYTES as usize;
        let mut entries: Vec<(String, KeyEntry)> = metadata
            .tensors()
            .into_iter()
            .map(|(key, info)| {
                let (s, e) = info.data_offsets;
                let entry = KeyEntry {
                    shape: info.shape.clone(),
                    dtype: info.dtype,
                    file: 0,
                    data: s..e,
                };
                (key, entry)
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
            data_start,
            entries,
        })
    }

    /// The stored bytes of `entry` (which must come from this file).
    pub fn bytes(&self, key: &str, entry: &KeyEntry) -> Result<&[u8]> {
        let start = self.data_start.checked_add(entry.data.start);
        let end = self.data_start.checked_add(entry.data.end);
        start
            .zip(end)
            .and_then(|(s, e)| self.map.get(s..e))
            .ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                detail: format!("the data of `{key}` lies outside the file"),
            })
    }
}

/// Where the entries of a checkpoint point: the files they are in.
pub(crate) fn bytes<'a>(
    files: &'a [MappedFile],
    index: &KeyIndex,
    key: &str,
    entry: &KeyEntry,
) -> Result<&'a [u8]> {
    match files.get(entry.file) {
        Some(f) => f.bytes(key, entry),
        None => Err(Error::Corrupt {
            path: index.file_of(entry).to_path_buf(),
            detail: format!("`{key}` has no data attached"),
        }),
    }
}

/// The `safetensors` crate's errors, in words that say what is wrong with the file.
fn describe(e: &SafeTensorError, file_len: u64) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => "the file is shorter than the header length".into(),
        SafeTensorError::HeaderTooLarge => {
            "the header length field is larger than any real header".into()
        }
        SafeTensorError::InvalidHeaderLength => format!(
            "the header length field runs past the end of the file ({file_len} bytes): truncated?"
        ),
        SafeTensorError::InvalidHeader(e) => format!("the header is not UTF-8 text ({e})"),
        SafeTensorError::InvalidHeaderStart => "the header does not start with '{'".into(),
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("the header is not a safetensors JSON header ({e})")
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("the data offsets of tensor `{name}` do not follow the previous tensor's")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and dtype".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the header's tensors do not exactly fill the data section (the file is {file_len} \
             bytes): truncated or padded"
        ),
        SafeTensorError::ValidationOverflow => "a tensor's size overflows".into(),
        SafeTensorError::MisalignedSlice => "a tensor's data is not a whole number of bytes".into(),
        other => other.to_string(),
    }
}
