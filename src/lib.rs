//! iterinv: inversion and editing of real images with pixel-level cascaded diffusion models
//! (DeepFloyd-IF), on any GPU that wgpu reaches (Vulkan, Metal, DX12), without Python or CUDA.
//!
//! This crate is the public facade. The layers under it:
//! - [`kernels`]: the WGSL compute kernels and the table that names them;
//! - [`engine`]: the runtime ([`Gpu`], [`Tensor`], buffer pool, op launches) and the forward ops;
//! - [`models`]: checkpoint loading and the networks;
//! - [`pipeline`]: the IF cascade, text to image; [`image_io`]: images in and out;
//!   [`metrics`]: MSE, PSNR, SSIM; [`clip_image`]: CLIPProcessor's image preprocessing;
//!   [`scoring`]: the paper's scores with LPIPS and CLIP; [`eval`]: the table over a dataset;
//!   `embedded` (feature `embedded-cascade`): the tiny trained cascade compiled in;
//!   [`session`]: long work stepped a bounded slice at a time from a host's frame loop.
//!
//! A host application that already owns a `wgpu::Device` shares it with [`Gpu::from_device`],
//! and hands photos in and takes images out as its own textures ([`texture`]).

pub mod clip_image;
#[cfg(feature = "embedded-cascade")]
pub mod embedded;
pub mod eval;
pub mod image_io;
pub mod metrics;
pub mod pipeline;
mod resample;
pub mod scoring;
pub mod session;
pub mod texture;

pub use iterinv_engine as engine;
pub use iterinv_kernels as kernels;
pub use iterinv_models as models;

pub use iterinv_engine::{
    grad, ops, optim, precision, Activation, Cooperative, DType, Error, Gpu, GpuInfo, GpuOptions,
    PoolStats, Precision, ProfileReport, ProfileRow, Result, Tensor,
};

/// The version of this build, as recorded in artifacts and printed by the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The device `gpu` runs on, in words: its adapter's name and backend, e.g. "llvmpipe (LLVM
/// 15.0.6, 256 bits) (Vulkan)" (the CLI's report.json, the C API's `iterinv_context_device`).
pub fn device_name(gpu: &Gpu) -> String {
    let adapter = &gpu.info().adapter;
    format!("{} ({:?})", adapter.name, adapter.backend)
}
