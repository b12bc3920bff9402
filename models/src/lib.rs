//! The networks iterinv runs (T5-v1.1 encoder, IF stage I/II UNets, SD x4 upscaler UNet, its CLIP
//! text encoder and VAE) and their checkpoint loading, built on `iterinv-engine`'s ops.
//!
//! - [`weights`]: safetensors checkpoints (single, sharded, variants, pipeline subfolders).
//! - [`config`]: the models' `config.json` files, parsed and validated.
//!
//! Re-exports the engine so that model code and its users name one crate.

pub mod config;
pub mod error;
pub mod weights;

pub use error::{Error, Result};
pub use iterinv_engine as engine;
pub use weights::{Checkpoint, KeyIndex};
