//! transformers' configuration files beside a tokenizer: `tokenizer_config.json` and the legacy
//! `special_tokens_map.json`. Both are optional; a file that is there must parse, and its errors
//! name it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{read_text, MAX_TOKENS};
use crate::error::{Error, Result};

pub(crate) const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
pub(crate) const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";

/// One JSON object file, with its path for errors.
pub(crate) struct ConfigFile {
    pub path: PathBuf,
    pub json: Map<String, Value>,
}

impl ConfigFile {
    /// `dir/name` parsed, or `None` when there is no such file.
    pub fn read(dir: &Path, name: &str) -> Result<Option<Self>> {
        let path = dir.join(name);
        if !path.is_file() {
            return Ok(None);
        }
        let text = read_text(&path)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.clone(),
            detail: format!("not valid JSON: {e}"),
        })?;
        match value {
            Value::Object(json) => Ok(Some(ConfigFile { path, json })),
            other => Err(Error::ConfigParse {
                path,
                detail: format!("holds {}, not a JSON object", kind(&other)),
            }),
        }
    }

    pub fn error(&self, detail: String) -> Error {
        Error::ConfigParse {
            path: self.path.clone(),
            detail,
        }
    }

    /// `key` as a special token: a string, or an object with `content` (and `normalized`), as
    /// transformers writes an `AddedToken`. `None` when the key is absent or null.
    pub fn special_token(&self, key: &str) -> Result<Option<SpecialToken>> {
        let token = self.special_token_entry(key)?;
        // An empty token matches nothing: the tokenizers crate drops it and it gets no id.
        if token.as_ref().is_some_and(|t| t.content.is_empty()) {
            return Err(self.error(format!("`{key}` is an empty token")));
        }
        Ok(token)
    }

    fn special_token_entry(&self, key: &str) -> Result<Option<SpecialToken>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(SpecialToken::plain(s))),
            Some(Value::Object(o)) => {
                let content = o.get("content").and_then(Value::as_str).ok_or_else(|| {
                    self.error(format!("`{key}` is an object without a string `content`"))
                })?;
                let normalized = match o.get("normalized") {
                    // transformers makes special tokens unnormalized unless told otherwise.
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(v) => {
                        return Err(
                            self.error(format!("`{key}.normalized` is {v}, not true or false"))
                        )
                    }
                };
                Ok(Some(SpecialToken {
                    content: content.to_string(),
                    normalized,
                }))
            }
            Some(v) => Err(self.error(format!(
                "`{key}` is {}, not a token (a string or an object with `content`)",
                kind(v)
            ))),
        }
    }

    /// `model_max_length`: `Some(n)` for a count up to [`MAX_TOKENS`]; `None` when absent or
    /// larger (transformers writes a huge number, 1e30, for "no limit").
    pub fn model_max_length(&self) -> Result<Option<usize>> {
        let Some(v) = self.json.get("model_max_length") else {
            return Ok(None);
        };
        if v.is_null() {
            return Ok(None);
        }
        let bad = || {
            self.error(format!(
                "`model_max_length` is {v}; it must be a positive number of tokens (CLIP: 77)"
            ))
        };
        if let Some(n) = v.as_u64() {
            return match n {
                0 => Err(bad()),
                n if n > MAX_TOKENS as u64 => Ok(None),
                n => Ok(Some(n as usize)),
            };
        }
        match v.as_f64() {
            Some(f) if f > MAX_TOKENS as f64 => Ok(None),
            _ => Err(bad()),
        }
    }
}

/// A special token named by a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpecialToken {
    pub content: String,
    /// Matched in the text after normalization (CLIP: lower-cased) rather than as typed.
    pub normalized: bool,
}

impl SpecialToken {
    /// A token given as a plain string: transformers adds it unnormalized.
    pub fn plain(content: &str) -> Self {
        SpecialToken {
            content: content.to_string(),
            normalized: false,
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
