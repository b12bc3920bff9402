//! PIL's separable resampling with its bicubic filter (a = −0.5), antialiased, on 8-bit levels:
//! [`bicubic_u8`] rounds each pass to levels, like PIL's and torch's uint8 resize. The filter's
//! weights are [`Filter::bicubic`]'s, which also drive the GPU resize of every photo
//! (`image_io::resize_for_stage`).

use iterinv_engine::ops::resample::Filter;

/// The filter on 8-bit levels (values 0..=255 as f32) of a `[h, w]` plane resized to
/// `[out_h, out_w]`, as Pillow and torch's native uint8 kernel resize: horizontal then vertical,
/// f64 weights and sums, each pass rounded to the nearest level and clamped. (CLIPProcessor
/// resizes uint8 images this way.)
pub fn bicubic_u8(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let level = |s: f64| s.round().clamp(0.0, 255.0) as f32;
    let cx = Filter::bicubic(w, out_w);
    let mut horizontal = vec![0f32; h * out_w];
    for y in 0..h {
        for (x, (lo, ws)) in cx.spans().iter().enumerate() {
            let s: f64 = ws
                .iter()
                .enumerate()
                .map(|(k, &wt)| wt * plane[y * w + lo + k] as f64)
                .sum();
            horizontal[y * out_w + x] = level(s);
        }
    }
    let cy = Filter::bicubic(h, out_h);
    let mut out = vec![0f32; out_h * out_w];
    for (y, (lo, ws)) in cy.spans().iter().enumerate() {
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
