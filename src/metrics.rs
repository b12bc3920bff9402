//! Image similarity for reports and tests, on the CPU in f64 (they run once per image):
//! MSE, PSNR and SSIM of `[C, H, W]` images with values in [−1, 1] (data range 2).
//! SSIM follows scikit-image's `structural_similarity` defaults: 7×7 uniform window, sample
//! covariance, K1 0.01, K2 0.03, mean over the windows that fit, averaged over channels.

/// Mean squared error.
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
    let m = mse(a, b);
    if m == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (4.0 / m).log10()
    }
}

const WIN: usize = 7;

/// Structural similarity of two `[channels, h, w]` images (data range 2). Images smaller than
/// the 7×7 window give None.
pub fn ssim(a: &[f32], b: &[f32], channels: usize, h: usize, w: usize) -> Option<f64> {
    if h < WIN || w < WIN || a.len() != channels * h * w || b.len() != a.len() || channels == 0 {
        return None;
    }
    let (c1, c2) = ((0.01f64 * 2.0).powi(2), (0.03f64 * 2.0).powi(2));
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let mut total = 0.0;
    for c in 0..channels {
        let plane = |img: &[f32]| -> Vec<f64> {
            img[c * h * w..(c + 1) * h * w]
                .iter()
                .map(|&v| v as f64)
                .collect()
        };
        let (x, y) = (plane(a), plane(b));
        let (mut sum, mut count) = (0.0, 0usize);
        for i in 0..=h - WIN {
            for j in 0..=w - WIN {
                let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for di in 0..WIN {
                    for dj in 0..WIN {
                        let k = (i + di) * w + j + dj;
                        let (p, q) = (x[k], y[k]);
                        sx += p;
                        sy += q;
                        sxx += p * p;
                        syy += q * q;
                        sxy += p * q;
                    }
                }
                let (ux, uy) = (sx / np, sy / np);
                let vx = cov_norm * (sxx / np - ux * ux);
                let vy = cov_norm * (syy / np - uy * uy);
                let vxy = cov_norm * (sxy / np - ux * uy);
                let s = (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
                    / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
                sum += s;
                count += 1;
            }
        }
        total += sum / count as f64;
    }
    Some(total / channels as f64)
}
