//! Spatial ops on [B, C, H, W]: nearest 2× upsampling, bilinear resize (align_corners), 2×2
//! average and max pooling, and the launchers their backward rules share (padded nearest
//! upsampling, 2×2 block sums). Outputs are fresh contiguous f32 tensors; each op records its
//! backward rule (in `grad::shape`) when its input is tracked.

use iterinv_kernels::families::shape::{
    AVG_POOL2X2, MAX_POOL2X2, RESIZE_BILINEAR, UPSAMPLE_NEAREST2X,
};
use iterinv_kernels::Kernel;

use crate::error::{invalid, shape_err, Result};
use crate::grad::{self, shape as rules};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::tensor::Tensor;

const WG: u64 = 256;

/// [B, C, H, W] as (planes, h, w), or an error naming the op.
fn planes(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    expect_float(op, "x", x)?;
    if x.rank() != 4 {
        return shape_err(op, format!("expected [B, C, H, W], got {:?}", x.shape()));
    }
    let s = x.shape();
    Ok((s[0] * s[1], s[2], s[3]))
}

fn launch_map(
    op: &'static str,
    kernel: &'static Kernel,
    x: &Tensor,
    shape: &[usize],
    params: impl FnOnce(u32) -> Params,
) -> Result<Tensor> {
    let out = Tensor::uninit(x.gpu(), shape, op)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let gpu = x.gpu();
    gpu.launch(
        Launch::new(kernel)
            .input(x.bind(op)?)
            .output(out.bind(op)?)
            .params(params(to_u32(op, n)?))
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}

/// Nearest-neighbour 2× upsampling of [B, C, H, W] to [B, C, 2H, 2W].
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let op = "upsample_nearest2x";
    let (_, h, w) = planes(op, x)?;
    let out = upsample2x_padded(op, x, 2 * h, 2 * w, 1.0)?;
    Ok(grad::record(op, out, &[x], |g, _| {
        Ok(vec![Some(block_sum2x2(
            "upsample_nearest2x backward",
            g,
            1.0,
        )?)])
    }))
}

/// scale · x[.., y/2, x/2] for [B, C, H, W] into [B, C, out_h, out_w]; rows and columns past 2H, 2W
/// are zeros (the backward of an odd-sized average pool needs one such row or column).
pub(crate) fn upsample2x_padded(
    op: &'static str,
    x: &Tensor,
    out_h: usize,
    out_w: usize,
    scale: f32,
) -> Result<Tensor> {
    let s = x.shape();
    let (h, w) = (s[2], s[3]);
    launch_map(
        op,
        &UPSAMPLE_NEAREST2X,
        x,
        &[s[0], s[1], out_h, out_w],
        |n| {
            Params::new()
                .u32(n)
                .u32(h as u32)
                .u32(w as u32)
                .u32(out_h as u32)
                .u32(out_w as u32)
                .f32(scale)
        },
    )
}

/// Bilinear resize of [B, C, H, W] to [B, C, out_h, out_w] with align_corners = true
/// (F.interpolate(mode="bilinear", align_corners=True)), sizes 1 included.
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let op = "resize_bilinear";
    let (_, h, w) = planes(op, x)?;
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return shape_err(
            op,
            format!(
                "cannot resize {:?} to {out_h}×{out_w}: sizes must be positive",
                x.shape()
            ),
        );
    }
    let s = x.shape();
    let out = launch_map(op, &RESIZE_BILINEAR, x, &[s[0], s[1], out_h, out_w], |n| {
        Params::new()
            .u32(n)
            .u32(h as u32)
            .u32(w as u32)
            .u32(out_h as u32)
            .u32(out_w as u32)
            .f32(bilinear_scale(h, out_h))
            .f32(bilinear_scale(w, out_w))
    })?;
    Ok(grad::record(op, out, &[x], move |g, _| {
        Ok(vec![Some(rules::resize_bilinear_grad(g, h, w)?)])
    }))
}

/// PyTorch's area_pixel_compute_scale for align_corners, in f32 as it computes it for f32 tensors.
pub(crate) fn bilinear_scale(input: usize, output: usize) -> f32 {
    if output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        0.0
    }
}

/// 2×2 average pooling with stride 2 of [B, C, H, W] to [B, C, H/2, W/2] (floored, as AvgPool2d(2)).
pub fn avg_pool2x2(x: &Tensor) -> Result<Tensor> {
    let op = "avg_pool2x2";
    let (_, h, w) = planes(op, x)?;
    let (oh, ow) = (h / 2, w / 2);
    if oh == 0 || ow == 0 {
        return shape_err(
            op,
            format!("input {:?} is smaller than the 2×2 window", x.shape()),
        );
    }
    let out = block_sum2x2(op, x, 0.25)?;
    Ok(grad::record(op, out, &[x], move |g, _| {
        // Each input of a window gets a quarter of its gradient; a dropped odd row/column gets 0.
        Ok(vec![Some(upsample2x_padded(
            "avg_pool2x2 backward",
            g,
            h,
            w,
            0.25,
        )?)])
    }))
}

/// 2×2 max pooling with stride 2 of [B, C, H, W] to [B, C, H/2, W/2] (floored, as MaxPool2d(2),
/// VGG's pooling); a NaN in a window gives NaN, as PyTorch. Forward only: no network iterinv
/// differentiates through pools by maximum, so tracking an input is an error rather than a
/// silently missing gradient (inside `grad::no_grad` it runs).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let op = "max_pool2x2";
    let (_, h, w) = planes(op, x)?;
    let (oh, ow) = (h / 2, w / 2);
    if oh == 0 || ow == 0 {
        return shape_err(
            op,
            format!("input {:?} is smaller than the 2×2 window", x.shape()),
        );
    }
    if grad::recording(&[x]) {
        return invalid(op, "has no backward rule; call it on an untracked tensor");
    }
    let s = x.shape();
    launch_map(op, &MAX_POOL2X2, x, &[s[0], s[1], oh, ow], |n| {
        Params::new()
            .u32(n)
            .u32(h as u32)
            .u32(w as u32)
            .u32(oh as u32)
            .u32(ow as u32)
    })
}

/// scale · (sum of each 2×2 block) of [B, C, H, W] into [B, C, H/2, W/2] (floored).
pub(crate) fn block_sum2x2(op: &'static str, x: &Tensor, scale: f32) -> Result<Tensor> {
    let s = x.shape();
    let (h, w) = (s[2], s[3]);
    let (oh, ow) = (h / 2, w / 2);
    launch_map(op, &AVG_POOL2X2, x, &[s[0], s[1], oh, ow], |n| {
        Params::new()
            .u32(n)
            .u32(h as u32)
            .u32(w as u32)
            .u32(oh as u32)
            .u32(ow as u32)
            .f32(scale)
    })
}
