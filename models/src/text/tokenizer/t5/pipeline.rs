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

use std::collections::HashSet;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::spiece::{model_type_name, ModelProto, PieceType, UNIGRAM};
use crate::text::tokenizer::charsmap::check_charsmap;

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
