//! Image similarity for reports, tests and `iterinv score`, on the CPU in f64 (they run once per
//! image and f64 makes them exact to the reference's float64 values): MSE, PSNR and SSIM of planar
//! `[C, H, W]` images. LPIPS and CLIP score need networks and live in `iterinv_models`.
//!
//! SSIM is torchmetrics' `structural_similarity_index_measure` (1.9), as the paper computed it:
//! an 11×11 gaussian window (σ 1.5), K1 0.01, K2 0.03, variances clamped at 0, the image padded
//! by 5 pixels by reflection (PyTorch's "reflect": the edge pixel is not repeated), and the mean
//! over a window centred on every pixel and over channels (torchmetrics 1.9 averages the whole
//! map, border windows included; some older versions cropped the border). Until this version the
//! crate used scikit-image's defaults (7×7 uniform window, sample covariance, no padding), which
//! give other values; [`ssim`] is now torchmetrics' on [−1, 1] images mapped to [0, 1].

/// Mean squared error (in the images' own units).
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()).max(1);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / n as f64
}

/// Peak signal-to-noise ratio in dB for data range 2 ([−1, 1]); infinite for equal images.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    psnr_with_range(a, b, 2.0)
}

/// PSNR in dB, 10·log10(range² / MSE), as torchmetrics' `peak_signal_noise_ratio` with a given
/// `data_range`; infinite for equal images.
pub fn psnr_with_range(a: &[f32], b: &[f32], data_range: f64) -> f64 {
    let m = mse(a, b);
    if m == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (data_range * data_range / m).log10()
    }
}

/// The gaussian window's side and σ (torchmetrics: side = 2·int(3.5σ + 0.5) + 1 = 11).
const WIN: usize = 11;
const SIGMA: f64 = 1.5;

/// SSIM of two `[channels, h, w]` images with values in [−1, 1], as torchmetrics computes it on
/// the same images in [0, 1] with data range 1 (the paper's setting). None when a side is 5
/// pixels or less (the reflection padding needs more) or the lengths do not match the shape.
pub fn ssim(a: &[f32], b: &[f32], channels: usize, h: usize, w: usize) -> Option<f64> {
    let to01 = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| (v as f64 + 1.0) / 2.0).collect() };
    ssim_f64(&to01(a), &to01(b), channels, h, w, 1.0)
}

/// torchmetrics' SSIM of two `[channels, h, w]` images with the given `data_range` (their values
/// as they are). None when a side is 5 pixels or less or the lengths do not match.
pub fn ssim_with_range(
    a: &[f32],
    b: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    data_range: f64,
) -> Option<f64> {
    let f = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| v as f64).collect() };
    ssim_f64(&f(a), &f(b), channels, h, w, data_range)
}

/// The normalized 1-D gaussian of torchmetrics' `_gaussian`: exp(−(d/σ)²/2) at d = −5..5, over its
/// sum. The 2-D window is its outer product, so filtering rows then columns is the same sum.
fn gaussian() -> [f64; WIN] {
    let mut g = [0.0; WIN];
    let half = (WIN / 2) as f64;
    for (i, v) in g.iter_mut().enumerate() {
        let d = (i as f64 - half) / SIGMA;
        *v = (-0.5 * d * d).exp();
    }
    let s: f64 = g.iter().sum();
    g.map(|v| v / s)
}

/// PyTorch's "reflect" padding: index `i` of an axis of length `n` extended by mirroring about
/// the edge pixels (−1 → 1, n → n − 2). Needs n > [`PAD`].
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let r = if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    };
    r as usize
}

const PAD: usize = WIN / 2;

/// Gaussian-weighted means of `x` over the window centred on every pixel of an `[h, w]` plane
/// padded by reflection: `[h, w]`, rows then columns.
fn filter(x: &[f64], h: usize, w: usize, g: &[f64; WIN]) -> Vec<f64> {
    let at = |o: usize, k: usize, n: usize| reflect(o as isize + k as isize - PAD as isize, n);
    let mut rows = vec![0.0; h * w];
    for y in 0..h {
        for o in 0..w {
            rows[y * w + o] = (0..WIN).map(|k| g[k] * x[y * w + at(o, k, w)]).sum();
        }
    }
    let mut out = vec![0.0; h * w];
    for o in 0..h {
        for c in 0..w {
            out[o * w + c] = (0..WIN).map(|k| g[k] * rows[at(o, k, h) * w + c]).sum();
        }
    }
    out
}

fn ssim_f64(
    a: &[f64],
    b: &[f64],
    channels: usize,
    h: usize,
    w: usize,
    data_range: f64,
) -> Option<f64> {
    if h <= PAD || w <= PAD || channels == 0 || a.len() != channels * h * w || b.len() != a.len() {
        return None;
    }
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let g = gaussian();
    let (mut total, mut count) = (0.0, 0usize);
    for c in 0..channels {
        let x = &a[c * h * w..(c + 1) * h * w];
        let y = &b[c * h * w..(c + 1) * h * w];
        let prod = |f: fn(f64, f64) -> f64| -> Vec<f64> {
            x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect()
        };
        let mx = filter(x, h, w, &g);
        let my = filter(y, h, w, &g);
        let mxx = filter(&prod(|p, _| p * p), h, w, &g);
        let myy = filter(&prod(|_, q| q * q), h, w, &g);
        let mxy = filter(&prod(|p, q| p * q), h, w, &g);
        for i in 0..mx.len() {
            let (ux, uy) = (mx[i], my[i]);
            let vx = (mxx[i] - ux * ux).max(0.0);
            let vy = (myy[i] - uy * uy).max(0.0);
            let vxy = mxy[i] - ux * uy;
            total += (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    Some(total / count as f64)
}

/// The paper's MSE, PSNR and SSIM of a scored image against its reference, both `[3, h, w]` in
/// [0, 1] (spec/method.md, "Evaluation in the paper").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelScores {
    /// Mean squared error in [0, 1] units.
    pub mse: f64,
    /// PSNR with data range = the reference's max − min (torchmetrics' default); infinite for
    /// equal images.
    pub psnr: f64,
    /// torchmetrics SSIM, data range 1; None when a side is 5 pixels or less.
    pub ssim: Option<f64>,
}

/// [`PixelScores`] of `scored` against `reference` (`[channels, h, w]`, values in [0, 1]).
pub fn pixel_scores(
    reference: &[f32],
    scored: &[f32],
    channels: usize,
    h: usize,
    w: usize,
) -> PixelScores {
    let (lo, hi) = reference
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v as f64), hi.max(v as f64))
        });
    PixelScores {
        mse: mse(reference, scored),
        psnr: psnr_with_range(reference, scored, hi - lo),
        ssim: ssim_with_range(reference, scored, channels, h, w, 1.0),
    }
}
