//! Checks of a SentencePiece precompiled charsmap (the normalizer of T5's tokenizer, in
//! spiece.model or in any tokenizer.json) before the tokenizers crate uses it: its trie lookup
//! indexes the file's data unchecked, so a corrupt map would panic mid-encode.

use std::collections::HashSet;

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
                // The tokenizers crate panics (`expect`) on a Precompiled normalizer it cannot
                // read, rather than returning an error: everything it reads is checked here.
                let b64 = o
                    .get("precompiled_charsmap")
                    .and_then(|m| m.as_str())
                    .ok_or("its Precompiled normalizer has no precompiled_charsmap string")?;
                let map = base64_decode(b64)?;
                check_charsmap(&map)
                    .map_err(|e| format!("its Precompiled normalizer's charsmap: {e}"))?;
            }
            o.values().try_for_each(check_json_charsmaps)
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(check_json_charsmaps),
        _ => Ok(()),
    }
}

/// Standard base64 (the alphabet tokenizers writes charsmaps in); trailing `=` optional, but
/// only where padding belongs, and no bits set past the data (the base64 crate the tokenizers
/// crate decodes with refuses both, and the tokenizers crate then panics).
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let data = s.trim_end_matches('=');
    let padding = s.len() - data.len();
    if padding > 2 || (padding > 0 && !s.len().is_multiple_of(4)) || data.len() % 4 == 1 {
        return Err(format!(
            "precompiled_charsmap is not base64 (its length {} or its padding)",
            s.len()
        ));
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in data.bytes().enumerate() {
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
    if acc != 0 {
        return Err("precompiled_charsmap is not base64 (bits set past its data)".into());
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
        // Padding where none belongs, too much of it, bits past the data.
        assert!(base64_decode("aGVsbG8==").is_err());
        assert!(base64_decode("A").is_err());
        assert!(base64_decode("AAE=").is_ok());
        assert!(base64_decode("AAF=").is_err());
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
