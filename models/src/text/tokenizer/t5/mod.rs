//! T5's SentencePiece tokenizer, giving the token ids transformers' `T5Tokenizer` gives (checked
//! against transformers 5.24 in models/tests/tokenizer.rs).
//!
//! DeepFloyd-IF ships its tokenizer as `tokenizer/spiece.model` alone; transformers converts it
//! to a tokenizers pipeline on load. [`T5Tokenizer::load`] does the same conversion in Rust
//! (`spiece` reads the protobuf, `pipeline` builds the tokenizers objects), or loads a
//! `tokenizer.json` directly when the folder has one.

mod pipeline;
mod spiece;

use std::ops::Deref;
use std::path::Path;

use super::config::{ConfigFile, TOKENIZER_CONFIG};
use super::{load_tokenizer_json, locate, no_tokenizer, tokenizer_error, Pipeline, TOKENIZER_JSON};
use crate::error::{Error, Result};

/// The sentinels `<extra_id_0..N>` T5 adds to its SentencePiece vocabulary, unless
/// tokenizer_config.json says otherwise (`extra_ids`).
pub const DEFAULT_EXTRA_IDS: usize = 100;
pub const SPIECE_MODEL: &str = "spiece.model";
/// More sentinels than this in tokenizer_config.json is a corrupt file, not a T5 model.
const MAX_EXTRA_IDS: u64 = 100_000;
/// The files a T5 tokenizer folder is loaded from, in order of preference.
const NAMES: [&str; 2] = [TOKENIZER_JSON, SPIECE_MODEL];

/// T5's tokenizer: SentencePiece unigram, `</s>` appended, padded with `<pad>`. Derefs to the
/// [`Pipeline`] that encodes.
#[derive(Clone, Debug)]
pub struct T5Tokenizer {
    pipeline: Pipeline,
}

impl Deref for T5Tokenizer {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        &self.pipeline
    }
}

impl T5Tokenizer {
    /// Load from a tokenizer folder (`tokenizer.json`, preferred, or `spiece.model`), a pipeline
    /// folder holding `tokenizer/`, or one of those two files.
    pub fn load(path: &Path) -> Result<Self> {
        let (_, file) = locate(path, &NAMES, "T5's tokenizer")?;
        let file = file.ok_or_else(|| no_tokenizer(path, &NAMES))?;
        if file.extension().is_some_and(|e| e == "json") {
            Self::from_tokenizer_json(&file)
        } else {
            Self::from_spiece_model(&file)
        }
    }

    /// Load a tokenizers `tokenizer.json` (as transformers saves it).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let tokenizer = load_tokenizer_json(path)?.expect_model(path, "Unigram", "T5's")?;
        Self::new(tokenizer, path)
    }

    /// Convert a SentencePiece `spiece.model` as transformers' T5Tokenizer does, with the number
    /// of sentinels tokenizer_config.json next to it gives (100 without one).
    pub fn from_spiece_model(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |detail: String| tokenizer_error(path, detail);
        let proto = spiece::parse_model(&bytes).map_err(|e| {
            err(format!(
                "not a valid SentencePiece model (truncated or corrupt?): {e}"
            ))
        })?;
        let extra_ids = extra_ids(path)?;
        let tokenizer = pipeline::from_proto(&proto, extra_ids)
            .map_err(|e| err(format!("cannot be used as T5's tokenizer: {e}")))?;
        Self::new(tokenizer, path)
    }

    fn new(tokenizer: tokenizers::Tokenizer, source: &Path) -> Result<Self> {
        Ok(T5Tokenizer {
            pipeline: Pipeline::new(tokenizer, source, pipeline::PAD)?,
        })
    }
}

/// `extra_ids` of the tokenizer_config.json beside `model`, or [`DEFAULT_EXTRA_IDS`].
fn extra_ids(model: &Path) -> Result<usize> {
    let Some(dir) = model.parent() else {
        return Ok(DEFAULT_EXTRA_IDS);
    };
    let Some(config) = ConfigFile::read(dir, TOKENIZER_CONFIG)? else {
        return Ok(DEFAULT_EXTRA_IDS);
    };
    match config.json.get("extra_ids") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_EXTRA_IDS),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_EXTRA_IDS => Ok(n as usize),
            _ => Err(config.error(format!(
                "`extra_ids` is {v}; T5 expects a count of sentinel tokens (100)"
            ))),
        },
    }
}
