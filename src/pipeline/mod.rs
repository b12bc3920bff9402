//! Text-to-image with the DeepFloyd-IF cascade, built from diffusers pipeline folders.

pub mod cascade;
pub mod folder;
pub mod guidance;
pub mod noise;
pub mod sampling;

pub use cascade::{generate, CascadeOptions, CascadeOutput};
pub use folder::{PipelineFolder, Stage};
pub use guidance::TextCondition;
pub use noise::{InjectedNoise, NoiseSource, SeededNoise};
pub use sampling::StageSettings;
