//! CLIP's byte-level BPE tokenizer (the Stable Diffusion x4 upscaler's text encoder, SD 2, OpenAI
//! CLIP), giving the ids transformers' `CLIPTokenizer` gives: checked against transformers 5.24
//! on a corpus of hard prompts in models/tests/clip_tokenizer.rs, with the real 49,408-token
//! vocabulary (tests/fixtures/clip_tokenizer, make_clip_tokenizer_fixtures.py).
//!
//! A pipeline folder ships `tokenizer/vocab.json` + `merges.txt` (+ `tokenizer_config.json`,
//! `special_tokens_map.json`); transformers 5 builds this tokenizers pipeline from them, the one
//! [`ClipTokenizer::from_vocab_merges`] builds:
//!
//! - normalizer: NFC, every run of whitespace → one space, lower-case;
//! - pre-tokenizer: CLIP's regex ([`PATTERN`]: the two special tokens, the English contractions,
//!   letter runs, single digits, runs of other non-space characters; whitespace dropped), then
//!   GPT-2's byte-level mapping (each UTF-8 byte → a printable character);
//! - model: BPE with `</w>` appended to each word's last symbol, unk = EOS;
//! - special tokens (bos, eos, unk, pad) as added tokens, matched in the text before the
//!   pre-tokenizer: so `<|endoftext|>` typed in a prompt is EOS, and with SD 2's pad "!" every
//!   `!` is the token `!` (id 0), never part of a BPE word;
//! - post-processor: `<|startoftext|> $A <|endoftext|>`.
//!
//! Which token pads: `pad_token` of tokenizer_config.json, overridden by special_tokens_map.json
//! when the config has no `added_tokens_decoder` (transformers' legacy rule). SD 2's (and the x4
//! upscaler's) config says `<|endoftext|>` but its map says `!`: padding is `!`, id 0, as
//! OpenCLIP pads with 0. OpenAI CLIP's folders pad with `<|endoftext|>` (49407), the default.
//! (The fixture's copy of SD 2's two config files was written from the published files' known
//! content, not downloaded: the Hub was out of reach. Whichever they say, the precedence rule
//! above is transformers', checked by the tests on all its cases.)
//!
//! Where other CLIP tokenizers give other ids (tokens.json's `references` lists each prompt):
//! - transformers 4.57's `CLIPTokenizerFast`: identical to 5.24 on the whole corpus (in 5.24
//!   `CLIPTokenizerFast` *is* `CLIPTokenizer`; the slow Python class is gone).
//! - transformers 4.57's slow `CLIPTokenizer` with ftfy installed, and open_clip's
//!   `SimpleTokenizer` (what OpenCLIP, and so the upscaler's text tower, was trained with): both
//!   clean text with ftfy + `html.unescape` and lower-case with Python's `str.lower`, so they
//!   differ on ligatures, full-width letters and `ǅ` (ftfy applies NFKC: `ﬁ` → `fi`), HTML
//!   entities (`&amp;` → `&`), curly quotes (→ straight), C0 control characters (removed), U+0085
//!   (ftfy reads it as Windows-1252: `…`) and Greek final sigma (`ς`, where the tokenizers crate
//!   lower-cases `Σ` to `σ` always).
//! - The slow class without ftfy falls back to BERT's BasicTokenizer, which splits CJK
//!   ideographs apart and drops control and format characters (the ZWJ of emoji sequences,
//!   U+200B, U+00AD, U+0085, vertical tab, form feed), so it differs there, and on final sigma.
//! - open_clip alone: it knows no `<|startoftext|>` / `<|endoftext|>` strings (its specials are
//!   `<start_of_text>`, `<end_of_text>`), so typed special tokens are tokenized as text there; and
//!   it has no pad token among its specials, so `!` is BPE-merged like any punctuation (`!!` is
//!   one token, 748), where transformers with SD 2's pad "!" gives `!` `!` (0, 0).
//!
//! transformers also builds a tokenizer from a folder without merges.txt (it derives merges from
//! the vocabulary); here a missing merges.txt is an error: a CLIP folder always ships one.

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::path::Path;

use tokenizers::models::bpe::{BpeBuilder, Merges, Vocab};
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as Normalizers, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizers;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::config::{ConfigFile, SpecialToken, SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG};
use super::{
    guard, load_tokenizer_json, locate, no_tokenizer, read_text, tokenizer_error, Pipeline,
    TOKENIZER_JSON,
};
use crate::error::{Error, Result};

pub const VOCAB_JSON: &str = "vocab.json";
pub const MERGES_TXT: &str = "merges.txt";
/// transformers' CLIPTokenizer defaults, kept unless the folder's config names others.
const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
/// CLIP's pre-tokenizer regex (OpenAI's `SimpleTokenizer`, with transformers' special tokens): the
/// matches are the words; what lies between them (whitespace) is dropped.
pub const PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// The files a CLIP tokenizer folder is found by, tokenizer.json preferred (as transformers 5).
const NAMES: [&str; 3] = [TOKENIZER_JSON, VOCAB_JSON, MERGES_TXT];

/// CLIP's tokenizer: byte-level BPE, BOS and EOS added, padded with the folder's pad token.
/// Derefs to the [`Pipeline`] that encodes.
#[derive(Clone, Debug)]
pub struct ClipTokenizer {
    pipeline: Pipeline,
    model_max_length: Option<usize>,
}

impl Deref for ClipTokenizer {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// The special tokens and length a folder's config files give.
struct Specials {
    bos: SpecialToken,
    eos: SpecialToken,
    unk: SpecialToken,
    pad: SpecialToken,
    model_max_length: Option<usize>,
}

impl ClipTokenizer {
    /// Load from a tokenizer folder (`tokenizer.json`, preferred, or `vocab.json` +
    /// `merges.txt`), a pipeline folder holding `tokenizer/`, or one of those files.
    pub fn load(path: &Path) -> Result<Self> {
        let (dir, file) = locate(path, &NAMES, "CLIP's tokenizer")?;
        let file = file.ok_or_else(|| no_tokenizer(path, &NAMES))?;
        if file.file_name().is_some_and(|n| n == TOKENIZER_JSON) {
            Self::from_tokenizer_json(&file)
        } else {
            Self::from_vocab_merges(&dir)
        }
    }

    /// Load a tokenizers `tokenizer.json` (as transformers saves it); the pad token comes from
    /// the config files beside it.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let tokenizer = load_tokenizer_json(path)?.expect_model(path, "BPE", "CLIP's")?;
        let specials = specials(path.parent().unwrap_or(Path::new(".")))?;
        Ok(ClipTokenizer {
            pipeline: Pipeline::new(tokenizer, path, &specials.pad.content)?,
            model_max_length: specials.model_max_length,
        })
    }

    /// Build the tokenizer of a folder holding `vocab.json` and `merges.txt` (and optionally
    /// `tokenizer_config.json`, `special_tokens_map.json`) as transformers 5 does.
    pub fn from_vocab_merges(dir: &Path) -> Result<Self> {
        let vocab_path = dir.join(VOCAB_JSON);
        let merges_path = dir.join(MERGES_TXT);
        for (file, other) in [(&vocab_path, MERGES_TXT), (&merges_path, VOCAB_JSON)] {
            if !file.is_file() {
                return Err(Error::NotFound {
                    path: file.clone(),
                    holds: format!(
                        "CLIP's BPE tokenizer needs both {VOCAB_JSON} and {MERGES_TXT}; the \
                         folder has {other} but not this file"
                    ),
                });
            }
        }
        let vocab = read_vocab(&vocab_path)?;
        let merges = read_merges(&merges_path, &vocab)?;
        let specials = specials(dir)?;
        let tokenizer = guard(&vocab_path, "building CLIP's BPE tokenizer", || {
            build(vocab, merges, &specials)
        })?;
        Ok(ClipTokenizer {
            pipeline: Pipeline::new(tokenizer, &vocab_path, &specials.pad.content)?,
            model_max_length: specials.model_max_length,
        })
    }

    /// `model_max_length` of tokenizer_config.json (77 for CLIP), if it gives a usable one.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }
}

/// vocab.json: token → id, the ids distinct.
fn read_vocab(path: &Path) -> Result<Vocab> {
    let err = |detail: String| tokenizer_error(path, detail);
    let vocab: HashMap<String, u32> = serde_json::from_str(&read_text(path)?).map_err(|e| {
        err(format!(
            "not a JSON object of token → id (truncated or corrupt?): {e}"
        ))
    })?;
    let mut ids = HashSet::with_capacity(vocab.len());
    for (token, &id) in &vocab {
        if !ids.insert(id) {
            return Err(err(format!("id {id} is given twice (`{token}` is one)")));
        }
    }
    Ok(vocab.into_iter().collect())
}

/// merges.txt: `#version` lines skipped, every other line two symbols separated by one space,
/// as the tokenizers crate reads it. Each merge's symbols and their concatenation must be in
/// the vocabulary (the tokenizers crate refuses, or for an overlong concatenation panics,
/// otherwise).
fn read_merges(path: &Path, vocab: &Vocab) -> Result<Merges> {
    let text = read_text(path)?;
    let err = |line: usize, detail: String| tokenizer_error(path, format!("line {line}: {detail}"));
    let mut merges = Merges::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#version") {
            continue;
        }
        let Some((a, b)) = line.split_once(' ').filter(|(_, b)| !b.contains(' ')) else {
            return Err(err(
                i + 1,
                format!("{line:?} is not two symbols separated by a space"),
            ));
        };
        for part in [a, b, &format!("{a}{b}")] {
            if !vocab.contains_key(part) {
                return Err(err(
                    i + 1,
                    format!("the merge {a:?} + {b:?} needs `{part}`, which {VOCAB_JSON} lacks"),
                ));
            }
        }
        merges.push((a.to_string(), b.to_string()));
    }
    Ok(merges)
}

/// The special tokens of the config files in `dir`, with transformers' precedence.
fn specials(dir: &Path) -> Result<Specials> {
    let mut s = Specials {
        bos: SpecialToken::plain(BOS),
        eos: SpecialToken::plain(EOS),
        unk: SpecialToken::plain(EOS),
        pad: SpecialToken::plain(EOS),
        model_max_length: None,
    };
    let config = ConfigFile::read(dir, TOKENIZER_CONFIG)?;
    let map = ConfigFile::read(dir, SPECIAL_TOKENS_MAP)?;
    let legacy = config
        .as_ref()
        .is_none_or(|c| !c.json.contains_key("added_tokens_decoder"));
    // transformers reads the map only for a legacy config, and lets it win there.
    let files = config.iter().chain(map.iter().filter(|_| legacy));
    for file in files {
        for (key, slot) in [
            ("bos_token", &mut s.bos),
            ("eos_token", &mut s.eos),
            ("unk_token", &mut s.unk),
            ("pad_token", &mut s.pad),
        ] {
            if let Some(t) = file.special_token(key)? {
                *slot = t;
            }
        }
    }
    if let Some(c) = &config {
        s.model_max_length = c.model_max_length()?;
        if let Some(decoder) = c.json.get("added_tokens_decoder") {
            apply_added_tokens_decoder(c, decoder, &mut s)?;
        }
    }
    Ok(s)
}

/// A modern config's `added_tokens_decoder` (id → AddedToken) says how each special token is
/// matched: transformers takes the entry of the same content.
fn apply_added_tokens_decoder(
    config: &ConfigFile,
    decoder: &serde_json::Value,
    s: &mut Specials,
) -> Result<()> {
    let entries = decoder.as_object().ok_or_else(|| {
        config.error("`added_tokens_decoder` is not an object of id → token".into())
    })?;
    for entry in entries.values() {
        let content = entry.get("content").and_then(|c| c.as_str());
        let normalized = entry.get("normalized").and_then(|n| n.as_bool());
        let (Some(content), Some(normalized)) = (content, normalized) else {
            continue;
        };
        for t in [&mut s.bos, &mut s.eos, &mut s.unk, &mut s.pad] {
            if t.content == content {
                t.normalized = normalized;
            }
        }
    }
    Ok(())
}

/// The tokenizers pipeline transformers' CLIPTokenizer builds (see the module docs).
fn build(vocab: Vocab, merges: Merges, s: &Specials) -> tokenizers::Result<Tokenizer> {
    let bpe = BpeBuilder::new()
        .vocab_and_merges(vocab, merges)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix("</w>".into())
        .fuse_unk(false)
        .unk_token(s.unk.content.clone())
        .build()?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_normalizer(Some(Normalizers::new(vec![
        NFC.into(),
        Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")?.into(),
        Lowercase.into(),
    ])))?;
    tok.with_pre_tokenizer(Some(PreTokenizers::new(vec![
        Split::new(
            SplitPattern::Regex(PATTERN.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )?
        .into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tok.with_decoder(Some(ByteLevel::default()));
    let added: Vec<AddedToken> = [&s.bos, &s.eos, &s.unk, &s.pad]
        .into_iter()
        .map(|t| AddedToken::from(t.content.clone(), true).normalized(t.normalized))
        .collect();
    tok.add_special_tokens(added)?;
    let id = |t: &SpecialToken| {
        tok.token_to_id(&t.content)
            .ok_or_else(|| format!("the special token {} has no id", t.content))
    };
    let post = RobertaProcessing::new(
        (s.eos.content.clone(), id(&s.eos)?),
        (s.bos.content.clone(), id(&s.bos)?),
    )
    .trim_offsets(false)
    .add_prefix_space(false);
    tok.with_post_processor(Some(post));
    Ok(tok)
}
