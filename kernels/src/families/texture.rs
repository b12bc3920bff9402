//! Texture kernels: packed texels copied out of a wgpu texture into an image tensor, and an image
//! tensor packed into texels to be copied into one. The copies themselves are the engine's
//! (`copy_texture_to_buffer` / `copy_buffer_to_texture`, through buffers rather than storage
//! textures: that works for every supported format, rgba8unorm-srgb included, and is exact).
//! `FORMAT` picks the texel layout (see `texture_common.wgsl`); one lane per texel.

use crate::{
    Input,
    InputClass::{Float, Word},
    Kernel,
};

/// Texels (`texels`, u32 words) to an f32 image.
pub static TEXTURE_READ: Kernel = Kernel {
    name: "texture_read",
    body: concat!(
        include_str!("../wgsl/texture_common.wgsl"),
        include_str!("../wgsl/texture_read.wgsl")
    ),
    inputs: &[Input {
        name: "texels",
        class: Word,
    }],
    outputs: &["out"],
    constants: &[("FORMAT", "0u"), ("WG", "256u")],
};

/// An image `x` to texels (u32 words).
pub static TEXTURE_WRITE: Kernel = Kernel {
    name: "texture_write",
    body: concat!(
        include_str!("../wgsl/texture_common.wgsl"),
        include_str!("../wgsl/texture_write.wgsl")
    ),
    inputs: &[Input {
        name: "x",
        class: Float,
    }],
    outputs: &["texels: u32"],
    constants: &[("FORMAT", "0u"), ("WG", "256u")],
};

pub static KERNELS: &[&Kernel] = &[&TEXTURE_READ, &TEXTURE_WRITE];
