//! The photo of an inversion, and the same photo at full size on the GPU, which each stage
//! resizes to its own size.

use std::path::Path;

use iterinv_models::Result;

use crate::image_io::{photo_rows, resize_for_stage, Fit, Rgb};
use crate::{Gpu, Tensor};

/// Where a photo's pixels are.
#[derive(Clone, Copy)]
pub(crate) enum PhotoSource<'a> {
    Pixels(&'a Rgb),
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
        }
    }

    /// The photo at full size on `gpu` (the rows layout of [`photo_rows`]), uploaded once;
    /// each stage resizes it on the GPU.
    pub fn on_gpu(self, gpu: &Gpu) -> Result<GpuPhoto<'a>> {
        let rows = match self.source {
            PhotoSource::Pixels(rgb) => photo_rows(gpu, rgb)?,
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
