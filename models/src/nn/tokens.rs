//! The checks every text encoder makes of a batch of token ids before uploading them.

use crate::error::{Error, Result};

/// `(B, L)` of token ids `[B][L]` with an optional attention mask `[B][L]`: a non-empty batch,
/// every row (and mask row) of the same length, every id inside a vocabulary of `vocab_size`.
pub fn check_token_batch(
    ids: &[Vec<u32>],
    mask: Option<&[Vec<u32>]>,
    vocab_size: usize,
) -> Result<(usize, usize)> {
    let bad = |what: &str, detail: String| {
        Err(Error::Input {
            what: what.into(),
            detail,
        })
    };
    let (b, l) = (ids.len(), ids.first().map_or(0, Vec::len));
    if b == 0 || l == 0 {
        return bad(
            "input_ids",
            format!("must be a non-empty [B, L] batch, got {b} rows of {l}"),
        );
    }
    if let Some(m) = mask {
        if m.len() != b {
            return bad(
                "attention_mask",
                format!("has {} rows for {b} rows of input_ids", m.len()),
            );
        }
    }
    for (i, row) in ids.iter().enumerate() {
        let mask_len = mask.map_or(l, |m| m[i].len());
        if row.len() != l || mask_len != l {
            return bad(
                "input_ids",
                format!(
                    "row {i} has {} ids and {mask_len} mask values; every row needs {l}",
                    row.len()
                ),
            );
        }
        if let Some(&t) = row.iter().find(|&&t| t as usize >= vocab_size) {
            return bad(
                "input_ids",
                format!("row {i} holds id {t}, outside the vocabulary of {vocab_size}"),
            );
        }
    }
    Ok((b, l))
}
