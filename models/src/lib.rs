//! The networks iterinv runs (T5-v1.1 encoder, IF stage I/II UNets, SD x4 upscaler UNet, its CLIP
//! text encoder and VAE) and their checkpoint loading, built on `iterinv-engine`'s ops.
//!
//! Re-exports the engine so that model code and its users name one crate.

pub use iterinv_engine as engine;
