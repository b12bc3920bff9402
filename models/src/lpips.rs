//! LPIPS with the VGG16 trunk and the v0.1 linear heads (the `lpips` package's
//! `LPIPS(net="vgg")`), the perceptual distance the paper reports.
//!
//! The network reads one safetensors file holding exactly the package's state dict
//! (tools/reference/make_lpips_fixtures.py converts torchvision's VGG16 and the wheel's heads into
//! it): `scaling_layer.{shift,scale}`, the 13 convolutions `net.slice{1..5}.{i}.{weight,bias}`
//! under torchvision's `features` indices, and the heads `lin{0..4}.model.1.weight`.
//!
//! The distance of two images x₀, x₁ in [−1, 1]: each is shifted and scaled per channel, runs
//! through VGG16's convolutions (3×3, ReLU) and 2×2 max pools, and is tapped after relu1_2,
//! relu2_2, relu3_3, relu4_3 and relu5_3; each tap is normalized to unit length over channels
//! (x / (‖x‖ + 1e−10)), the squared difference of the two goes through the tap's 1×1 head (no
//! bias), is averaged over the pixels, and the five terms are summed.
//!
//! The widths of the five stages are read from the file's shapes (64/128/256/512/512 in the real
//! network), so a channel-reduced VGG with the same layers loads too (the test fixture).

use std::path::Path;

use iterinv_engine::ops::conv::Conv2dOptions;
use iterinv_engine::{grad, Activation, Gpu, Tensor};

use crate::error::{Error, Result};
use crate::nn::Conv2d;
use crate::weights::{abbreviate, Checkpoint, KeyIndex, Upload, Weights};

/// The conv layers of each lpips slice, by torchvision `vgg16().features` index; a 2×2 max pool
/// precedes every slice but the first.
const SLICES: [&[usize]; 5] = [
    &[0, 2],
    &[5, 7],
    &[10, 12, 14],
    &[17, 19, 21],
    &[24, 26, 28],
];
/// The smallest side: four pools must leave at least one pixel for relu5_3.
pub const MIN_SIDE: usize = 16;
/// lpips' `normalize_tensor` epsilon, added to the norm.
const EPS: f32 = 1e-10;

/// One distance and its five terms (relu1_2 … relu5_3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LpipsDistance {
    pub distance: f64,
    pub per_layer: [f64; 5],
}

pub struct Lpips {
    shift: Tensor,
    scale: Tensor,
    slices: Vec<Vec<Conv2d>>,
    heads: Vec<Tensor>,
    widths: [usize; 5],
}

impl Lpips {
    /// Load from the converted safetensors file. Missing keys and shapes that do not chain are
    /// errors naming the key and the file; keys that are not part of LPIPS are logged once.
    pub fn load(gpu: &Gpu, path: &Path) -> Result<Lpips> {
        let checkpoint = Checkpoint::open_file(path)?;
        let widths = widths(checkpoint.index())?;
        let source = Upload {
            gpu,
            checkpoint: &checkpoint,
        };
        let lpips = Lpips::from_weights(widths, &Weights::new(&source))?;
        let unused = checkpoint.unused_keys();
        if !unused.is_empty() {
            log::warn!(
                "{} weight(s) in {} are not part of LPIPS and were ignored: {}",
                unused.len(),
                path.display(),
                abbreviate(&unused)
            );
        }
        Ok(lpips)
    }

    /// Build from weights named as the `lpips` package names them, with the stages' widths.
    pub fn from_weights(widths: [usize; 5], w: &Weights) -> Result<Lpips> {
        let mut cin = 3;
        let mut slices = Vec::new();
        for (s, (convs, &width)) in SLICES.iter().zip(&widths).enumerate() {
            let mut layers = Vec::new();
            for i in convs.iter() {
                layers.push(Conv2d::load(
                    &w.at(format_args!("net.slice{}.{i}", s + 1)),
                    cin,
                    width,
                    3,
                )?);
                cin = width;
            }
            slices.push(layers);
        }
        let heads = widths
            .iter()
            .enumerate()
            .map(|(k, &c)| w.tensor(&format!("lin{k}.model.1.weight"), &[1, c, 1, 1]))
            .collect::<Result<_>>()?;
        Ok(Lpips {
            shift: w.tensor("scaling_layer.shift", &[1, 3, 1, 1])?,
            scale: w.tensor("scaling_layer.scale", &[1, 3, 1, 1])?,
            slices,
            heads,
            widths,
        })
    }

    /// The channel widths of the five taps.
    pub fn widths(&self) -> [usize; 5] {
        self.widths
    }

    /// The LPIPS distance of two `[1, 3, H, W]` images in [−1, 1] (the same H, W; at least
    /// [`MIN_SIDE`] each). Reads back five numbers.
    pub fn distance(&self, x0: &Tensor, x1: &Tensor) -> Result<LpipsDistance> {
        let s = x0.shape();
        if s.len() != 4 || s[0] != 1 || s[1] != 3 || x1.shape() != s {
            return Err(Error::Input {
                what: "LPIPS images".into(),
                detail: format!(
                    "are {:?} and {:?}; both must be [1, 3, H, W] of the same size",
                    s,
                    x1.shape()
                ),
            });
        }
        if s[2] < MIN_SIDE || s[3] < MIN_SIDE {
            return Err(Error::Input {
                what: "LPIPS images".into(),
                detail: format!(
                    "are {}×{}; VGG16's four pools need at least {MIN_SIDE}×{MIN_SIDE} pixels",
                    s[3], s[2]
                ),
            });
        }
        grad::no_grad(|| {
            // Both images in one batch: one pass through the trunk.
            let x = Tensor::concat(&[x0, x1], 0)?
                .sub(&self.shift)?
                .div(&self.scale)?;
            let mut h = x;
            let mut terms = Vec::with_capacity(5);
            for (k, convs) in self.slices.iter().enumerate() {
                if k > 0 {
                    h = h.max_pool2x2()?;
                }
                for conv in convs {
                    h = h.conv2d(
                        &conv.weight,
                        conv.bias.as_ref(),
                        Conv2dOptions {
                            padding: 1,
                            activation: Activation::Relu,
                            ..Default::default()
                        },
                    )?;
                }
                terms.push(self.term(&h, &self.heads[k])?);
            }
            let refs: Vec<&Tensor> = terms.iter().collect();
            let v = Tensor::concat(&refs, 0)?.to_vec()?;
            let mut per_layer = [0.0; 5];
            for (p, &t) in per_layer.iter_mut().zip(&v) {
                *p = t as f64;
            }
            Ok(LpipsDistance {
                distance: per_layer.iter().sum(),
                per_layer,
            })
        })
    }

    /// One tap's term, `[1]`: the head applied to the squared difference of the unit-normalized
    /// features of the two images (batch rows 0 and 1), averaged over pixels.
    fn term(&self, features: &Tensor, head: &Tensor) -> Result<Tensor> {
        let norm = features
            .square()?
            .sum(&[1], true)?
            .sqrt()?
            .add_scalar(EPS)?;
        let unit = features.div(&norm)?;
        let d = unit.slice(0, 0, 1)?.sub(&unit.slice(0, 1, 2)?)?.square()?;
        let weighted = d.conv2d(head, None, Conv2dOptions::default())?;
        Ok(weighted.mean(&[0, 1, 2, 3], false)?.reshape(&[1])?)
    }
}

/// The five stages' widths: the output channels of each stage's first convolution. The other
/// shapes are checked against them as the network asks for its weights.
fn widths(index: &KeyIndex) -> Result<[usize; 5]> {
    let mut widths = [0; 5];
    for (s, convs) in SLICES.iter().enumerate() {
        let key = format!("net.slice{}.{}.weight", s + 1, convs[0]);
        widths[s] = match index.shape(&key) {
            Some(&[c, _, 3, 3]) if c > 0 => c,
            Some(found) => {
                return Err(Error::Input {
                    what: format!("weight `{key}` in {}", index.source()),
                    detail: format!(
                        "has shape {found:?}; LPIPS needs a VGG16 3×3 convolution [out, in, 3, 3] \
                         (is this the file make_lpips_fixtures.py writes?)"
                    ),
                })
            }
            // The index's error names the key, the file and the closest keys it holds.
            None => return Err(missing(index, &key)),
        };
    }
    Ok(widths)
}

fn missing(index: &KeyIndex, key: &str) -> Error {
    match index.lookup(key, &[]) {
        Err(e) => e,
        Ok(_) => Error::Input {
            what: format!("weight `{key}`"),
            detail: "is a scalar".into(),
        },
    }
}
