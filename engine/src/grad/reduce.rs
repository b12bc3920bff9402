//! Backward rules of the reductions (the ops record them in `ops::reduce`).

use iterinv_kernels::families::reduce::QUANTILE_GRAD;

use crate::error::{shape_err, Result};
use crate::launch::{to_u32, Launch, Params};
use crate::ops::reduce::select_ranks;
use crate::ops::shape::strided_gather;
use crate::tensor::Tensor;

/// Sum and mean: `g` (shaped like the output, with or without the reduced dims) broadcast back over
/// the reduced dims of `x_shape` and scaled (1 for sum, 1/count for mean, the forward's own f32
/// factor), in one launch.
pub(crate) fn sum_grad(
    g: &Tensor,
    keep_shape: &[usize],
    x_shape: &[usize],
    scale: f32,
) -> Result<Tensor> {
    broadcast_scaled("sum backward", &g.reshape(keep_shape)?, x_shape, scale)
}

/// Quantile of each sample, (1 − w)·v_lo + w·v_hi: the elements at ranks `k_lo` and `k_hi` get
/// g·(1 − w) and g·w, split evenly among elements equal to them (see reduce_quantile_grad.wgsl; torch
/// gives each share to a single element chosen by its sort order). The two values are selected
/// again by the forward's kernel rather than saved, so the forward costs nothing extra when no
/// gradient is asked for.
pub(crate) fn quantile_grad(
    x: &Tensor,
    g: &Tensor,
    k_lo: usize,
    k_hi: usize,
    w: f32,
) -> Result<Tensor> {
    const OP: &str = "quantile backward";
    let batch = g.numel();
    let n = x.numel() / batch.max(1);
    let gpu = x.gpu();
    if batch == 0 {
        return Tensor::uninit(gpu, x.shape(), OP);
    }
    let vlo = Tensor::uninit(gpu, &[batch], OP)?;
    select_ranks(OP, x, &vlo, k_lo, k_lo, 0.0)?;
    let vhi = if k_hi == k_lo {
        vlo.clone()
    } else {
        let t = Tensor::uninit(gpu, &[batch], OP)?;
        select_ranks(OP, x, &t, k_hi, k_hi, 0.0)?;
        t
    };
    let out = Tensor::uninit(gpu, x.shape(), OP)?;
    gpu.launch(
        Launch::new(&QUANTILE_GRAD)
            .input(x.bind(OP)?)
            .input(g.bind(OP)?)
            .input(vlo.bind(OP)?)
            .input(vhi.bind(OP)?)
            .output(out.bind(OP)?)
            .params(
                Params::new()
                    .u32(to_u32(OP, batch)?)
                    .u32(to_u32(OP, n)?)
                    .f32(w),
            )
            .groups(gpu.grid(batch as u64)?),
    )?;
    Ok(out)
}

/// `scale · x` broadcast to `shape` (same rank; each dim of x is 1 or equal to shape's), in one
/// launch. Runs of dims that stay contiguous (or all broadcast) are merged.
fn broadcast_scaled(op: &'static str, x: &Tensor, shape: &[usize], scale: f32) -> Result<Tensor> {
    let xs = x.shape();
    if xs.len() != shape.len() || xs.iter().zip(shape).any(|(&a, &b)| a != 1 && a != b) {
        return shape_err(op, format!("cannot broadcast {xs:?} to {shape:?}"));
    }
    let mut stride = vec![1usize; xs.len()];
    for d in (0..xs.len().saturating_sub(1)).rev() {
        stride[d] = stride[d + 1] * xs[d + 1];
    }
    let mut dims: Vec<(usize, usize)> = Vec::new();
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let s = if xs[d] == 1 { 0 } else { stride[d] };
        match dims.last_mut() {
            // Row-major: index i·e + j lands at i·S + j·s, the same as (i·e + j)·s, iff S = e·s.
            Some(last) if last.1 == shape[d] * s => {
                last.0 *= shape[d];
                last.1 = s;
            }
            _ => dims.push((shape[d], s)),
        }
    }
    strided_gather(op, x, shape, &dims, scale)
}
