//! Images in host memory: 8-bit RGB or RGBA pixels with a row stride, in (the caller's pixels,
//! read during the call) and out (pixels iterinv allocated, freed by `iterinv_image_free`).

use iterinv::image_io::{ImageLimits, PixelFormat, PixelLayout, Rgb, Rgb8};

use crate::boundary::Failure;

/// How 8-bit pixels lie in memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IterinvPixelFormat {
    /// 3 bytes a pixel: red, green, blue.
    Rgb8 = 0,
    /// 4 bytes a pixel: red, green, blue, alpha. Alpha is ignored on input (as in an RGBA file:
    /// not premultiplied) and 255 on output.
    Rgba8 = 1,
}

/// An image in host memory: `height` rows of `width` pixels, row `y` starting at
/// `pixels + y * stride` (stride: at least `width` × the format's bytes per pixel; the bytes
/// between rows are never read or written). sRGB values, as in a PNG.
///
/// Given to iterinv (a photo), the pixels stay the caller's and are only read during the call.
/// Filled by iterinv (a reconstruction), the pixels are iterinv's until `iterinv_image_free`,
/// which needs the struct as iterinv filled it.
#[repr(C)]
#[derive(Debug)]
pub struct IterinvImage {
    pub pixels: *mut u8,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    /// An `IterinvPixelFormat` (a plain integer here, so that any value C stores is checked
    /// rather than trusted).
    pub format: u32,
}

impl IterinvPixelFormat {
    fn library(self) -> PixelFormat {
        match self {
            IterinvPixelFormat::Rgb8 => PixelFormat::Rgb8,
            IterinvPixelFormat::Rgba8 => PixelFormat::Rgba8,
        }
    }
}

/// A format the caller named by number (C may pass any integer, so it is checked).
pub fn format(value: u32) -> Result<IterinvPixelFormat, Failure> {
    match value {
        0 => Ok(IterinvPixelFormat::Rgb8),
        1 => Ok(IterinvPixelFormat::Rgba8),
        v => Err(Failure::invalid(format!(
            "pixel format {v} is unknown; expected ITERINV_PIXEL_FORMAT_RGB8 (0) or \
             ITERINV_PIXEL_FORMAT_RGBA8 (1)"
        ))),
    }
}

/// The photo C handed in, converted as its PNG would be; `name` names it in errors.
///
/// # Safety
/// `image.pixels` must be NULL or hold the `stride × (height − 1)` bytes plus a row that
/// `image` claims.
pub unsafe fn photo(image: &IterinvImage, name: &str) -> Result<Rgb, Failure> {
    let layout = PixelLayout {
        width: image.width as usize,
        height: image.height as usize,
        stride: image.stride,
        format: format(image.format)?.library(),
    };
    let limits = ImageLimits::default();
    // The layout is checked before a slice is made over the caller's memory.
    let span = layout.span(name, limits)?;
    if image.pixels.is_null() {
        return Err(Failure::invalid(format!("`{name}.pixels` is NULL")));
    }
    let bytes = unsafe { std::slice::from_raw_parts(image.pixels, span) };
    Ok(Rgb::from_pixels(bytes, layout, name, limits)?)
}

/// `rgb` as an image iterinv owns, in `format` (rows packed).
pub fn give_image(rgb: &Rgb8, format: IterinvPixelFormat, out: &mut IterinvImage) {
    let pixels: Box<[u8]> = match format {
        IterinvPixelFormat::Rgb8 => rgb.data.clone().into_boxed_slice(),
        IterinvPixelFormat::Rgba8 => rgb
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
    };
    let bpp = format.library().bytes_per_pixel();
    *out = IterinvImage {
        pixels: Box::into_raw(pixels).cast(),
        width: rgb.width as u32,
        height: rgb.height as u32,
        stride: rgb.width * bpp,
        format: format as u32,
    };
}

/// An image with no pixels (what a failed call leaves in its output).
pub fn empty() -> IterinvImage {
    IterinvImage {
        pixels: std::ptr::null_mut(),
        width: 0,
        height: 0,
        stride: 0,
        format: IterinvPixelFormat::Rgb8 as u32,
    }
}

/// Free the pixels of an image iterinv filled (a reconstruction) and set its fields to zero.
/// NULL, and an image whose pixels are NULL, are ignored. Never pass an image whose pixels are
/// the caller's.
///
/// # Safety
/// `image` must be NULL or an image iterinv filled, unchanged since.
#[no_mangle]
pub unsafe extern "C" fn iterinv_image_free(image: *mut IterinvImage) {
    let Some(image) = (unsafe { image.as_mut() }) else {
        return;
    };
    if !image.pixels.is_null() {
        let len = image.stride * image.height as usize;
        let pixels = std::ptr::slice_from_raw_parts_mut(image.pixels, len);
        drop(unsafe { Box::from_raw(pixels) });
    }
    *image = empty();
}
