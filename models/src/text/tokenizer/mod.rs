//! The tokenizers of iterinv's text encoders, giving the token ids transformers gives:
//!
//! - [`T5Tokenizer`] (DeepFloyd-IF's T5: SentencePiece unigram, `</s>` appended, `<pad>`), from
//!   `spiece.model` or `tokenizer.json`: `t5/`;
//! - [`ClipTokenizer`] (the SD x4 upscaler's CLIP: byte-level BPE, `<|startoftext|>` …
//!   `<|endoftext|>`), from `vocab.json` + `merges.txt` or `tokenizer.json`: `clip.rs`.
//!
//! Both build a tokenizers-crate pipeline and wrap it in a [`Pipeline`] (this file), which
//! truncates and pads as transformers does and turns every failure into an error naming the
//! file; both deref to it, so `encode`, `vocab_size`, … are the same calls on either.
//! [`AnyTokenizer::load`] tells the two apart by the files a folder holds.

mod charsmap;
mod clip;
mod config;
mod patterns;
mod t5;
mod templates;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokenizers::{Encoding, Tokenizer, TruncationDirection};

use crate::error::{Error, Result};

pub use clip::{ClipTokenizer, MERGES_TXT, VOCAB_JSON};
pub use t5::{T5Tokenizer, DEFAULT_EXTRA_IDS, SPIECE_MODEL};

/// The prompt length of IF and of Stable Diffusion: their pipelines tokenize to exactly 77 tokens.
pub const DEFAULT_MAX_LENGTH: usize = 77;
/// The tokenizer's subfolder in a diffusers pipeline folder.
pub const TOKENIZER_SUBFOLDER: &str = "tokenizer";
pub const TOKENIZER_JSON: &str = "tokenizer.json";
/// The longest `max_length` [`Pipeline::encode`] pads to: it allocates `max_length` ids per
/// text, so a huge value (a typo, or `--max-length` of a fuzzed command line) is refused
/// rather than attempted. T5 was trained on 512 tokens; IF and CLIP use 77.
pub const MAX_TOKENS: usize = 1 << 16;

/// Token ids and attention masks of a batch of texts, one row per text, every row of the same
/// length (`max_length`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Encoded {
    pub input_ids: Vec<Vec<u32>>,
    /// 1 on the text's tokens (the special tokens added to it included), 0 on padding.
    pub attention_mask: Vec<Vec<u32>>,
    /// Per text, how many of its tokens the length limit cut off (0: it fit). Each cut is also
    /// logged as a warning naming the dropped words, as diffusers warns: the model never sees
    /// them. Not serialized: the JSON is transformers' two fields.
    #[serde(skip)]
    pub truncated: Vec<usize>,
}

/// A loaded tokenizers pipeline: what T5's and CLIP's tokenizers share once built.
#[derive(Clone)]
pub struct Pipeline {
    tokenizer: Tokenizer,
    /// The file it was loaded from, for error messages.
    source: PathBuf,
    pad_id: u32,
    /// Tokens the post-processor adds to one text (T5: `</s>`; CLIP: BOS and EOS).
    added: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl Pipeline {
    /// Wrap `tokenizer`, loaded from `source`, padding with the token `pad`.
    pub(crate) fn new(mut tokenizer: Tokenizer, source: &Path, pad: &str) -> Result<Self> {
        let err = |detail: String| tokenizer_error(source, detail);
        // `encode` truncates and pads itself, to a length given per call.
        tokenizer
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        tokenizer.with_padding(None);
        let pad_id = tokenizer
            .token_to_id(pad)
            .ok_or_else(|| err(format!("it has no {pad} token to pad with")))?;
        let added = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        Ok(Pipeline {
            tokenizer,
            source: source.to_path_buf(),
            pad_id,
            added,
        })
    }

    /// Tokenize `texts` as transformers does with `padding="max_length", truncation=True,
    /// max_length`: each text's ids with the special tokens added (T5: `</s>` after; CLIP: BOS
    /// before, EOS after), the text's own tokens cut so that all fit in `max_length` (the added
    /// ones kept), padded with the pad token (mask 0) to exactly `max_length`. Special-token
    /// strings in the text become those tokens, as in transformers.
    pub fn encode(&self, texts: &[&str], max_length: usize) -> Result<Encoded> {
        if max_length == 0 || max_length < self.added || max_length > MAX_TOKENS {
            return Err(Error::Input {
                what: "max_length".into(),
                detail: format!(
                    "is {max_length}; it must hold at least the {} token(s) the tokenizer adds \
                     and at most {MAX_TOKENS} (IF and Stable Diffusion use {DEFAULT_MAX_LENGTH})",
                    self.added.max(1)
                ),
            });
        }
        let mut out = Encoded {
            input_ids: Vec::with_capacity(texts.len()),
            attention_mask: Vec::with_capacity(texts.len()),
            truncated: Vec::with_capacity(texts.len()),
        };
        let room = max_length - self.added;
        for text in texts {
            let mut dropped = Vec::new();
            let enc = self.run(text, || {
                // What tokenizers' own truncation does: cut the text's tokens to leave room for
                // the added ones, then add them.
                let mut e = self.tokenizer.encode(*text, false)?;
                dropped = e.get_ids().get(room..).unwrap_or_default().to_vec();
                e.truncate(room, 0, TruncationDirection::Right);
                self.tokenizer.post_process(e, None, true)
            })?;
            if !dropped.is_empty() {
                let words = self.tokenizer.decode(&dropped, true).unwrap_or_default();
                log::warn!(
                    "the text is {} tokens, over the limit of {max_length}: the model will not \
                     see its last {} tokens: {words:?} (from {}; shorten the prompt)",
                    room + dropped.len() + self.added,
                    dropped.len(),
                    self.source.display()
                );
            }
            out.truncated.push(dropped.len());
            let mut ids = enc.get_ids().to_vec();
            let mut mask = enc.get_attention_mask().to_vec();
            ids.resize(max_length, self.pad_id);
            mask.resize(max_length, 0);
            out.input_ids.push(ids);
            out.attention_mask.push(mask);
        }
        Ok(out)
    }

    /// One text's ids with the special tokens added, neither truncated nor padded.
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
        let short: String = text.chars().take(40).collect();
        guard(&self.source, &format!("encoding {short:?}"), f)
    }

    /// The number of token ids, special tokens included (T5 v1.1: 32100; CLIP: 49408).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The id padding uses (T5's `<pad>`: 0; SD 2's CLIP `!`: 0; OpenAI CLIP's EOS: 49407).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The token an id stands for (`▁cat`, `cat</w>`, `</s>`), if the vocabulary has that id.
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

/// Run `f` (a tokenizers-crate call on data from `source`), turning its error, or a panic, into
/// an error naming `source`.
pub(crate) fn guard<T>(
    source: &Path,
    doing: &str,
    f: impl FnOnce() -> tokenizers::Result<T>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(tokenizer_error(source, format!("failed {doing}: {e}"))),
        Err(_) => Err(tokenizer_error(
            source,
            format!("failed while {doing} (is the tokenizer file corrupt?)"),
        )),
    }
}

pub(crate) fn tokenizer_error(path: &Path, detail: String) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        detail,
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A `tokenizer.json` as transformers saves it: its parsed JSON, and the pipeline.
pub(crate) struct TokenizerJson {
    pub json: serde_json::Value,
    pub tokenizer: Tokenizer,
}

impl TokenizerJson {
    /// The pipeline, if its `model.type` is `model` (`Unigram` for T5, `BPE` for CLIP); `what`
    /// names the tokenizer for the error.
    pub fn expect_model(self, path: &Path, model: &str, what: &str) -> Result<Tokenizer> {
        let found = self.json.pointer("/model/type").and_then(|t| t.as_str());
        if found != Some(model) {
            return Err(tokenizer_error(
                path,
                format!("its model is {found:?}; {what} tokenizer is a {model} model"),
            ));
        }
        Ok(self.tokenizer)
    }
}

/// Load a tokenizers `tokenizer.json`, checking first what the tokenizers crate would index
/// unchecked (precompiled charsmaps, Replace patterns matching nothing, templates adding unknown
/// special tokens), and catching a panic
/// of its loader on data it trusts.
pub(crate) fn load_tokenizer_json(path: &Path) -> Result<TokenizerJson> {
    let text = read_text(path)?;
    let err = |detail: String| tokenizer_error(path, detail);
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| err(format!("not valid JSON (truncated or corrupt?): {e}")))?;
    if let Some(n) = json.get("normalizer") {
        charsmap::check_json_charsmaps(n).map_err(err)?;
        patterns::check_json_replaces(n).map_err(err)?;
    }
    if let Some(p) = json.get("post_processor") {
        templates::check_json_templates(p).map_err(err)?;
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| text.parse::<Tokenizer>()));
    let tokenizer = match parsed {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(err(format!("the tokenizers crate cannot load it: {e}"))),
        Err(_) => {
            return Err(err(
                "the tokenizers crate failed loading it (corrupt?)".into()
            ))
        }
    };
    Ok(TokenizerJson { json, tokenizer })
}

/// The folder a tokenizer given as `path` lives in, and the file of `names` found first: `path`
/// itself if it is a file, else the first of `names` in `path` or in its `tokenizer/`
/// subfolder. `None` as the file when the folder holds none of them. `what` names the
/// tokenizer in the error for a missing path.
pub(crate) fn locate(
    path: &Path,
    names: &[&str],
    what: &str,
) -> Result<(PathBuf, Option<PathBuf>)> {
    if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok((dir, Some(path.to_path_buf())));
    }
    if !path.is_dir() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
            holds: format!(
                "give {what} folder ({}) or a pipeline folder with {TOKENIZER_SUBFOLDER}/",
                names.join(", ")
            ),
        });
    }
    let sub = path.join(TOKENIZER_SUBFOLDER);
    for dir in [path, sub.as_path()] {
        for name in names {
            let file = dir.join(name);
            if file.is_file() {
                return Ok((dir.to_path_buf(), Some(file)));
            }
        }
    }
    Ok((path.to_path_buf(), None))
}

/// The error for a folder holding none of `names`, naming what it does hold.
pub(crate) fn no_tokenizer(path: &Path, names: &[&str]) -> Error {
    tokenizer_error(
        path,
        format!(
            "the folder holds none of {}, nor a {TOKENIZER_SUBFOLDER}/ subfolder with one; it \
             holds: {}",
            names.join(", "),
            crate::weights::list_folder(path)
        ),
    )
}

/// A T5 or a CLIP tokenizer, told apart by the files of its folder.
#[derive(Clone, Debug)]
pub enum AnyTokenizer {
    T5(T5Tokenizer),
    Clip(ClipTokenizer),
}

/// Files that say which tokenizer a folder holds, in the order they are looked for.
const ANY_NAMES: [&str; 4] = [TOKENIZER_JSON, SPIECE_MODEL, VOCAB_JSON, MERGES_TXT];

impl AnyTokenizer {
    /// Load a tokenizer folder, a pipeline folder holding `tokenizer/`, or a tokenizer file:
    /// `spiece.model` is T5's, `vocab.json` / `merges.txt` CLIP's, and `tokenizer.json` is T5's
    /// with a Unigram model, CLIP's with a BPE one.
    pub fn load(path: &Path) -> Result<Self> {
        let (dir, file) = locate(path, &ANY_NAMES, "a T5 or CLIP tokenizer")?;
        let Some(file) = file else {
            return Err(no_tokenizer(path, &ANY_NAMES));
        };
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let clip = match name {
            SPIECE_MODEL => false,
            VOCAB_JSON | MERGES_TXT => true,
            _ if name.ends_with(".json") => json_model_type(&file)? == "BPE",
            _ => false,
        };
        Ok(if !clip {
            AnyTokenizer::T5(T5Tokenizer::load(&file)?)
        } else if name == TOKENIZER_JSON {
            AnyTokenizer::Clip(ClipTokenizer::from_tokenizer_json(&file)?)
        } else {
            AnyTokenizer::Clip(ClipTokenizer::from_vocab_merges(&dir)?)
        })
    }

    /// The shared pipeline: `encode`, `vocab_size`, `source`, ….
    pub fn pipeline(&self) -> &Pipeline {
        match self {
            AnyTokenizer::T5(t) => t,
            AnyTokenizer::Clip(c) => c,
        }
    }
}

/// `model.type` of a tokenizer.json (`Unigram`, `BPE`, …), read without building the pipeline.
fn json_model_type(path: &Path) -> Result<String> {
    let err = |detail: String| tokenizer_error(path, detail);
    let json: serde_json::Value = serde_json::from_str(&read_text(path)?)
        .map_err(|e| err(format!("not valid JSON (truncated or corrupt?): {e}")))?;
    json.pointer("/model/type")
        .and_then(|t| t.as_str())
        .map(String::from)
        .ok_or_else(|| err("it has no model.type (Unigram for T5, BPE for CLIP)".into()))
}
