//! Images to and from wgpu textures without a CPU round trip. Reading copies the texture's texels
//! into a pooled buffer (`copy_texture_to_buffer`, rows padded to 256 bytes) and unpacks them
//! with a kernel; writing packs them with a kernel and copies them in. Buffers rather than
//! storage textures: every supported format copies (rgba8unorm-srgb is not a storage format)
//! and the texels arrive bit for bit. The copies are recorded in the command stream of the ops,
//! in order with them, and each conversion is submitted (not waited for) before it returns.
//!
//! What a texel means, in the formats iterinv reads and writes ([`FORMATS`]), for an image
//! tensor in [−1, 1] (x = 2v − 1 for a colour value v in [0, 1]):
//! - rgba8unorm and rgba8unorm-srgb hold the bytes a PNG of the image holds (sRGB-encoded; the
//!   `-srgb` format only tells the GPU so, and sampling it decodes them): reading gives
//!   b/255·2 − 1 exactly as decoding the PNG does, writing quantizes exactly as
//!   `image_io::to_rgb8` (and so `save_png`) does;
//! - rgba16float and rgba32float hold linear light: written as v sRGB-decoded, read clamped to
//!   [0, 1] and sRGB-encoded, so sampling any of the four formats shows the same colour.
//!
//! Alpha is written as 1 and ignored on read. Values outside [−1, 1] are clamped on write, a NaN
//! becomes 0 (as `to_rgb8` makes it). The texture must be two-dimensional and single-sampled;
//! its mip level 0 and array layer 0 are read or written.

use iterinv_kernels::families::texture::{TEXTURE_READ, TEXTURE_WRITE};
use iterinv_kernels::StorageType;

use crate::error::{shape_err, Error, Result};
use crate::gpu::Gpu;
use crate::launch::{expect_float, to_u32, Binding, Launch, Params};
use crate::ops::resample::{resample, Filter, Window};
use crate::tensor::Tensor;

const WG: u64 = 256;

/// The texture formats iterinv reads and writes.
pub const FORMATS: [wgpu::TextureFormat; 4] = [
    wgpu::TextureFormat::Rgba8Unorm,
    wgpu::TextureFormat::Rgba8UnormSrgb,
    wgpu::TextureFormat::Rgba16Float,
    wgpu::TextureFormat::Rgba32Float,
];

/// How texels lie in a copied row: the kernels' `FORMAT` code and bytes per texel.
#[derive(Clone, Copy)]
struct Texels {
    code: u32,
    bytes: u32,
}

/// The texture's texel layout, after checking that iterinv can copy it in the direction that
/// `usage` (COPY_SRC to read, COPY_DST to write) allows; errors name what is missing.
fn check(op: &'static str, texture: &wgpu::Texture, usage: wgpu::TextureUsages) -> Result<Texels> {
    let format = texture.format();
    let texels = match format {
        wgpu::TextureFormat::Rgba8Unorm | wgpu::TextureFormat::Rgba8UnormSrgb => {
            Texels { code: 0, bytes: 4 }
        }
        wgpu::TextureFormat::Rgba16Float => Texels { code: 1, bytes: 8 },
        wgpu::TextureFormat::Rgba32Float => Texels { code: 2, bytes: 16 },
        other => {
            return Err(Error::Invalid {
                op,
                detail: format!(
                    "the texture's format {other:?} is not one iterinv converts; use one of \
                     {FORMATS:?}"
                ),
            })
        }
    };
    if texture.dimension() != wgpu::TextureDimension::D2 || texture.sample_count() != 1 {
        return Err(Error::Invalid {
            op,
            detail: format!(
                "the texture is {:?} with {} samples; iterinv converts 2D single-sampled textures",
                texture.dimension(),
                texture.sample_count()
            ),
        });
    }
    if !texture.usage().contains(usage) {
        let (flag, direction) = if usage == wgpu::TextureUsages::COPY_SRC {
            ("COPY_SRC", "read")
        } else {
            ("COPY_DST", "write")
        };
        return Err(Error::Invalid {
            op,
            detail: format!(
                "the texture lacks the {flag} usage (it has {:?}); create it with \
                 wgpu::TextureUsages::{flag} for iterinv to {direction} it",
                texture.usage()
            ),
        });
    }
    Ok(texels)
}

/// A copied row's bytes (a multiple of 256, as copies between buffers and textures require), and
/// how many rows one copy moves so that its buffer fits a storage binding.
fn rows(
    op: &'static str,
    gpu: &Gpu,
    texture: &wgpu::Texture,
    texels: Texels,
) -> Result<(u32, usize)> {
    let unpadded = texture.width() as u64 * texels.bytes as u64;
    let row = unpadded.next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as u64);
    let limit = gpu.caps().max_binding_size;
    if row > limit {
        return Err(Error::TooLarge {
            what: format!("one row of a {}-texel-wide texture ({op})", texture.width()),
            bytes: row,
            limit,
            hint: "use a narrower texture",
        });
    }
    Ok((row as u32, (limit / row) as usize))
}

/// A buffer of `words` words for texels on their way to or from a texture (poisoned in poison
/// mode, like any op output), bound as u32 words.
fn staging(gpu: &Gpu, words: usize, op: &'static str) -> Result<(Tensor, Binding)> {
    let t = Tensor::uninit(gpu, &[words], op)?;
    let b = Binding {
        ty: StorageType::U32,
        ..t.bind(op)?
    };
    Ok((t, b))
}

fn copy_layout(buffer: &wgpu::Buffer, row_bytes: u32, rows: u32) -> wgpu::TexelCopyBufferInfo<'_> {
    wgpu::TexelCopyBufferInfo {
        buffer,
        layout: wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(row_bytes),
            rows_per_image: Some(rows),
        },
    }
}

fn texture_rows(texture: &wgpu::Texture, first: usize) -> wgpu::TexelCopyTextureInfo<'_> {
    wgpu::TexelCopyTextureInfo {
        texture,
        mip_level: 0,
        origin: wgpu::Origin3d {
            x: 0,
            y: first as u32,
            z: 0,
        },
        aspect: wgpu::TextureAspect::All,
    }
}

fn extent(texture: &wgpu::Texture, rows: usize) -> wgpu::Extent3d {
    wgpu::Extent3d {
        width: texture.width(),
        height: rows as u32,
        depth_or_array_layers: 1,
    }
}

/// The texture's image as a `[1, 3, H, W]` tensor in [−1, 1] (see the module docs for what its
/// texels mean). It needs COPY_SRC usage; the copy is submitted before this returns, so the
/// texture may change afterwards.
pub fn texture_to_tensor(gpu: &Gpu, texture: &wgpu::Texture) -> Result<Tensor> {
    let op = "texture_to_tensor";
    let texels = check(op, texture, wgpu::TextureUsages::COPY_SRC)?;
    let (h, w) = (texture.height() as usize, texture.width() as usize);
    let out = Tensor::uninit(gpu, &[1, 3, h, w], op)?;
    read(op, gpu, texture, texels, &out, (h * w, w))?;
    Ok(out)
}

/// The texture's image in the rows layout `[H, 3, W]`, split over as many buffers as the storage
/// binding limit needs (what `ops::resample` takes, at any size); otherwise as
/// [`texture_to_tensor`].
pub fn texture_to_rows(gpu: &Gpu, texture: &wgpu::Texture) -> Result<Tensor> {
    let op = "texture_to_rows";
    let texels = check(op, texture, wgpu::TextureUsages::COPY_SRC)?;
    let (h, w) = (texture.height() as usize, texture.width() as usize);
    let out = Tensor::uninit_rows(gpu, &[h, 3, w], op)?;
    read(op, gpu, texture, texels, &out, (w, 3 * w))?;
    Ok(out)
}

/// Copy the texture into `out`, whose channel c of texel (x, y) lies at
/// c·strides.0 + y·strides.1 + x, one band of rows per copy, each within one buffer of `out`.
fn read(
    op: &'static str,
    gpu: &Gpu,
    texture: &wgpu::Texture,
    texels: Texels,
    out: &Tensor,
    (plane_stride, row_stride): (usize, usize),
) -> Result<()> {
    let (row_bytes, band) = rows(op, gpu, texture, texels)?;
    let w = texture.width() as usize;
    for i in 0..out.chunk_count() {
        // One buffer holds every row unless the tensor is split (then by image rows).
        let held = if out.chunk_count() == 1 {
            0..texture.height() as usize
        } else {
            out.chunk_rows(i)
        };
        for first in held.clone().step_by(band) {
            let n_rows = band.min(held.end - first);
            let (buf, words) = staging(gpu, n_rows * row_bytes as usize / 4, op)?;
            if !gpu.is_planning() {
                let mut rec = gpu.0.recorder.lock().unwrap();
                rec.encoder(gpu.device()).copy_texture_to_buffer(
                    texture_rows(texture, first),
                    copy_layout(&buf.storage.chunks[0].buffer, row_bytes, n_rows as u32),
                    extent(texture, n_rows),
                );
            }
            let n = n_rows * w;
            gpu.launch(
                Launch::new(&TEXTURE_READ)
                    .constant("FORMAT", format!("{}u", texels.code))
                    .input(words)
                    .output(out.bind_chunk(i))
                    .params(
                        Params::new()
                            .u32(to_u32(op, n)?)
                            .u32(to_u32(op, w)?)
                            .u32(row_bytes / 4)
                            .u32(to_u32(op, first - held.start)?)
                            .u32(to_u32(op, plane_stride)?)
                            .u32(to_u32(op, row_stride)?),
                    )
                    .groups(gpu.grid((n as u64).div_ceil(WG))?),
            )?;
        }
    }
    gpu.flush();
    Ok(())
}

/// Write the image `x` (`[1, 3, H, W]` in [−1, 1]) into the texture (see the module docs for
/// what its texels then hold), resized on the GPU to the texture's size when they differ (PIL's
/// antialiased bicubic, stretched, as `ops::resample` computes it). The texture needs COPY_DST
/// usage; the copy is submitted before this returns, so the host's later submissions see the
/// image.
pub fn write_texture(x: &Tensor, texture: &wgpu::Texture) -> Result<()> {
    let op = "write_texture";
    let texels = check(op, texture, wgpu::TextureUsages::COPY_DST)?;
    expect_float(op, "x", x)?;
    let &[1, 3, xh, xw] = x.shape() else {
        return shape_err(
            op,
            format!("the image must be [1, 3, H, W], got {:?}", x.shape()),
        );
    };
    let (h, w) = (texture.height() as usize, texture.width() as usize);
    let resized;
    let x = if (xh, xw) == (h, w) {
        x
    } else {
        let whole = Window {
            top: 0,
            left: 0,
            height: xh,
            width: xw,
        };
        resized = resample(x, whole, &Filter::bicubic(xh, h), &Filter::bicubic(xw, w))?;
        &resized
    };
    let gpu = x.gpu();
    let (row_bytes, band) = rows(op, gpu, texture, texels)?;
    let input = x.bind(op)?;
    for first in (0..h).step_by(band) {
        let n_rows = band.min(h - first);
        let (buf, words) = staging(gpu, n_rows * row_bytes as usize / 4, op)?;
        let n = n_rows * w;
        gpu.launch(
            Launch::new(&TEXTURE_WRITE)
                .constant("FORMAT", format!("{}u", texels.code))
                .input(input.clone())
                .output(words)
                .params(
                    Params::new()
                        .u32(to_u32(op, n)?)
                        .u32(to_u32(op, w)?)
                        .u32(to_u32(op, h)?)
                        .u32(row_bytes / 4)
                        .u32(to_u32(op, first)?),
                )
                .groups(gpu.grid((n as u64).div_ceil(WG))?),
        )?;
        if !gpu.is_planning() {
            let mut rec = gpu.0.recorder.lock().unwrap();
            rec.encoder(gpu.device()).copy_buffer_to_texture(
                copy_layout(&buf.storage.chunks[0].buffer, row_bytes, n_rows as u32),
                texture_rows(texture, first),
                extent(texture, n_rows),
            );
        }
    }
    gpu.flush();
    Ok(())
}

/// A new texture of `format` (one of [`FORMATS`]) holding the image `x` (`[1, 3, H, W]` in
/// [−1, 1]) at its size, as [`write_texture`] writes it; its usage is `usage` plus COPY_DST.
pub fn create_texture(
    x: &Tensor,
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> Result<wgpu::Texture> {
    let op = "create_texture";
    if !FORMATS.contains(&format) {
        return Err(Error::Invalid {
            op,
            detail: format!("{format:?} is not a format iterinv converts; use one of {FORMATS:?}"),
        });
    }
    let &[1, 3, h, w] = x.shape() else {
        return shape_err(
            op,
            format!("the image must be [1, 3, H, W], got {:?}", x.shape()),
        );
    };
    let device = x.gpu().device();
    let max = device.limits().max_texture_dimension_2d as usize;
    if h > max || w > max {
        return Err(Error::Invalid {
            op,
            detail: format!("a {w}×{h} image is larger than this device's textures ({max} a side)"),
        });
    }
    let scopes = crate::fault::Scopes::push(device);
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("iterinv image"),
        size: wgpu::Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: usage | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    if let Some(f) = scopes.pop("creating a texture") {
        return Err(f.to_error());
    }
    write_texture(x, &texture)?;
    Ok(texture)
}
