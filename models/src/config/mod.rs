//! Model configs: serde structs for the `config.json` files diffusers and transformers write,
//! with diffusers' defaults for absent fields, and a `validate()` that rejects (naming the field
//! and value) anything iterinv does not run. Unknown fields (`_class_name`,
//! `_diffusers_version`, ...) are ignored.

mod blocks;
mod check;
pub mod clip;
pub mod clip_model;
pub mod limits;
mod t5;
mod unet;
mod unet_defaults;
mod vae;

use std::path::{Path, PathBuf};

use iterinv_engine::Activation;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use blocks::{ClassEmbedding, DownBlockType, MidBlockType, UpBlockType};
pub use clip::ClipTextConfig;
pub use clip_model::{ClipModelConfig, ClipVisionConfig};
pub use t5::T5Config;
pub use unet::UNetConfig;
pub use vae::{VaeConfig, VAE_CLASS};

/// The name of a model's config file inside its folder.
pub const CONFIG_FILE: &str = "config.json";

/// A config value that is either one value for every block or a list with one per block
/// (`layers_per_block: 3` or `[2, 2, 3, 5, 5]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    /// Like `#[serde(untagged)]`, but a mismatch says what was expected instead of "data did not
    /// match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        if v.is_array() {
            serde_json::from_value(v)
                .map(OneOrMany::Many)
                .map_err(|e| D::Error::custom(format!("in the per-block list: {e}")))
        } else {
            serde_json::from_value(v)
                .map(OneOrMany::One)
                .map_err(|e| D::Error::custom(format!("{e} (or a list with one entry per block)")))
        }
    }
}

impl<T: Clone> OneOrMany<T> {
    /// One value per block for `n` blocks; a list must have exactly `n` entries.
    pub fn per_block(&self, n: usize, field: &str) -> Result<Vec<T>>
    where
        T: Serialize,
    {
        match self {
            OneOrMany::One(v) => Ok(vec![v.clone(); n]),
            OneOrMany::Many(list) if list.len() == n => Ok(list.clone()),
            OneOrMany::Many(list) => Err(config_err(
                field,
                list,
                format!(
                    "a list needs one entry per block ({n}, as many as down_block_types), not {}",
                    list.len()
                ),
            )),
        }
    }

    /// Every value, whichever form.
    pub fn values(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(list) => list.clone(),
        }
    }
}

/// `dir/config.json` or `dir/subfolder/config.json`.
pub fn config_path(dir: &Path, subfolder: Option<&str>) -> PathBuf {
    match subfolder {
        Some(s) => dir.join(s).join(CONFIG_FILE),
        None => dir.join(CONFIG_FILE),
    }
}

/// The subfolder a model lives in when `dir` is a pipeline folder: `Some(subfolder)` when `dir`
/// has no `config.json` of its own but `dir/subfolder` has one; `None` (the model's own folder,
/// or a file) otherwise.
pub fn model_subfolder<'a>(dir: &Path, subfolder: &'a str) -> Option<&'a str> {
    let own = dir.join(CONFIG_FILE);
    (!own.is_file() && config_path(dir, Some(subfolder)).is_file()).then_some(subfolder)
}

/// Parse a config from JSON text; a type error names the field (`layers_per_block: ...`).
pub fn parse_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| parse_err(origin, e))
}

/// Parse a config from an already-parsed JSON value (e.g. the `config` part of a spec file).
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value, origin: &Path) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| parse_err(origin, e))
}

/// Read, parse and validate `dir/config.json` (or `dir/subfolder/config.json`); a validation
/// error names the file.
pub(crate) fn load_validated<T: DeserializeOwned>(
    dir: &Path,
    subfolder: Option<&str>,
    validate: impl FnOnce(&T) -> Result<()>,
) -> Result<T> {
    let path = config_path(dir, subfolder);
    let config: T = read(&path)?;
    validate(&config).map_err(|e| Error::InFile {
        path,
        source: Box::new(e),
    })?;
    Ok(config)
}

/// Read and parse a config file.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    if !path.is_file() {
        let holds = match path.parent() {
            Some(p) if p.is_dir() => {
                format!("{} holds: {}", p.display(), crate::weights::list_folder(p))
            }
            _ => "its folder does not exist either".into(),
        };
        return Err(Error::NotFound {
            path: path.to_path_buf(),
            holds,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

fn parse_err(origin: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let field = e.path().to_string();
    let detail = if field == "." {
        e.inner().to_string()
    } else {
        format!("field `{field}`: {}", e.inner())
    };
    Error::ConfigParse {
        path: origin.to_path_buf(),
        detail,
    }
}

/// An [`Error::Config`] naming `field` and its value (as JSON).
pub(crate) fn config_err(field: &str, value: impl Serialize, detail: impl Into<String>) -> Error {
    Error::Config {
        field: field.to_string(),
        value: serde_json::to_string(&value).unwrap_or_else(|_| "?".into()),
        detail: detail.into(),
    }
}

/// The activation a diffusers `act_fn`-style name denotes, if iterinv runs it.
pub fn activation(field: &str, name: &str) -> Result<Activation> {
    match name {
        "gelu" => Ok(Activation::Gelu),
        // diffusers maps "swish" and "silu" to the same nn.SiLU.
        "silu" | "swish" => Ok(Activation::Silu),
        _ => Err(config_err(
            field,
            name,
            "iterinv supports \"gelu\" (exact) and \"silu\"",
        )),
    }
}
