//! Separable resampling with filter taps computed on the host: every output pixel is a weighted
//! sum of a span of input pixels, first along each row of a window of the image, then along each
//! column. [`Filter::bicubic`] gives PIL's antialiased bicubic, the resize every photo goes
//! through on its way to a stage: weights in f64 as PIL computes them, uploaded as f32, sums
//! accumulated in f32 (PIL's float mode accumulates in f64; the difference is a few f32
//! roundings per pass, see the kernel).
//!
//! The input is `[B, C, H, W]`, or a photo in the rows layout `[H, C, W]`: a tensor split along
//! its first dimension keeps whole image rows in each buffer, so a photo larger than one storage
//! binding (a 12-megapixel one is 144 MB as f32; lavapipe binds 128 MiB) is filtered one
//! buffer at a time.

use iterinv_kernels::families::shape::RESAMPLE;

use crate::error::{invalid, shape_err, Result};
use crate::grad;
use crate::launch::{expect_float, to_u32, Binding, Launch, Params};
use crate::tensor::Tensor;

const WG: u64 = 256;

/// How one axis is resampled: for each output, the first input it reads and the weights of the
/// inputs from there on.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    input: usize,
    spans: Vec<(usize, Vec<f64>)>,
}

/// PIL's bicubic kernel (a = −0.5).
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

impl Filter {
    /// PIL's antialiased bicubic from `input` samples to `output` (Pillow's `precompute_coeffs`):
    /// when shrinking, the kernel is stretched by the scale so every input contributes; each
    /// output's weights are normalized to sum to 1.
    pub fn bicubic(input: usize, output: usize) -> Filter {
        let scale = input as f64 / output as f64;
        let filter_scale = scale.max(1.0);
        let support = 2.0 * filter_scale;
        let spans = (0..output)
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
            .collect();
        Filter { input, spans }
    }

    /// The number of input samples the filter reads from.
    pub fn input(&self) -> usize {
        self.input
    }

    /// The number of outputs.
    pub fn output(&self) -> usize {
        self.spans.len()
    }

    /// For each output: its first input and the weights from there on (what a CPU resize sums).
    pub fn spans(&self) -> &[(usize, Vec<f64>)] {
        &self.spans
    }

    /// The longest span.
    fn taps(&self) -> usize {
        self.spans.iter().map(|(_, w)| w.len()).max().unwrap_or(0)
    }

    /// The spans as (start, count) pairs and the weights as f32, zero-padded to `taps` each,
    /// uploaded for the kernel.
    fn upload(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let taps = self.taps().max(1);
        let mut spans = Vec::with_capacity(2 * self.output());
        let mut weights = vec![0f32; taps * self.output()];
        for (o, (start, w)) in self.spans.iter().enumerate() {
            spans.push(to_u32("resample", *start)? as i32);
            spans.push(w.len() as i32);
            for (k, &v) in w.iter().enumerate() {
                weights[o * taps + k] = v as f32;
            }
        }
        Ok((
            Tensor::from_i32(x.gpu(), &[self.output(), 2], &spans)?,
            Tensor::from_f32(x.gpu(), &[self.output(), taps], &weights)?,
        ))
    }
}

/// A rectangle of an image: rows `top..top + height`, columns `left..left + width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// How the kernel walks one pass: strides of the source (plane, other axis, filtered axis) and
/// of the output (plane, other axis, filtered axis), and the source's offset along the filtered
/// axis.
struct Pass<'a> {
    filter: (&'a Tensor, &'a Tensor, usize),
    planes: usize,
    n_o: usize,
    src: [usize; 3],
    s0: usize,
    dst: [usize; 3],
}

impl Pass<'_> {
    /// Positions `a_dst..a_dst + n_a` along the other axis, read from `a_src..` of `x`.
    fn launch(
        &self,
        x: Binding,
        out: &Tensor,
        a_src: usize,
        a_dst: usize,
        n_a: usize,
    ) -> Result<()> {
        let op = "resample";
        let n = self.planes * n_a * self.n_o;
        if n == 0 {
            return Ok(());
        }
        let gpu = out.gpu();
        let (spans, weights, taps) = self.filter;
        let u = |v: usize| to_u32(op, v);
        gpu.launch(
            Launch::new(&RESAMPLE)
                .input(x)
                .input(spans.bind(op)?)
                .input(weights.bind(op)?)
                .output(out.bind(op)?)
                .params(
                    Params::new()
                        .u32(u(n)?)
                        .u32(u(self.n_o)?)
                        .u32(u(n_a)?)
                        .u32(u(a_src)?)
                        .u32(u(a_dst)?)
                        .u32(u(taps)?)
                        .u32(u(self.src[0])?)
                        .u32(u(self.src[1])?)
                        .u32(u(self.src[2])?)
                        .u32(u(self.s0)?)
                        .u32(u(self.dst[0])?)
                        .u32(u(self.dst[1])?)
                        .u32(u(self.dst[2])?),
                )
                .groups(gpu.grid((n as u64).div_ceil(WG))?),
        )
    }
}

/// `window` of `x` resampled to `[B, C, vertical.output(), horizontal.output()]`: each row
/// filtered by `horizontal` (its input is the window's width), then each column by `vertical`
/// (the window's height), as PIL resizes. `x` is `[B, C, H, W]` or a photo in the rows layout
/// `[H, C, W]` (then B = 1), which may be split over buffers. Forward only: an input tracked by
/// autodiff is refused.
pub fn resample(
    x: &Tensor,
    window: Window,
    vertical: &Filter,
    horizontal: &Filter,
) -> Result<Tensor> {
    let op = "resample";
    expect_float(op, "x", x)?;
    let s = x.shape();
    // (batch, channels, height, width, plane stride, row stride)
    let (b, c, h, w, plane, row) = match *s {
        [b, c, h, w] => (b, c, h, w, h * w, w),
        [h, c, w] => (1, c, h, w, w, c * w),
        _ => {
            return shape_err(
                op,
                format!("expected [B, C, H, W] or rows [H, C, W], got {s:?}"),
            )
        }
    };
    let Window {
        top,
        left,
        height,
        width,
    } = window;
    if height == 0 || width == 0 || top + height > h || left + width > w {
        return shape_err(
            op,
            format!("window {window:?} is empty or outside the {w}×{h} image {s:?}"),
        );
    }
    if vertical.input() != height || horizontal.input() != width {
        return shape_err(
            op,
            format!(
                "filters read {}×{} inputs (width × height), the window is {width}×{height}",
                horizontal.input(),
                vertical.input()
            ),
        );
    }
    let (out_h, out_w) = (vertical.output(), horizontal.output());
    if out_h == 0 || out_w == 0 {
        return shape_err(op, format!("cannot resample to {out_w}×{out_h}"));
    }
    if grad::recording(&[x]) {
        return invalid(op, "has no backward rule; call it on an untracked tensor");
    }
    // Each invocation loops over one span: under a loop cap (lavapipe) longer ones are refused
    // rather than summed short. (Shrinking by s takes about 4s taps: 16384 px to 16 is 4097.)
    let taps = vertical.taps().max(horizontal.taps());
    if let Some(cap) = x.gpu().caps().max_loop_iterations {
        if taps as u64 > cap / 2 {
            return invalid(
                op,
                format!(
                    "a span of {taps} taps exceeds half of this adapter's loop cap of {cap}: \
                     shrink the image in steps"
                ),
            );
        }
    }
    let planes = b * c;
    let gpu = x.gpu();

    // Rows: [planes, height, out_w], one dispatch per buffer of x that holds rows of the window.
    let (spans, weights) = horizontal.upload(x)?;
    let mid = Tensor::uninit(gpu, &[planes, height, out_w], op)?;
    let rows = Pass {
        filter: (&spans, &weights, horizontal.taps().max(1)),
        planes,
        n_o: out_w,
        src: [plane, row, 1],
        s0: left,
        dst: [height * out_w, out_w, 1],
    };
    if s.len() == 4 {
        rows.launch(x.bind(op)?, &mid, top, 0, height)?;
    } else {
        for i in 0..x.chunk_count() {
            let held = x.chunk_rows(i);
            let (lo, hi) = (held.start.max(top), held.end.min(top + height));
            if lo < hi {
                rows.launch(x.bind_chunk(i), &mid, lo - held.start, lo - top, hi - lo)?;
            }
        }
    }

    // Columns: [B, C, out_h, out_w].
    let (spans, weights) = vertical.upload(x)?;
    let out = Tensor::uninit(gpu, &[b, c, out_h, out_w], op)?;
    Pass {
        filter: (&spans, &weights, vertical.taps().max(1)),
        planes,
        n_o: out_h,
        src: [height * out_w, 1, out_w],
        s0: 0,
        dst: [out_h * out_w, 1, out_w],
    }
    .launch(mid.bind(op)?, &out, 0, 0, out_w)?;
    Ok(out)
}
