//! The models crate's error type. Every failure names what it is about (the file, the weight key,
//! the config field) and, where there is one, what to do about it.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A failure in the GPU runtime that is not about one weight.
    #[error(transparent)]
    Engine(#[from] iterinv_engine::Error),

    /// A model folder, a pipeline's subfolder or a named file does not exist.
    #[error("{} does not exist; {holds}", path.display())]
    NotFound { path: PathBuf, holds: String },

    /// No checkpoint file of the expected name is in the folder.
    #[error(
        "no checkpoint in {}: looked for {}; the folder holds: {holds}{hint}",
        folder.display(),
        looked_for.join(", ")
    )]
    MissingFile {
        folder: PathBuf,
        looked_for: Vec<String>,
        holds: String,
        /// Empty, or "; " followed by advice.
        hint: String,
    },

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The safetensors header or the data it describes is out of range or malformed.
    #[error("{} is not a valid safetensors file (truncated or corrupt?): {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// A `*.safetensors.index.json` that cannot be used.
    #[error("shard index {}: {detail}", path.display())]
    BadIndex { path: PathBuf, detail: String },

    /// The model asked for a weight the checkpoint does not hold.
    #[error("weight `{key}` not found in {searched}{}", near_misses(near))]
    MissingKey {
        key: String,
        /// The file(s) searched, in words.
        searched: String,
        /// The closest keys the checkpoint does hold.
        near: Vec<String>,
    },

    #[error(
        "weight `{key}` in {} has shape {found:?}, but the model expects {expected:?} \
         (does the config.json match the weights?)",
        file.display()
    )]
    Shape {
        key: String,
        file: PathBuf,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error(
        "weight `{key}` in {} is stored as {dtype}; iterinv loads F32, F16 and BF16 weights \
         (convert the checkpoint to one of those)",
        file.display()
    )]
    DType {
        key: String,
        file: PathBuf,
        dtype: String,
    },

    /// A run that its memory plan shows would not fit the GPU memory budget, refused before
    /// it starts; the message says what would fit.
    #[error("{0}")]
    OverBudget(String),

    /// The GPU runtime refused one weight (too large for the device, out of memory, ...).
    #[error("uploading weight `{key}` from {}: {source}", file.display())]
    Upload {
        key: String,
        file: PathBuf,
        source: iterinv_engine::Error,
    },

    /// config.json is not valid JSON, or a field has the wrong JSON type.
    #[error("{}: {detail}", path.display())]
    ConfigParse { path: PathBuf, detail: String },

    /// A config field holds a value iterinv does not support (or an inconsistent one).
    #[error("config field `{field}` = {value}: {detail}")]
    Config {
        field: String,
        value: String,
        detail: String,
    },

    /// Another error, in the named file.
    #[error("{}: {source}", path.display())]
    InFile { path: PathBuf, source: Box<Error> },

    /// A tokenizer folder or file that cannot be used (corrupt spiece.model, a tokenizer.json
    /// the tokenizers crate refuses, no tokenizer file at all), or a text it cannot encode.
    #[error("tokenizer {}: {detail}", path.display())]
    Tokenizer { path: PathBuf, detail: String },

    /// A network's input does not fit the network (shape, channel count, batch).
    #[error("input `{what}` {detail}")]
    Input { what: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn near_misses(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!(
            "; closest keys it holds: {}",
            near.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
