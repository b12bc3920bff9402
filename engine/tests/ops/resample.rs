//! The separable resampling with PIL's antialiased bicubic weights against an f64 reference (the
//! same weights, f64 sums: what PIL's float mode computes), on odd sizes, crops, shrinking and
//! enlarging; and a photo split over buffers by rows resampled bit for bit as in one buffer.

use iterinv_engine::ops::resample::{resample, Filter, Window};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{assert_close, upload, Rng};

/// `window` of the planar image `x` (`planes` planes of `[h, w]`) resampled: each row by
/// `horizontal`, then each column by `vertical`, every weight and sum in f64 (nothing rounded
/// between the passes).
fn resample_ref(
    x: &[f32],
    (planes, h, w): (usize, usize, usize),
    win: Window,
    vertical: &Filter,
    horizontal: &Filter,
) -> Vec<f64> {
    let mut out = Vec::new();
    for p in 0..planes {
        let at = |y: usize, col: usize| x[(p * h + win.top + y) * w + win.left + col] as f64;
        let rows: Vec<Vec<f64>> = (0..win.height)
            .map(|y| {
                let spans = horizontal.spans().iter();
                spans
                    .map(|(lo, ws)| {
                        ws.iter()
                            .enumerate()
                            .map(|(k, wt)| wt * at(y, lo + k))
                            .sum()
                    })
                    .collect()
            })
            .collect();
        for (lo, ws) in vertical.spans() {
            let column = |col: usize| -> f64 {
                let terms = ws.iter().enumerate();
                terms.map(|(k, wt)| wt * rows[lo + k][col]).sum()
            };
            out.extend((0..horizontal.output()).map(column));
        }
    }
    out
}

/// The most an f32 evaluation can differ from the f64 reference, for inputs of magnitude at most
/// `max_abs`. One pass of n taps sums fl(w_k)·x_k in f32: the weights' rounding, the n products
/// and n − 1 additions give at most (n + 1)·u·Σ|w_k|·max|x| (u = 2⁻²⁴). The second pass adds its
/// own and carries the first's error times Σ|w|, so the total is about
/// (n_h + n_v + 2)·u·L_h·L_v·max|x| with L = max Σ|w| (bicubic's negative lobes make L ≈ 1.1);
/// two more u's of margin for second-order terms.
fn bound(vertical: &Filter, horizontal: &Filter, max_abs: f64) -> f64 {
    let stats = |f: &Filter| {
        let taps = f.spans().iter().map(|(_, w)| w.len()).max().unwrap();
        let l1 = f
            .spans()
            .iter()
            .map(|(_, w)| w.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max);
        (taps as f64, l1)
    };
    let ((nv, lv), (nh, lh)) = (stats(vertical), stats(horizontal));
    (nh + nv + 4.0) * 2f64.powi(-24) * lv * lh * max_abs
}

#[test]
fn bicubic_matches_f64_on_odd_sizes_crops_shrinking_and_enlarging() {
    let mut rng = Rng::new(41);
    let whole = |h, w| Window {
        top: 0,
        left: 0,
        height: h,
        width: w,
    };
    // (planes, h, w, window, out_h, out_w)
    let cases = [
        // A centre crop shrunk (the stage resize of a landscape photo).
        (
            3,
            23,
            37,
            Window {
                top: 0,
                left: 7,
                height: 23,
                width: 23,
            },
            16,
            16,
        ),
        // Stretched and enlarged, non-square.
        (3, 23, 37, whole(23, 37), 29, 53),
        // An off-centre window, shrunk along one axis and enlarged along the other.
        (
            2,
            45,
            17,
            Window {
                top: 3,
                left: 2,
                height: 40,
                width: 11,
            },
            7,
            30,
        ),
        // A large shrink: 77 taps a span.
        (1, 300, 301, whole(300, 301), 16, 16),
        // Identity size: each output is its input up to the weights' normalisation.
        (3, 19, 19, whole(19, 19), 19, 19),
    ];
    for (planes, h, w, win, oh, ow) in cases {
        let data = rng.vec(planes * h * w, -1.0, 1.0);
        let x = upload(&[1, planes, h, w], &data);
        let (v, hz) = (
            Filter::bicubic(win.height, oh),
            Filter::bicubic(win.width, ow),
        );
        let out = resample(&x, win, &v, &hz).unwrap();
        assert_eq!(out.shape(), &[1, planes, oh, ow]);
        let want = resample_ref(&data, (planes, h, w), win, &v, &hz);
        let tol = bound(&v, &hz, 1.0);
        let got = out.to_vec().unwrap();
        let err = got
            .iter()
            .zip(&want)
            .map(|(&g, &e)| (g as f64 - e).abs())
            .fold(0.0, f64::max);
        eprintln!("{h}×{w} {win:?} → {oh}×{ow}: max error {err:.2e} (bound {tol:.2e})");
        assert_close(
            &format!("resample {h}×{w} {win:?} → {oh}×{ow}"),
            &out,
            &want,
            tol,
            0.0,
        );
    }
}

/// A photo in the rows layout `[H, C, W]`, split over buffers by rows on a device with a small
/// binding limit, gives the bits of the same image in one planar buffer: the same taps and sums,
/// one dispatch per buffer.
#[test]
fn rows_split_over_buffers_resample_bit_for_bit_as_one_buffer() {
    let small = Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size: Some(8 * 1024),
        ..Default::default()
    })
    .unwrap();
    let (c, h, w) = (3, 45, 37);
    let data = Rng::new(42).vec(c * h * w, -1.0, 1.0);
    let mut rows = vec![0f32; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                rows[(y * c + ch) * w + x] = data[(ch * h + y) * w + x];
            }
        }
    }
    let split = Tensor::from_f32(&small, &[h, c, w], &rows).unwrap();
    assert!(split.is_chunked(), "20 KB over an 8 KiB binding limit");
    // Rows 4..41: the window starts and ends inside buffers (18 rows each).
    let win = Window {
        top: 4,
        left: 0,
        height: 37,
        width: 37,
    };
    let (v, hz) = (Filter::bicubic(37, 16), Filter::bicubic(37, 16));
    let got = resample(&split, win, &v, &hz).unwrap();
    assert!(got.guards_intact().unwrap());
    let one = resample(&upload(&[1, c, h, w], &data), win, &v, &hz).unwrap();
    let (got, one) = (got.to_vec().unwrap(), one.to_vec().unwrap());
    assert!(got.iter().all(|x| x.is_finite()), "{got:?}");
    let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
    assert_eq!(bits(&got), bits(&one));
}

#[test]
fn windows_and_filters_that_do_not_fit_are_errors() {
    let x = upload(&[1, 3, 10, 12], &[0.0; 360]);
    let win = |top, left, height, width| Window {
        top,
        left,
        height,
        width,
    };
    let f = Filter::bicubic;
    for (window, v, h, expected) in [
        (win(2, 0, 9, 12), f(9, 4), f(12, 4), "outside"),
        (win(0, 0, 0, 12), f(0, 4), f(12, 4), "empty"),
        (win(0, 0, 10, 12), f(9, 4), f(12, 4), "filters read"),
        (win(0, 0, 10, 12), f(10, 0), f(12, 4), "cannot resample"),
    ] {
        let e = resample(&x, window, &v, &h).unwrap_err().to_string();
        assert!(e.contains("resample") && e.contains(expected), "{e}");
    }
    let e = resample(
        &upload(&[3, 10], &[0.0; 30]),
        win(0, 0, 3, 10),
        &f(3, 2),
        &f(10, 2),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("[B, C, H, W] or rows [H, C, W]"), "{e}");
    let tracked = x.requires_grad();
    let e = resample(&tracked, win(0, 0, 10, 12), &f(10, 4), &f(12, 4))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no backward rule"), "{e}");
}
