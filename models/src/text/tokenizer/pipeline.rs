//! T5's tokenizers pipeline, built from a parsed `spiece.model` the way transformers 5 builds it
//! (`T5Tokenizer.__init__` after `SentencePieceExtractor` and `T5Converter.convert_from_spm`):
//!
//! - model: Unigram over the SentencePiece pieces and their scores, followed by the
//!   `<extra_id_N>` sentinels in reverse (`<extra_id_0>` gets the last id), unk = the proto's
//!   unk_id, no byte fallback;
//! - normalizer: the proto's precompiled charsmap alone (T5's converter does not add the
//!   NormalizerSpec's whitespace rules: the pre-tokenizer handles whitespace);
//! - pre-tokenizer: WhitespaceSplit, then Metaspace (`▁`, prepended to every word, split);
//! - added tokens, matched on the raw text before normalization: CONTROL pieces (special),
//!   USER_DEFINED pieces (not special), `<pad>`, `</s>`, `<unk>` and the sentinels (special);
//! - post-processor: `$A </s>`.
//!
//! Also checks a precompiled charsmap before the tokenizers crate uses it: its trie lookup
//! indexes the file's data unchecked, so a corrupt map would panic mid-encode.

use std::collections::HashSet;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::spiece::{model_type_name, ModelProto, PieceType, UNIGRAM};

/// The special tokens transformers' T5Tokenizer always has (its constructor's defaults).
pub(crate) const PAD: &str = "<pad>";
pub(crate) const EOS: &str = "</s>";
pub(crate) const UNK: &str = "<unk>";

/// The name of sentinel `i`.
pub(crate) fn extra_id(i: usize) -> String {
    format!("<extra_id_{i}>")
}

/// Build the tokenizer of a parsed SentencePiece model with `extra_ids` sentinels.
pub(crate) fn from_proto(model: &ModelProto, extra_ids: usize) -> Result<Tokenizer, String> {
    let (Some(trainer), Some(normalizer)) = (&model.trainer_spec, &model.normalizer_spec) else {
        return Err("it has no trainer_spec or no normalizer_spec (the file is cut short?)".into());
    };
    if trainer.model_type != UNIGRAM {
        return Err(format!(
            "it is a {} model; T5's tokenizer is a UNIGRAM SentencePiece model",
            model_type_name(trainer.model_type)
        ));
    }
    if model.pieces.is_empty() {
        return Err("it holds no pieces".into());
    }
    // SentencePiece refuses to load these too; the Unigram lattice assumes neither.
    let mut seen = HashSet::with_capacity(model.pieces.len());
    for (i, p) in model.pieces.iter().enumerate() {
        if p.piece.is_empty() {
            return Err(format!("piece {i} is empty"));
        }
        if !seen.insert(p.piece.as_str()) {
            return Err(format!("piece {i} `{}` is defined twice", p.piece));
        }
        if p.score.is_nan() {
            return Err(format!("piece {i} `{}` has a NaN score", p.piece));
        }
    }
    let unk_id = usize::try_from(trainer.unk_id)
        .ok()
        .filter(|&u| u < model.pieces.len())
        .ok_or_else(|| {
            format!(
                "its unk_id {} is not one of its {} pieces (a T5 model has <unk> at 2)",
                trainer.unk_id,
                model.pieces.len()
            )
        })?;
    if trainer.byte_fallback {
        // transformers' T5Tokenizer builds its Unigram without byte fallback whatever the file
        // says; doing the same keeps the ids identical to transformers'.
        log::warn!("the SentencePiece model asks for byte fallback; T5's tokenizer ignores it");
    }

    let mut vocab: Vec<(String, f64)> = model
        .pieces
        .iter()
        .map(|p| (p.piece.clone(), f64::from(p.score)))
        .collect();
    vocab.extend((0..extra_ids).rev().map(|i| (extra_id(i), 0.0)));
    let unigram = Unigram::from(vocab, Some(unk_id), false).map_err(|e| e.to_string())?;
    let mut tok = Tokenizer::new(unigram);

    if !normalizer.precompiled_charsmap.is_empty() {
        check_charsmap(&normalizer.precompiled_charsmap)
            .map_err(|e| format!("its precompiled_charsmap is corrupt: {e}"))?;
        let pre = Precompiled::from(&normalizer.precompiled_charsmap)
            .map_err(|e| format!("its precompiled_charsmap is corrupt: {e}"))?;
        tok.with_normalizer(Some(pre)).map_err(|e| e.to_string())?;
    }
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', PrependScheme::Always, true).into(),
    ])));
    tok.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));

    // SentencePiece's own added pieces, in id order, as SentencePieceExtractor lists them.
    let spm_added = model.pieces.iter().filter_map(|p| match p.kind {
        PieceType::Control => Some(AddedToken::from(p.piece.clone(), true)),
        PieceType::UserDefined => Some(AddedToken::from(p.piece.clone(), false)),
        _ => None,
    });
    let special = [PAD, EOS, UNK]
        .into_iter()
        .map(String::from)
        .chain((0..extra_ids).map(extra_id))
        .map(|t| AddedToken::from(t, true));
    // Not normalized: matched in the raw text, as transformers saves them.
    let added: Vec<AddedToken> = spm_added
        .chain(special)
        .map(|t| t.normalized(false))
        .collect();
    tok.add_tokens(added).map_err(|e| e.to_string())?;

    let eos = tok
        .token_to_id(EOS)
        .ok_or_else(|| format!("{EOS} has no id"))?;
    let post = TemplateProcessing::builder()
        .try_single(format!("$A {EOS}"))
        .and_then(|b| b.try_pair(format!("$A {EOS} $B {EOS}")))
        .map_err(|e| e.to_string())?
        .special_tokens(vec![(EOS, eos)])
        .build()
        .map_err(|e| e.to_string())?;
    tok.with_post_processor(Some(post));
    Ok(tok)
}

/// Check a SentencePiece precompiled charsmap against every way spm_precompiled (the tokenizers
/// crate's reader) can index it: `[u32 trie size in bytes][trie: u32 units][normalized strings]`,
/// a darts-clone double array whose leaves are byte offsets into the strings. Walks every node
/// reachable from the root with every non-zero byte, as a lookup of any text would.
pub(crate) fn check_charsmap(map: &[u8]) -> Result<(), String> {
    let Some(head) = map.get(..4) else {
        return Err(format!(
            "{} bytes, shorter than its 4-byte header",
            map.len()
        ));
    };
    let trie_bytes = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let n = trie_bytes / 4;
    let Some(trie) = map.get(4..4 + 4 * n) else {
        return Err(format!(
            "its trie of {trie_bytes} bytes runs past the end of the map ({} bytes)",
            map.len()
        ));
    };
    let units: Vec<usize> = trie
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let normalized = std::str::from_utf8(&map[4 + 4 * n..])
        .map_err(|_| "its replacement strings are not valid UTF-8".to_string())?;
    // The unit layout of spm_precompiled's `ArrayUnitTrait`.
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let value = |u: usize| u & ((1usize << 31) - 1);
    let label = |u: usize| u & ((1usize << 31) | 0xff);
    let offset = |u: usize| (u >> 10) << ((u & (1usize << 9)) >> 6);

    let Some(&root) = units.first() else {
        return Err("its trie is empty".into());
    };
    let out_of_range = |at: usize| format!("its trie points at unit {at} of {}", units.len());
    let start = offset(root);
    let mut seen = HashSet::from([start]);
    let mut stack = vec![start];
    while let Some(node) = stack.pop() {
        for c in 1..=255usize {
            let pos = node ^ c;
            let unit = *units.get(pos).ok_or_else(|| out_of_range(pos))?;
            if label(unit) != c {
                continue;
            }
            let next = pos ^ offset(unit);
            if has_leaf(unit) {
                let leaf = *units.get(next).ok_or_else(|| out_of_range(next))?;
                let at = value(leaf);
                if at > normalized.len() || !normalized.is_char_boundary(at) {
                    return Err(format!(
                        "a replacement starts at byte {at}, not at a character of its {}-byte \
                         strings",
                        normalized.len()
                    ));
                }
            }
            if seen.insert(next) {
                stack.push(next);
            }
        }
    }
    Ok(())
}

/// Check every precompiled charsmap in a tokenizer.json's `normalizer` (alone or inside a
/// Sequence), as [`check_charsmap`] does for spiece.model.
pub(crate) fn check_json_charsmaps(normalizer: &serde_json::Value) -> Result<(), String> {
    match normalizer {
        serde_json::Value::Object(o) => {
            if o.get("type").and_then(|t| t.as_str()) == Some("Precompiled") {
                if let Some(b64) = o.get("precompiled_charsmap").and_then(|m| m.as_str()) {
                    let map = base64_decode(b64)?;
                    check_charsmap(&map)
                        .map_err(|e| format!("its Precompiled normalizer's charsmap: {e}"))?;
                }
            }
            o.values().try_for_each(check_json_charsmaps)
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(check_json_charsmaps),
        _ => Ok(()),
    }
}

/// Standard base64 (the alphabet tokenizers writes charsmaps in); trailing `=` optional.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in s.trim_end_matches('=').bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => {
                return Err(format!(
                    "precompiled_charsmap is not base64 (character {i})"
                ))
            }
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("AAEC").unwrap(), [0, 1, 2]);
        assert!(base64_decode("a b").is_err());
    }

    #[test]
    fn corrupt_charsmaps_are_rejected() {
        assert!(check_charsmap(&[1, 0]).is_err());
        // Trie size 8 bytes, but only 4 follow.
        assert!(check_charsmap(&[8, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Empty trie.
        assert!(check_charsmap(&[0, 0, 0, 0]).is_err());
        // A root whose offset points far outside the 2-unit trie.
        assert!(check_charsmap(&[8, 0, 0, 0, 0, 0xfc, 0xff, 0x7f, 0, 0, 0, 0]).is_err());
    }
}
