//! Images in and out of the engine: image files ⇄ `[B, 3, H, W]` tensors in [−1, 1].
//!
//! Input: any PNG or JPEG (RGB, RGBA — alpha dropped —, grey, 8 or 16 bits), made square and
//! resized to a stage's resolution with PIL's antialiased bicubic filter, on the GPU.

use std::path::Path;

pub use iterinv_engine::ops::resample::Window;
use iterinv_engine::ops::resample::{resample, Filter};
use iterinv_models::{Error, Result};

use crate::Tensor;

/// Write sample `b` of `x [B, 3, H, W]` (values in [−1, 1]) as an 8-bit RGB PNG, converting as
/// [`to_rgb8`] does.
pub fn save_png(x: &Tensor, b: usize, path: &Path) -> Result<()> {
    let rgb = to_rgb8(x, b)?;
    let img = image::RgbImage::from_raw(rgb.width as u32, rgb.height as u32, rgb.data)
        .expect("buffer sized w·h·3");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    img.save(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// An 8-bit RGB image, its pixels row after row, each `[r, g, b]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Sample `b` of `x [B, 3, H, W]` (values in [−1, 1]) as 8-bit RGB, converted as diffusers
/// does: `round(clamp(x/2 + 0.5, 0, 1) · 255)` (what [`save_png`] writes).
pub fn to_rgb8(x: &Tensor, b: usize) -> Result<Rgb8> {
    let &[batch, c, h, w] = x.shape() else {
        return Err(Error::Input {
            what: "image".into(),
            detail: format!("must be [B, 3, H, W], got shape {:?}", x.shape()),
        });
    };
    if c != 3 || b >= batch {
        return Err(Error::Input {
            what: "image".into(),
            detail: format!(
                "needs 3 channels and sample {b} of {batch}, got shape {:?}",
                x.shape()
            ),
        });
    }
    let values = x.to_vec()?;
    let plane = h * w;
    let sample = &values[b * 3 * plane..(b + 1) * 3 * plane];
    let mut data = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        for ch in 0..3 {
            let v = (sample[ch * plane + i] / 2.0 + 0.5).clamp(0.0, 1.0);
            data.push((v * 255.0).round() as u8);
        }
    }
    Ok(Rgb8 {
        width: w,
        height: h,
        data,
    })
}

/// Sample 0 of `x [B, 3, H, W]` (values in [−1, 1]) as [0, 1] pixels, clamped as `save_png`
/// clamps but not rounded to 8 bits (scores see the values the network produced; NaN stays NaN).
pub fn to_rgb(x: &Tensor) -> Result<Rgb> {
    let &[_, 3, h, w] = x.shape() else {
        return Err(Error::Input {
            what: "image".into(),
            detail: format!("must be [B, 3, H, W], got shape {:?}", x.shape()),
        });
    };
    let mut data = x.to_vec()?;
    data.truncate(3 * h * w);
    for v in &mut data {
        *v = (*v / 2.0 + 0.5).clamp(0.0, 1.0);
    }
    Ok(Rgb {
        height: h,
        width: w,
        data,
    })
}

/// An image as planar RGB in [0, 1]: `[3, height, width]`.
pub struct Rgb {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// How large an image iterinv decodes. The header of a PNG or JPEG states its size before any
/// pixel, and a small file can claim an enormous image (a decompression bomb), so the size is
/// checked against these limits before the pixels are allocated. Decoding then takes about 32
/// bytes per pixel at peak (the decoded image, then planar f32): 2 GiB at the default limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// The longest side, in pixels.
    pub max_side: u32,
    /// Width × height.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 16384 pixels a side, 64 megapixels in all (8192 × 8192; a 50 MP camera's photos pass).
    fn default() -> Self {
        ImageLimits {
            max_side: 16384,
            max_pixels: 64 << 20,
        }
    }
}

/// Decode an image file (PNG or JPEG; RGB, RGBA, grey; 8 or 16 bits per channel) within the
/// default [`ImageLimits`].
pub fn load_rgb(path: &Path) -> Result<Rgb> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_rgb(&bytes, path, ImageLimits::default())
}

/// Decode an image from its file's bytes (the format is recognised from the content, so a JPEG
/// named `.png` still reads); `origin` names it in errors. Images beyond `limits` are refused
/// from their header, before their pixels are allocated.
pub fn decode_rgb(bytes: &[u8], origin: &Path, limits: ImageLimits) -> Result<Rgb> {
    let err = |detail: String| Error::Input {
        what: format!("image {}", origin.display()),
        detail,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // The decoder's own buffers: at most 8 bytes (RGBA, 16 bits) per allowed pixel.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decoder_limits);
    let too_large = |w: u32, h: u32| {
        err(format!(
            "is {w}×{h} pixels; iterinv decodes images up to {} pixels a side and {} pixels in \
             all (downscale it first)",
            limits.max_side, limits.max_pixels
        ))
    };
    let decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => err(format!(
            "is larger than iterinv decodes ({} pixels a side, {} in all): {e}",
            limits.max_side, limits.max_pixels
        )),
        e => err(format!("cannot be read: {e}")),
    })?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if w > limits.max_side || h > limits.max_side || w as u64 * h as u64 > limits.max_pixels {
        return Err(too_large(w, h));
    }
    let img = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    Ok(planar(img))
}

/// A decoded image as planar RGB in [0, 1] (alpha dropped; 8 and 16 bits scaled by their
/// maximum), consuming it.
fn planar(img: image::DynamicImage) -> Rgb {
    let rgb = img.to_rgb32f();
    drop(img);
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            data[c * h * w + i] = px.0[c];
        }
    }
    Rgb {
        height: h,
        width: w,
        data,
    }
}

/// How 8-bit pixels lie in host memory: `[r, g, b]` or `[r, g, b, a]` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb8,
    /// Alpha is dropped (not premultiplied), as for RGBA files.
    Rgba8,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
        }
    }
}

/// Where 8-bit pixels lie in host memory: `height` rows of `width` pixels, `stride` bytes
/// apart (at least a row; the bytes between rows are not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelLayout {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub format: PixelFormat,
}

impl PixelLayout {
    /// The bytes the rows span: `stride × (height − 1)` plus a row. Refused (naming the image
    /// as `origin`): an empty image, one beyond `limits` (as a file's header is), a stride
    /// shorter than a row, rows spanning more than memory can hold.
    pub fn span(&self, origin: &str, limits: ImageLimits) -> Result<usize> {
        let &PixelLayout {
            width,
            height,
            stride,
            format,
        } = self;
        let err = |detail: String| Error::Input {
            what: format!("image {origin}"),
            detail,
        };
        if width == 0 || height == 0 {
            return Err(err(format!(
                "is {width}×{height} pixels; it must not be empty"
            )));
        }
        if width > limits.max_side as usize
            || height > limits.max_side as usize
            || (width as u64).saturating_mul(height as u64) > limits.max_pixels
        {
            return Err(err(format!(
                "is {width}×{height} pixels; iterinv takes images up to {} pixels a side and {} \
                 pixels in all (downscale it first)",
                limits.max_side, limits.max_pixels
            )));
        }
        // Within the limits, so this cannot overflow.
        let row = width * format.bytes_per_pixel();
        if stride < row {
            return Err(err(format!(
                "has rows {stride} bytes apart, fewer than a row of {width} {format:?} pixels \
                 ({row} bytes)"
            )));
        }
        stride
            .checked_mul(height - 1)
            .and_then(|n| n.checked_add(row))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| {
                err(format!(
                    "has {height} rows {stride} bytes apart: more than memory can hold"
                ))
            })
    }
}

impl Rgb {
    /// An image from 8-bit pixels in host memory laid out as `layout` says, converted exactly
    /// as a PNG of the same pixels is by [`load_rgb`]. `origin` names it in errors. Refused:
    /// what [`PixelLayout::span`] refuses, and `pixels` shorter than the span.
    pub fn from_pixels(
        pixels: &[u8],
        layout: PixelLayout,
        origin: &str,
        limits: ImageLimits,
    ) -> Result<Rgb> {
        let span = layout.span(origin, limits)?;
        if pixels.len() < span {
            return Err(Error::Input {
                what: format!("image {origin}"),
                detail: format!(
                    "has {} bytes; {} rows {} bytes apart need {span}",
                    pixels.len(),
                    layout.height,
                    layout.stride
                ),
            });
        }
        let row = layout.width * layout.format.bytes_per_pixel();
        let mut packed = Vec::with_capacity(row * layout.height);
        for y in 0..layout.height {
            packed.extend_from_slice(&pixels[y * layout.stride..][..row]);
        }
        let (w, h) = (layout.width as u32, layout.height as u32);
        let img = match layout.format {
            PixelFormat::Rgb8 => image::RgbImage::from_raw(w, h, packed).map(Into::into),
            PixelFormat::Rgba8 => image::RgbaImage::from_raw(w, h, packed).map(Into::into),
        };
        Ok(planar(img.expect("a buffer of height rows")))
    }
}

/// How a non-square image becomes square.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Centre-crop to the shorter side, then resize (no distortion).
    CropCenter,
    /// Resize both sides directly (the IterInv reference's behaviour).
    Stretch,
}

impl Fit {
    /// The part of a `width`×`height` image that is resized to a square.
    pub fn window(self, width: usize, height: usize) -> Window {
        match self {
            Fit::CropCenter => {
                let s = height.min(width);
                Window {
                    top: (height - s) / 2,
                    left: (width - s) / 2,
                    height: s,
                    width: s,
                }
            }
            Fit::Stretch => Window {
                top: 0,
                left: 0,
                height,
                width,
            },
        }
    }
}

/// `image` at full size on the GPU: values v·2 − 1 in [−1, 1] (v its [0, 1] values, computed in
/// f32) in the rows layout `[H, 3, W]`, split over buffers by rows when it is larger than one
/// storage binding. What [`resize_for_stage`] takes; a texture gives the same from its texels
/// ([`crate::texture`]).
pub fn photo_rows(gpu: &crate::Gpu, image: &Rgb) -> Result<Tensor> {
    let (h, w) = (image.height, image.width);
    let mut rows = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for y in 0..h {
            let src = &image.data[(c * h + y) * w..][..w];
            for (dst, &v) in rows[(y * 3 + c) * w..][..w].iter_mut().zip(src) {
                *dst = v * 2.0 - 1.0;
            }
        }
    }
    Ok(Tensor::from_f32(gpu, &[h, 3, w], &rows)?)
}

/// A photo at full size in the rows layout (from [`photo_rows`] or a texture) as a stage sees
/// it: made square by `fit` and resized on the GPU with PIL's antialiased bicubic filter to a
/// `[1, 3, size, size]` tensor in [−1, 1] (weights in f64 as PIL's, sums in f32). The photo must
/// be at least `size` on its shorter side (upscaling a small photo would invent detail);
/// `origin` names it in that error.
pub fn resize_for_stage(photo: &Tensor, origin: &str, size: usize, fit: Fit) -> Result<Tensor> {
    let &[h, 3, w] = photo.shape() else {
        return Err(Error::Input {
            what: format!("image {origin}"),
            detail: format!(
                "must be a photo in the rows layout [H, 3, W], got shape {:?}",
                photo.shape()
            ),
        });
    };
    if h.min(w) < size {
        return Err(Error::Input {
            what: format!("image {origin}"),
            detail: format!("is {w}×{h}; it must be at least {size} pixels on each side"),
        });
    }
    let window = fit.window(w, h);
    Ok(resample(
        photo,
        window,
        &Filter::bicubic(window.height, size),
        &Filter::bicubic(window.width, size),
    )?)
}

/// An image file as a `[1, 3, size, size]` tensor in [−1, 1] (see [`stage_tensor`]).
pub fn load_for_stage(gpu: &crate::Gpu, path: &Path, size: usize, fit: Fit) -> Result<Tensor> {
    stage_tensor(
        gpu,
        &load_rgb(path)?,
        &path.display().to_string(),
        size,
        fit,
    )
}

/// `image` as a stage sees it: [`photo_rows`] then [`resize_for_stage`] (the photo is uploaded at
/// full size and resized on the GPU).
pub fn stage_tensor(
    gpu: &crate::Gpu,
    image: &Rgb,
    origin: &str,
    size: usize,
    fit: Fit,
) -> Result<Tensor> {
    resize_for_stage(&photo_rows(gpu, image)?, origin, size, fit)
}
