//! The networks iterinv runs (T5-v1.1 encoder, IF stage I/II UNets, SD x4 upscaler UNet, its CLIP
//! text encoder and VAE) and their checkpoint loading, built on `iterinv-engine`'s ops.
//!
//! - [`weights`]: safetensors checkpoints (single, sharded, variants, pipeline subfolders).
//! - [`config`]: the models' `config.json` files, parsed and validated.
//! - [`nn`]: layers shared by the networks (linear, conv, norms, the UNet resnet).
//! - [`unet`]: diffusers' `UNet2DConditionModel` with IF's blocks (stage I and II) or SD's (the x4
//!   upscaler).
//! - [`t5`]: the T5 v1.1 text encoder.
//! - [`clip_text`]: the CLIP text encoder (the SD x4 upscaler's text conditioning).
//! - [`clip_model`]: CLIPModel (text and vision towers, projections) for CLIP score.
//! - [`vae`]: the SD x4 upscaler's VAE (`AutoencoderKL`).
//! - [`lpips`]: LPIPS (VGG16, v0.1 heads), the perceptual distance of the paper's evaluation.
//! - [`text`]: tokenizers and IF's prompt preprocessing.
//!
//! Re-exports the engine so that model code and its users name one crate.

pub mod clip_model;
pub mod clip_text;
pub mod config;
pub mod error;
pub mod lpips;
pub mod nn;
pub mod t5;
pub mod text;
pub mod unet;
pub mod vae;
pub mod weights;

pub use clip_model::ClipModel;
pub use clip_text::ClipTextEncoder;
pub use error::{Error, Result};
pub use iterinv_engine as engine;
pub use lpips::Lpips;
pub use t5::T5Encoder;
pub use unet::{UNet, UNetInputs};
pub use vae::{LatentDist, Vae};
pub use weights::{Checkpoint, KeyIndex};
