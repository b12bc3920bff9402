//! Images in and out of the engine: PNG files ⇄ `[B, 3, H, W]` tensors in [−1, 1].

use std::path::Path;

use iterinv_models::{Error, Result};

use crate::Tensor;

/// Write sample `b` of `x [B, 3, H, W]` (values in [−1, 1]) as an 8-bit RGB PNG, converting as
/// diffusers does: `round(clamp(x/2 + 0.5, 0, 1) · 255)`.
pub fn save_png(x: &Tensor, b: usize, path: &Path) -> Result<()> {
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
    let mut rgb = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        for ch in 0..3 {
            let v = (sample[ch * plane + i] / 2.0 + 0.5).clamp(0.0, 1.0);
            rgb.push((v * 255.0).round() as u8);
        }
    }
    let img = image::RgbImage::from_raw(w as u32, h as u32, rgb).expect("buffer sized w·h·3");
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
