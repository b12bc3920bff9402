//! T5's SentencePiece tokenizer, giving the token ids transformers' `T5Tokenizer` gives (checked
//! against transformers 5.24 in models/tests/tokenizer.rs).
//!
//! DeepFloyd-IF ships its tokenizer as `tokenizer/spiece.model` alone; transformers converts it
//! to a tokenizers pipeline on load. [`T5Tokenizer::load`] does the same conversion in Rust
//! (`spiece` reads the protobuf, `pipeline` builds the tokenizers objects), or loads a
//! `tokenizer.json` directly when the folder has one.

mod pipeline;
mod spiece;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokenizers::{Encoding, Tokenizer, TruncationDirection};

use crate::error::{Error, Result};

/// DeepFloyd-IF's prompt length: the pipeline tokenizes to exactly 77 tokens.
pub const DEFAULT_MAX_LENGTH: usize = 77;
/// The sentinels `<extra_id_0..N>` T5 adds to its SentencePiece vocabulary, unless
/// tokenizer_config.json says otherwise (`extra_ids`).
pub const DEFAULT_EXTRA_IDS: usize = 100;
/// The tokenizer's subfolder in a diffusers pipeline folder.
pub const TOKENIZER_SUBFOLDER: &str = "tokenizer";
pub const TOKENIZER_JSON: &str = "tokenizer.json";
pub const SPIECE_MODEL: &str = "spiece.model";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// The longest `max_length` [`T5Tokenizer::encode`] pads to: it allocates `max_length` ids per
/// text, so a huge value (a typo, or `--max-length` of a fuzzed command line) is refused
/// rather than attempted. T5 was trained on 512 tokens; IF uses 77.
pub const MAX_TOKENS: usize = 1 << 16;
/// More sentinels than this in tokenizer_config.json is a corrupt file, not a T5 model.
const MAX_EXTRA_IDS: u64 = 100_000;

/// Token ids and attention masks of a batch of texts, one row per text, every row of the same
/// length (`max_length`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Encoded {
    pub input_ids: Vec<Vec<u32>>,
    /// 1 on the text's tokens (its `</s>` included), 0 on padding.
    pub attention_mask: Vec<Vec<u32>>,
}

/// T5's tokenizer: SentencePiece unigram, `</s>` appended, padded with `<pad>`.
#[derive(Clone)]
pub struct T5Tokenizer {
    tokenizer: Tokenizer,
    /// The file it was loaded from, for error messages.
    source: PathBuf,
    pad_id: u32,
    /// Tokens the post-processor adds to one text (1: `</s>`).
    added: usize,
}

impl std::fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl T5Tokenizer {
    /// Load from a tokenizer folder (`tokenizer.json`, preferred, or `spiece.model`), a pipeline
    /// folder holding `tokenizer/`, or one of those two files.
    pub fn load(path: &Path) -> Result<Self> {
        let file = locate(path)?;
        if file.extension().is_some_and(|e| e == "json") {
            Self::from_tokenizer_json(&file)
        } else {
            Self::from_spiece_model(&file)
        }
    }

    /// Load a tokenizers `tokenizer.json` (as transformers saves it).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |detail: String| Error::Tokenizer {
            path: path.to_path_buf(),
            detail,
        };
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| err(format!("not valid JSON (truncated or corrupt?): {e}")))?;
        if let Some(n) = json.get("normalizer") {
            pipeline::check_json_charsmaps(n).map_err(err)?;
        }
        let tokenizer: Tokenizer = text
            .parse()
            .map_err(|e| err(format!("the tokenizers crate cannot load it: {e}")))?;
        Self::new(tokenizer, path)
    }

    /// Convert a SentencePiece `spiece.model` as transformers' T5Tokenizer does, with the number
    /// of sentinels tokenizer_config.json next to it gives (100 without one).
    pub fn from_spiece_model(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |detail: String| Error::Tokenizer {
            path: path.to_path_buf(),
            detail,
        };
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

    fn new(mut tokenizer: Tokenizer, source: &Path) -> Result<Self> {
        let err = |detail: String| Error::Tokenizer {
            path: source.to_path_buf(),
            detail,
        };
        // `encode` truncates and pads itself, to a length given per call.
        tokenizer
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        tokenizer.with_padding(None);
        let pad_id = tokenizer
            .token_to_id(pipeline::PAD)
            .ok_or_else(|| err(format!("it has no {} token to pad with", pipeline::PAD)))?;
        let added = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        Ok(T5Tokenizer {
            tokenizer,
            source: source.to_path_buf(),
            pad_id,
            added,
        })
    }

    /// Tokenize `texts` as transformers does with `padding="max_length", truncation=True,
    /// max_length`: each text's ids with `</s>` appended, cut to `max_length` (the `</s>` kept
    /// last), padded with `<pad>` (mask 0) to exactly `max_length`. Special-token strings in
    /// the text (`</s>`, `<pad>`, `<extra_id_0>`) become those tokens, as in transformers.
    pub fn encode(&self, texts: &[&str], max_length: usize) -> Result<Encoded> {
        if max_length == 0 || max_length < self.added || max_length > MAX_TOKENS {
            return Err(Error::Input {
                what: "max_length".into(),
                detail: format!(
                    "is {max_length}; it must hold at least the {} token(s) the tokenizer adds \
                     and at most {MAX_TOKENS} (IF uses {DEFAULT_MAX_LENGTH})",
                    self.added.max(1)
                ),
            });
        }
        let mut out = Encoded {
            input_ids: Vec::with_capacity(texts.len()),
            attention_mask: Vec::with_capacity(texts.len()),
        };
        for text in texts {
            let enc = self.run(text, || {
                // What tokenizers' own truncation does: cut the text's tokens to leave room for
                // the added ones, then add them.
                let mut e = self.tokenizer.encode(*text, false)?;
                e.truncate(max_length - self.added, 0, TruncationDirection::Right);
                self.tokenizer.post_process(e, None, true)
            })?;
            let mut ids = enc.get_ids().to_vec();
            let mut mask = enc.get_attention_mask().to_vec();
            ids.resize(max_length, self.pad_id);
            mask.resize(max_length, 0);
            out.input_ids.push(ids);
            out.attention_mask.push(mask);
        }
        Ok(out)
    }

    /// One text's ids with `</s>` appended, neither truncated nor padded.
    pub fn encode_unpadded(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.run(text, || self.tokenizer.encode(text, true))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encode with the tokenizers crate, turning its errors, and a panic on data it indexes
    /// unchecked (a corrupt file this loader's checks missed), into an error naming the file.
    fn run(
        &self,
        text: &str,
        f: impl FnOnce() -> tokenizers::Result<Encoding>,
    ) -> Result<Encoding> {
        let err = |detail: String| Error::Tokenizer {
            path: self.source.clone(),
            detail,
        };
        let short: String = text.chars().take(40).collect();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(enc)) => Ok(enc),
            Ok(Err(e)) => Err(err(format!("cannot encode {short:?}: {e}"))),
            Err(_) => Err(err(format!(
                "failed while encoding {short:?} (is the tokenizer file corrupt?)"
            ))),
        }
    }

    /// The number of token ids, sentinels and special tokens included (T5 v1.1: 32100).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The id padding uses (`<pad>`, 0 for T5).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The token an id stands for (`▁cat`, `</s>`), if the vocabulary has that id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The file the tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The underlying tokenizers pipeline.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// The tokenizer file `path` names: the file itself, or `tokenizer.json` / `spiece.model` in the
/// folder or in its `tokenizer/` subfolder.
fn locate(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
            holds: format!(
                "give T5's tokenizer folder ({TOKENIZER_JSON} or {SPIECE_MODEL}) or a pipeline \
                 folder with {TOKENIZER_SUBFOLDER}/"
            ),
        });
    }
    for dir in [path.to_path_buf(), path.join(TOKENIZER_SUBFOLDER)] {
        for name in [TOKENIZER_JSON, SPIECE_MODEL] {
            let file = dir.join(name);
            if file.is_file() {
                return Ok(file);
            }
        }
    }
    Err(Error::Tokenizer {
        path: path.to_path_buf(),
        detail: format!(
            "the folder holds neither {TOKENIZER_JSON} nor {SPIECE_MODEL}, nor a \
             {TOKENIZER_SUBFOLDER}/ subfolder with one; it holds: {}",
            crate::weights::list_folder(path)
        ),
    })
}

/// `extra_ids` of the tokenizer_config.json beside `model`, or [`DEFAULT_EXTRA_IDS`].
fn extra_ids(model: &Path) -> Result<usize> {
    let Some(config) = model.parent().map(|d| d.join(TOKENIZER_CONFIG)) else {
        return Ok(DEFAULT_EXTRA_IDS);
    };
    if !config.is_file() {
        return Ok(DEFAULT_EXTRA_IDS);
    }
    let err = |detail: String| Error::ConfigParse {
        path: config.clone(),
        detail,
    };
    let text = std::fs::read_to_string(&config).map_err(|source| Error::Io {
        path: config.clone(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    match json.get("extra_ids") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_EXTRA_IDS),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_EXTRA_IDS => Ok(n as usize),
            _ => Err(err(format!(
                "`extra_ids` is {v}; T5 expects a count of sentinel tokens (100)"
            ))),
        },
    }
}
