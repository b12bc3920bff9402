//! The photo of an inversion or an edit, wherever its pixels are (host memory, a texture of the
//! host application), and the same photo at full size on the GPU, which each stage resizes to
//! its own size: one way to the stages for every source.

use std::path::Path;

use iterinv_models::Result;

use crate::image_io::{photo_rows, resize_for_stage, Fit, Rgb};
use crate::{Gpu, Tensor};

/// Where a photo's pixels are: in host memory, or in a texture of the host application.
#[derive(Clone, Copy)]
pub(crate) enum PhotoSource<'a> {
    Pixels(&'a Rgb),
    Texture(&'a wgpu::Texture),
}

/// The photo an inversion inverts, and the name it goes by (its file, as recorded in the
/// artifacts and named in errors).
#[derive(Clone, Copy)]
pub(crate) struct Photo<'a> {
    pub source: PhotoSource<'a>,
    pub origin: &'a Path,
}

impl<'a> Photo<'a> {
    /// Width and height.
    pub fn size(&self) -> (usize, usize) {
        match self.source {
            PhotoSource::Pixels(rgb) => (rgb.width, rgb.height),
            PhotoSource::Texture(t) => (t.width() as usize, t.height() as usize),
        }
    }

    /// The photo at full size on `gpu` (the rows layout of [`photo_rows`]), uploaded or
    /// converted once: a texture is read as it is now, whatever the host does with it later.
    /// Each stage resizes it on the GPU, the same way whichever the source.
    pub fn on_gpu(self, gpu: &Gpu) -> Result<GpuPhoto<'a>> {
        let rows = match self.source {
            PhotoSource::Pixels(rgb) => photo_rows(gpu, rgb)?,
            PhotoSource::Texture(t) => crate::texture::texture_to_rows(gpu, t)?,
        };
        Ok(GpuPhoto {
            rows,
            origin: self.origin,
        })
    }
}

/// A photo at full size on the GPU, for the stages to resize.
pub(crate) struct GpuPhoto<'a> {
    rows: Tensor,
    origin: &'a Path,
}

impl GpuPhoto<'_> {
    /// The photo as a stage of `size` sees it.
    pub fn for_stage(&self, size: usize, fit: Fit) -> Result<Tensor> {
        resize_for_stage(&self.rows, &self.origin.display().to_string(), size, fit)
    }
}
