//! Reductions: sum and mean over any set of dims (f32 accumulation, workgroup trees), and the
//! per-sample quantile (radix select on the GPU, no sort) that IF's dynamic thresholding needs. All
//! three record their backward rules (in `grad::reduce`) when the input is tracked.

use iterinv_kernels::families::reduce::{QUANTILE, SUM};

use crate::error::{invalid, shape_err, Result};
use crate::grad::{self, reduce as rules};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::tensor::Tensor;

const WG: usize = 256;
/// Fewer workgroups than this and a long reduced axis is split into segments summed in a second
/// launch, so a whole-tensor sum does not run on one workgroup.
const MIN_GROUPS: usize = 512;
/// Elements per lane below which splitting the axis further does not pay.
const MIN_PER_LANE: usize = 16;

/// x viewed as [outer, r, inner] summed over r and scaled, as a flat [outer·inner] tensor.
fn sum_axis(
    op: &'static str,
    x: &Tensor,
    outer: usize,
    r: usize,
    inner: usize,
    scale: f32,
) -> Result<Tensor> {
    let out = Tensor::uninit(x.gpu(), &[outer * inner], op)?;
    if outer * inner == 0 {
        return Ok(out);
    }
    // Lanes across columns when the reduced axis is not the last one, so neighbouring lanes load
    // neighbouring addresses; all lanes along the axis when it is.
    let tx = inner.next_power_of_two().min(64);
    let ty = WG / tx;
    let tiles = inner.div_ceil(tx);
    let groups = outer * tiles;
    let mut segs = 1;
    if groups < MIN_GROUPS {
        segs = r
            .div_ceil(ty * MIN_PER_LANE)
            .min(MIN_GROUPS.div_ceil(groups))
            .max(1);
    }
    let seg_len = r.div_ceil(segs).max(1);
    let segs = r.div_ceil(seg_len).max(1);
    let target = if segs == 1 {
        out.clone()
    } else {
        Tensor::uninit(x.gpu(), &[outer * segs * inner], op)?
    };
    let gpu = x.gpu();
    let params = Params::new()
        .u32(to_u32(op, outer)?)
        .u32(to_u32(op, r)?)
        .u32(to_u32(op, inner)?)
        .u32(tiles as u32)
        .u32(segs as u32)
        .u32(to_u32(op, seg_len)?)
        .f32(if segs == 1 { scale } else { 1.0 });
    gpu.launch(
        Launch::new(&SUM)
            .constant("TX", format!("{tx}u"))
            .input(x.bind(op)?)
            .output(target.bind(op)?)
            .params(params)
            .groups(gpu.grid((groups * segs) as u64)?),
    )?;
    if segs == 1 {
        return Ok(out);
    }
    sum_axis(op, &target, outer, segs, inner, scale)
}

/// Shared by sum and mean: validate `dims`, then reduce each run of adjacent dims in turn (last run
/// first, so the earlier dims keep their indices), scaling by `1/count` at the end for a mean.
fn reduce(
    op: &'static str,
    x: &Tensor,
    dims: &[usize],
    keepdim: bool,
    mean: bool,
) -> Result<Tensor> {
    expect_float(op, "x", x)?;
    let shape = x.shape().to_vec();
    let mut sorted = dims.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if dims.is_empty() || sorted.len() != dims.len() || sorted.iter().any(|&d| d >= shape.len()) {
        return shape_err(
            op,
            format!("dims {dims:?} must be distinct dims of shape {shape:?} (at least one)"),
        );
    }
    let count: usize = sorted.iter().map(|&d| shape[d]).product();
    if mean && count == 0 {
        return invalid(
            op,
            format!("mean over dims {dims:?} of shape {shape:?} has no elements"),
        );
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &d in &sorted {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == d => run.1 = d,
            _ => runs.push((d, d)),
        }
    }
    let mut cur = x.clone();
    let mut cur_shape = shape.clone();
    let scale = if mean { 1.0 / count as f32 } else { 1.0 };
    for (k, &(a, b)) in runs.iter().enumerate().rev() {
        let outer: usize = cur_shape[..a].iter().product();
        let r: usize = cur_shape[a..=b].iter().product();
        let inner: usize = cur_shape[b + 1..].iter().product();
        cur = sum_axis(op, &cur, outer, r, inner, if k == 0 { scale } else { 1.0 })?;
        cur_shape.drain(a..=b);
    }
    let keep_shape: Vec<usize> = (0..shape.len())
        .map(|d| if sorted.contains(&d) { 1 } else { shape[d] })
        .collect();
    let out = cur.reshape(if keepdim { &keep_shape } else { &cur_shape })?;
    Ok(grad::record(op, out, &[x], move |g, _| {
        Ok(vec![Some(rules::sum_grad(g, &keep_shape, &shape, scale)?)])
    }))
}

/// Sum over `dims` (any distinct dims, in any order), accumulated in f32.
pub fn sum(x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce("sum", x, dims, keepdim, false)
}

/// Mean over `dims` (any distinct dims, in any order), accumulated in f32.
pub fn mean(x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce("mean", x, dims, keepdim, true)
}

/// The `q`-quantile of each sample (dim 0) over all its other elements, output `[B]`: linear
/// interpolation as torch.quantile, pos = q·(n−1) computed in f32 as torch does for f32 inputs,
/// v_lo + (v_hi − v_lo)·(pos − floor(pos)). Runs on the GPU by radix select (no sort, no readback).
/// NaN inputs sort above +inf instead of poisoning the result.
pub fn quantile(x: &Tensor, q: f32) -> Result<Tensor> {
    let op = "quantile";
    expect_float(op, "x", x)?;
    if !(0.0..=1.0).contains(&q) {
        return invalid(op, format!("q = {q} is outside [0, 1]"));
    }
    if x.rank() == 0 {
        return shape_err(op, "x must have a batch dim, got a scalar (shape [])");
    }
    let batch = x.shape()[0];
    let out = Tensor::uninit(x.gpu(), &[batch], op)?;
    // An empty batch still records, so its (empty) gradient can be asked for.
    let (mut k_lo, mut k_hi, mut w) = (0, 0, 0.0);
    if let Some(n) = x.numel().checked_div(batch) {
        if n == 0 {
            return shape_err(
                op,
                format!("the samples of shape {:?} are empty", x.shape()),
            );
        }
        let pos = q * (n - 1) as f32;
        let (lo, hi) = (pos.floor(), pos.ceil());
        (k_lo, k_hi, w) = ((lo as usize).min(n - 1), (hi as usize).min(n - 1), pos - lo);
        select_ranks(op, x, &out, k_lo, k_hi, w)?;
    }
    let saved = x.detach();
    Ok(grad::record(op, out, &[x], move |g, _| {
        Ok(vec![Some(rules::quantile_grad(&saved, g, k_lo, k_hi, w)?)])
    }))
}

/// out[b] = v_lo + (v_hi − v_lo)·w where v_lo, v_hi are the elements of sample b at ranks k_lo and
/// k_hi in ascending order (w = 0 or k_lo = k_hi gives v_lo exactly).
pub(crate) fn select_ranks(
    op: &'static str,
    x: &Tensor,
    out: &Tensor,
    k_lo: usize,
    k_hi: usize,
    w: f32,
) -> Result<()> {
    let batch = out.numel();
    let n = x.numel() / batch.max(1);
    let gpu = x.gpu();
    // Each invocation loops over n/256 elements in each of 4 passes (reduce_quantile.wgsl): under a
    // loop cap (lavapipe) longer samples are refused rather than answered wrongly. The backward's
    // kernel loops half as much and goes through here first.
    if let Some(cap) = gpu.caps().max_loop_iterations {
        let iterations = 4 * (n.div_ceil(256) + 8) + 4;
        if iterations as u64 > cap / 2 {
            return invalid(
                op,
                format!(
                    "samples of {n} elements (x {:?}) need {iterations} loop iterations per \
                     invocation, over half of this adapter's cap of {cap}",
                    x.shape()
                ),
            );
        }
    }
    gpu.launch(
        Launch::new(&QUANTILE)
            .input(x.bind(op)?)
            .output(out.bind(op)?)
            .params(
                Params::new()
                    .u32(to_u32(op, batch)?)
                    .u32(to_u32(op, n)?)
                    .u32(to_u32(op, k_lo)?)
                    .u32(to_u32(op, k_hi)?)
                    .f32(w),
            )
            .groups(gpu.grid(batch as u64)?),
    )
}

impl Tensor {
    /// See [`sum`].
    pub fn sum(&self, dims: &[usize], keepdim: bool) -> Result<Tensor> {
        sum(self, dims, keepdim)
    }
    /// See [`mean`].
    pub fn mean(&self, dims: &[usize], keepdim: bool) -> Result<Tensor> {
        mean(self, dims, keepdim)
    }
    /// See [`quantile`].
    pub fn quantile(&self, q: f32) -> Result<Tensor> {
        quantile(self, q)
    }
}
