//! The networks iterinv runs (T5-v1.1 encoder, IF stage I/II UNets, SD x4 upscaler UNet, its CLIP
//! text encoder and VAE) and their checkpoint loading, built on `iterinv-engine`'s ops.
//!
//! - [`weights`]: safetensors checkpoints (single, sharded, variants, pipeline subfolders).
//! - [`config`]: the models' `config.json` files, parsed and validated.
//! - [`nn`]: layers shared by the networks (linear, conv, norms, the UNet resnet).
//! - [`if_unet`]: the DeepFloyd-IF stage I and II UNets.
//! - [`t5`]: the T5 v1.1 text encoder.
//! - [`vae`]: the SD x4 upscaler's VAE (`AutoencoderKL`).
//! - [`text`]: tokenizers and IF's prompt preprocessing.
//!
//! Re-exports the engine so that model code and its users name one crate.

pub mod config;
pub mod error;
pub mod if_unet;
pub mod nn;
pub mod t5;
pub mod text;
pub mod vae;
pub mod weights;

pub use error::{Error, Result};
pub use if_unet::{IfUNet, UNetInputs};
pub use iterinv_engine as engine;
pub use t5::T5Encoder;
pub use vae::{LatentDist, Vae};
pub use weights::{Checkpoint, KeyIndex};
