//! CLIPProcessor's image preprocessing, as transformers 5 runs it on the uint8 `[3, H, W]` images
//! torchmetrics' CLIPScore hands it: resize the shortest side to `size.shortest_edge` (the other
//! side ⌊s·long/short⌋) with antialiased bicubic, centre-crop to `crop_size` (top and left
//! ⌊(H − h)/2⌋; zero padding where the image is smaller), then (v/255 − mean)/std per channel.
//!
//! The resize follows torch's native uint8 kernel (which is Pillow's algorithm): a horizontal then
//! a vertical pass, each rounded to 8 bits. Its weights are fixed-point, ours f64, so about 0.5%
//! of the pixels can come out one level apart per pass, rarely two in all (tests/clip_image.rs
//! measures it).
//!
//! The settings come from the model folder's `preprocessor_config.json` (as openai's CLIP
//! folders hold it, where `size` and `crop_size` may be plain numbers) or the `image_processor`
//! object of `processor_config.json` (as transformers 5 saves a processor).

use std::path::Path;

use iterinv_models::{Error, Result};
use serde::Deserialize;

use crate::image_io::Rgb;

pub const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";
pub const PROCESSOR_CONFIG: &str = "processor_config.json";
/// Larger sizes are refused (a lying config would allocate them).
const MAX_SIZE: usize = 4096;

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Square(usize),
    Shortest { shortest_edge: usize },
    HeightWidth { height: usize, width: usize },
}

#[derive(Clone, Debug, Deserialize)]
struct Raw {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<Size>,
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<Size>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}
fn rescale() -> f64 {
    1.0 / 255.0
}

/// The image processor's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipImageProcessor {
    /// The shortest side after resizing, or None (no resize).
    pub shortest_edge: Option<usize>,
    /// (height, width) of the crop, or None (no crop).
    pub crop: Option<(usize, usize)>,
    pub rescale_factor: Option<f32>,
    pub mean_std: Option<([f32; 3], [f32; 3])>,
}

fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::ConfigParse {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

impl ClipImageProcessor {
    /// Read the settings from a CLIP model folder.
    pub fn load(dir: &Path) -> Result<ClipImageProcessor> {
        let own = dir.join(PREPROCESSOR_CONFIG);
        let (path, value) = if own.is_file() {
            let v: serde_json::Value = iterinv_models::config::read(&own)?;
            (own, v)
        } else {
            let path = dir.join(PROCESSOR_CONFIG);
            let mut v: serde_json::Value =
                iterinv_models::config::read(&path).map_err(|_| Error::NotFound {
                    path: dir.join(PREPROCESSOR_CONFIG),
                    holds: format!(
                        "a CLIP folder needs {PREPROCESSOR_CONFIG} or {PROCESSOR_CONFIG} \
                         (CLIPProcessor's image settings); {} holds: {}",
                        dir.display(),
                        iterinv_models::weights::list_folder(dir)
                    ),
                })?;
            let inner = v
                .get_mut("image_processor")
                .map(serde_json::Value::take)
                .ok_or_else(|| bad(&path, "has no `image_processor` object"))?;
            (path, inner)
        };
        let raw: Raw = iterinv_models::config::parse_value(value, &path)?;
        Self::from_raw(raw).map_err(|d| bad(&path, d))
    }

    fn from_raw(raw: Raw) -> std::result::Result<ClipImageProcessor, String> {
        let check = |what: &str, v: usize| {
            if v == 0 || v > MAX_SIZE {
                Err(format!("{what} is {v}; it must be 1 to {MAX_SIZE}"))
            } else {
                Ok(v)
            }
        };
        let shortest_edge = if raw.do_resize {
            if raw.resample != 3 {
                return Err(format!(
                    "resample is {}; iterinv implements CLIP's bicubic (3) only",
                    raw.resample
                ));
            }
            match raw.size {
                Some(Size::Square(s)) | Some(Size::Shortest { shortest_edge: s }) => {
                    Some(check("size", s)?)
                }
                Some(Size::HeightWidth { .. }) => {
                    return Err("size as height/width is not CLIP's; use shortest_edge".into())
                }
                None => Some(224),
            }
        } else {
            None
        };
        let crop = if raw.do_center_crop {
            Some(match raw.crop_size {
                Some(Size::Square(s)) => (check("crop_size", s)?, s),
                Some(Size::HeightWidth { height, width }) => (
                    check("crop_size.height", height)?,
                    check("crop_size.width", width)?,
                ),
                Some(Size::Shortest { .. }) => {
                    return Err("crop_size needs height and width".into())
                }
                None => (224, 224),
            })
        } else {
            None
        };
        let mean = raw
            .image_mean
            .unwrap_or([0.481_454_66, 0.457_827_5, 0.408_210_73]);
        let std = raw
            .image_std
            .unwrap_or([0.268_629_54, 0.261_302_6, 0.275_777_1]);
        if std.iter().any(|&s| !(s.is_finite() && s > 0.0)) || mean.iter().any(|m| !m.is_finite()) {
            return Err(format!(
                "image_mean {mean:?} / image_std {std:?} must be finite, std > 0"
            ));
        }
        if !(raw.rescale_factor.is_finite() && raw.rescale_factor > 0.0) {
            return Err(format!(
                "rescale_factor {} must be positive",
                raw.rescale_factor
            ));
        }
        Ok(ClipImageProcessor {
            shortest_edge,
            crop,
            rescale_factor: raw.do_rescale.then_some(raw.rescale_factor as f32),
            mean_std: raw.do_normalize.then_some((mean, std)),
        })
    }

    /// Pixel values `[3, h, w]` (planar, f32) of a decoded image (values in [0, 1] from 8-bit
    /// data), and (h, w).
    pub fn preprocess(&self, image: &Rgb) -> (Vec<f32>, usize, usize) {
        // Back to the 8-bit levels CLIPProcessor sees (load_rgb divides them by 255).
        let mut data: Vec<f32> = image.data.iter().map(|&v| (v * 255.0).round()).collect();
        let (mut h, mut w) = (image.height, image.width);
        if let Some(s) = self.shortest_edge {
            let (oh, ow) = if h <= w {
                (s, s * w / h)
            } else {
                (s * h / w, s)
            };
            data = (0..3)
                .flat_map(|c| {
                    crate::resample::bicubic_u8(&data[c * h * w..(c + 1) * h * w], h, w, oh, ow)
                })
                .collect();
            (h, w) = (oh, ow);
        }
        if let Some((ch, cw)) = self.crop {
            data = crop(&data, h, w, ch, cw);
            (h, w) = (ch, cw);
        }
        let plane = h * w;
        for (i, v) in data.iter_mut().enumerate() {
            if let Some(f) = self.rescale_factor {
                *v *= f;
            }
            if let Some((mean, std)) = self.mean_std {
                let c = i / plane;
                *v = (*v - mean[c]) / std[c];
            }
        }
        (data, h, w)
    }
}

/// transformers' centre crop of `[3, h, w]` to `[3, ch, cw]`: a smaller image is first padded
/// with zeros ((ch − h)/2 rows above, the rest below; columns alike), then the crop starts at
/// ⌊(H − ch)/2⌋, ⌊(W − cw)/2⌋ of the padded size.
fn crop(data: &[f32], h: usize, w: usize, ch: usize, cw: usize) -> Vec<f32> {
    let (pt, pl) = (ch.saturating_sub(h) / 2, cw.saturating_sub(w) / 2);
    let (ph, pw) = (h.max(ch), w.max(cw));
    let (top, left) = ((ph - ch) / 2, (pw - cw) / 2);
    let mut out = vec![0.0; 3 * ch * cw];
    for c in 0..3 {
        for y in 0..ch {
            for x in 0..cw {
                // Position in the padded image, then in the original.
                let (py, px) = (y + top, x + left);
                if py >= pt && py - pt < h && px >= pl && px - pl < w {
                    out[(c * ch + y) * cw + x] = data[(c * h + py - pt) * w + px - pl];
                }
            }
        }
    }
    out
}
