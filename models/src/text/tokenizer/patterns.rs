//! Checks of a tokenizer.json's `Replace` normalizers before the tokenizers crate uses them: a
//! pattern that matches the empty string (`""`, `\s*`, `^`) makes its offset bookkeeping index
//! past the end of its alignments, a panic mid-encode (seen with fuzzed files). CLIP's own
//! `Replace` (`\s+` → " ") and T5's have none such.

use fancy_regex::Regex;
use serde_json::Value;

/// Texts on which an empty match would show: empty, letters, spaces, digits, punctuation.
const PROBES: [&str; 4] = ["", "a", " a  b\t", "x1!é"];

/// Check every `Replace` normalizer in `normalizer` (alone or nested in a Sequence).
pub(crate) fn check_json_replaces(normalizer: &Value) -> Result<(), String> {
    match normalizer {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("Replace") {
                check_replace(o.get("pattern"))?;
            }
            o.values().try_for_each(check_json_replaces)
        }
        Value::Array(a) => a.iter().try_for_each(check_json_replaces),
        _ => Ok(()),
    }
}

fn check_replace(pattern: Option<&Value>) -> Result<(), String> {
    let empty =
        || "its Replace normalizer's pattern can match nothing (an empty match)".to_string();
    match pattern {
        Some(Value::Object(p)) => {
            if let Some(s) = p.get("String").and_then(Value::as_str) {
                if s.is_empty() {
                    return Err(empty());
                }
            }
            if let Some(r) = p.get("Regex").and_then(Value::as_str) {
                // A pattern that does not compile is the tokenizers crate's error to report.
                if let Ok(re) = Regex::new(r) {
                    let matches_empty = PROBES.iter().any(|t| {
                        re.find_iter(t)
                            .any(|m| m.is_ok_and(|m| m.start() == m.end()))
                    });
                    if matches_empty {
                        return Err(empty());
                    }
                }
            }
            Ok(())
        }
        // Any other shape is the tokenizers crate's error to report.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_matching_patterns_are_refused() {
        let replace = |p: Value| {
            json!({"type": "Sequence", "normalizers": [
            {"type": "NFC"}, {"type": "Replace", "pattern": p, "content": " "}]})
        };
        assert!(check_json_replaces(&replace(json!({"Regex": "\\s+"}))).is_ok());
        assert!(check_json_replaces(&replace(json!({"String": "  "}))).is_ok());
        for bad in [
            json!({"Regex": ""}),
            json!({"Regex": "\\s*"}),
            json!({"String": ""}),
        ] {
            assert!(check_json_replaces(&replace(bad.clone())).is_err(), "{bad}");
        }
    }
}
