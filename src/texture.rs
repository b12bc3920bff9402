//! Images that stay on the GPU: a host application's wgpu textures as the pipeline's images and
//! back, without a CPU round trip (on a device the host shares with [`Gpu::from_device`]).
//!
//! An image tensor is `[1, 3, H, W]` in [−1, 1], as every stage holds it (x = 2v − 1 for a colour
//! value v in [0, 1]). The formats converted are [`FORMATS`] — rgba8unorm, rgba8unorm-srgb,
//! rgba16float and rgba32float — at any size:
//! - the 8-bit formats hold exactly the bytes a PNG of the image holds (sRGB-encoded; the `-srgb`
//!   format only tells the GPU so, and sampling it decodes them). Reading one gives the values
//!   decoding that PNG gives, bit for bit; writing quantizes exactly as
//!   [`image_io::to_rgb8`](crate::image_io::to_rgb8) and `save_png` do;
//! - the float formats hold linear light: written sRGB-decoded (rgba16float rounded to the
//!   nearest half), read clamped to [0, 1] and sRGB-encoded. Sampling any of the four formats
//!   therefore shows the same colour.
//!
//! Alpha is written as 1 and ignored on read; values outside [−1, 1] are clamped on write and a
//! NaN becomes 0, as in `to_rgb8`. Textures must be 2D and single-sampled (mip level 0, array
//! layer 0 is used), with COPY_SRC usage to be read and COPY_DST to be written; anything else is
//! an error naming what is missing. Each conversion is recorded in iterinv's command stream and
//! submitted, not waited for, before it returns: a texture read may change afterwards, a texture
//! written is seen by the host's later submissions.
//!
//! Photos in: `pipeline::inversion::invert_texture` and `pipeline::edit::edit_texture` (each
//! stage's resize done on the GPU, as for a file). Images out: [`write_texture`] takes any image
//! tensor — `invert`'s reconstructions, `reconstruct`'s and `generate`'s images, an edit's —
//! and [`create_texture`] makes a new texture of one.
//!
//! [`Gpu::from_device`]: crate::Gpu::from_device

pub use iterinv_engine::ops::texture::{
    create_texture, texture_to_rows, texture_to_tensor, write_texture, FORMATS,
};
