//! PIL's separable resampling with its bicubic filter (a = −0.5), antialiased: when shrinking,
//! the filter is stretched by the scale factor so every source pixel contributes. Computed in
//! f64 weights over f32 data, horizontally then vertically, like PIL's float ("F") mode;
//! [`bicubic_u8`] rounds each pass to 8-bit levels, like PIL's and torch's uint8 resize.

fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output index: the first input index and the normalized weights.
fn coefficients(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..output)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(input);
            let mut w: Vec<f64> = (lo..hi)
                .map(|i| cubic((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (lo, w)
        })
        .collect()
}

/// Resize a `[h, w]` plane to `[out_h, out_w]`.
pub fn bicubic(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let cx = coefficients(w, out_w);
    let mut horizontal = vec![0f32; h * out_w];
    for y in 0..h {
        for (x, (lo, ws)) in cx.iter().enumerate() {
            let s: f64 = ws
                .iter()
                .enumerate()
                .map(|(k, &wt)| wt * plane[y * w + lo + k] as f64)
                .sum();
            horizontal[y * out_w + x] = s as f32;
        }
    }
    let cy = coefficients(h, out_h);
    let mut out = vec![0f32; out_h * out_w];
    for (y, (lo, ws)) in cy.iter().enumerate() {
        for x in 0..out_w {
            let s: f64 = ws
                .iter()
                .enumerate()
                .map(|(k, &wt)| wt * horizontal[(lo + k) * out_w + x] as f64)
                .sum();
            out[y * out_w + x] = s as f32;
        }
    }
    out
}

/// The same filter on 8-bit levels (values 0..=255 as f32), as Pillow and torch's native uint8
/// kernel resize: horizontal then vertical, each pass rounded to the nearest level and clamped.
/// (CLIPProcessor resizes uint8 images this way.)
pub fn bicubic_u8(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let level = |s: f64| s.round().clamp(0.0, 255.0) as f32;
    let cx = coefficients(w, out_w);
    let mut horizontal = vec![0f32; h * out_w];
    for y in 0..h {
        for (x, (lo, ws)) in cx.iter().enumerate() {
            let s: f64 = ws
                .iter()
                .enumerate()
                .map(|(k, &wt)| wt * plane[y * w + lo + k] as f64)
                .sum();
            horizontal[y * out_w + x] = level(s);
        }
    }
    let cy = coefficients(h, out_h);
    let mut out = vec![0f32; out_h * out_w];
    for (y, (lo, ws)) in cy.iter().enumerate() {
        for x in 0..out_w {
            let s: f64 = ws
                .iter()
                .enumerate()
                .map(|(k, &wt)| wt * horizontal[(lo + k) * out_w + x] as f64)
                .sum();
            out[y * out_w + x] = level(s);
        }
    }
    out
}
