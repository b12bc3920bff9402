//! Text-to-image with the DeepFloyd-IF cascade and the SD x4 upscaler, built from diffusers
//! pipeline folders, and the IF UNets as the inversion algorithms' denoiser.

pub mod cascade;
pub mod denoiser;
pub mod edit;
pub mod folder;
pub mod guidance;
pub mod inversion;
pub mod noise;
pub mod progress;
pub mod sampling;
pub mod upscaler;

pub use cascade::{generate, CascadeOptions, CascadeOutput, CascadeStage};
pub use denoiser::IfDenoiser;
pub use folder::{PipelineFolder, Stage};
pub use guidance::TextCondition;
pub use inversion::{invert, reconstruct, InvertOptions, SrMethod, SrStage, Stage1Method};
pub use noise::{InjectedNoise, NoiseSource, SeededNoise};
pub use sampling::StageSettings;
pub use upscaler::{upscale, UpscalerOptions, UpscalerOutput};
