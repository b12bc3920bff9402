//! Shape ops: concat, slice, split, chunk, permute/transpose and the embedding gather (the spatial
//! ones, resizing and pooling [B, C, H, W], are in `spatial`, re-exported here). Outputs are fresh contiguous f32
//! tensors (16-bit inputs are widened); `reshape` (free) lives on [`Tensor`]. Every op records its
//! backward rule (in `grad::shape`) when an input is tracked; the launchers the rules share with the
//! forward ops (block copy, strided gather, 2×2 block sums, padded nearest upsampling) live here.

use iterinv_kernels::families::shape::{COPY, EMBEDDING, PERMUTE};

use crate::error::{invalid, shape_err, Error, Result};
use crate::grad::{self, shape as rules};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::tensor::{DType, Tensor};

const WG: u64 = 256;

pub use super::spatial::{avg_pool2x2, max_pool2x2, resize_bilinear, upsample_nearest2x};

/// Largest rank [`permute`] handles.
pub const MAX_RANK: usize = 8;

fn check_dim(op: &'static str, x: &Tensor, dim: usize) -> Result<()> {
    if dim >= x.rank() {
        return shape_err(
            op,
            format!("dim {dim} is out of range for shape {:?}", x.shape()),
        );
    }
    Ok(())
}

/// (outer, inner): the products of the dims before and after `dim`.
fn outer_inner(shape: &[usize], dim: usize) -> (usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim + 1..].iter().product(),
    )
}

/// Copy x[o, src_off..src_off+len, i] to out[o, dst_off.., i] (x seen as [outer, src_d, inner]).
pub(crate) fn block_copy(
    op: &'static str,
    x: &Tensor,
    out: &Tensor,
    dim: usize,
    src_off: usize,
    len: usize,
    dst_off: usize,
) -> Result<()> {
    let (outer, inner) = outer_inner(x.shape(), dim);
    let n = outer * len * inner;
    if n == 0 {
        return Ok(());
    }
    let gpu = x.gpu();
    let params = Params::new()
        .u32(to_u32(op, n)?)
        .u32(len as u32)
        .u32(inner as u32)
        .u32(x.shape()[dim] as u32)
        .u32(src_off as u32)
        .u32(out.shape()[dim] as u32)
        .u32(dst_off as u32);
    gpu.launch(
        Launch::new(&COPY)
            .input(x.bind(op)?)
            .output(out.bind(op)?)
            .params(params)
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )
}

/// Concatenate float tensors along `dim`; all other dims must agree. Inputs may mix storage types.
pub fn concat(tensors: &[&Tensor], dim: usize) -> Result<Tensor> {
    let op = "concat";
    let Some(first) = tensors.first() else {
        return invalid(op, "no tensors given");
    };
    check_dim(op, first, dim)?;
    let mut shape = first.shape().to_vec();
    shape[dim] = 0;
    for (k, t) in tensors.iter().enumerate() {
        expect_float(op, &format!("tensor {k}"), t)?;
        let same_rank = t.rank() == first.rank();
        let agree =
            same_rank && (0..t.rank()).all(|d| d == dim || t.shape()[d] == first.shape()[d]);
        if !agree {
            return shape_err(
                op,
                format!(
                    "tensor {k} has shape {:?} but tensor 0 has {:?}; all dims except {dim} must match",
                    t.shape(),
                    first.shape()
                ),
            );
        }
        shape[dim] += t.shape()[dim];
    }
    let out = Tensor::uninit(first.gpu(), &shape, op)?;
    let mut off = 0;
    for t in tensors {
        block_copy(op, t, &out, dim, 0, t.shape()[dim], off)?;
        off += t.shape()[dim];
    }
    let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[dim]).collect();
    Ok(grad::record(op, out, tensors, move |g, needed| {
        rules::concat_grad(g, dim, &sizes, needed)
    }))
}

/// Elements `start..end` of `dim` (end exclusive, `start == end` gives an empty tensor).
pub fn slice(x: &Tensor, dim: usize, start: usize, end: usize) -> Result<Tensor> {
    let op = "slice";
    expect_float(op, "x", x)?;
    check_dim(op, x, dim)?;
    if start > end || end > x.shape()[dim] {
        return shape_err(
            op,
            format!(
                "range {start}..{end} of dim {dim} is not within shape {:?}",
                x.shape()
            ),
        );
    }
    let mut shape = x.shape().to_vec();
    shape[dim] = end - start;
    let out = Tensor::uninit(x.gpu(), &shape, op)?;
    block_copy(op, x, &out, dim, start, end - start, 0)?;
    let x_shape = x.shape().to_vec();
    Ok(grad::record(op, out, &[x], move |g, _| {
        Ok(vec![Some(rules::slice_grad(g, &x_shape, dim, start)?)])
    }))
}

/// Consecutive parts of `dim` with the given sizes, which must add up to the dim's size (zero sizes
/// give empty tensors).
pub fn split(x: &Tensor, dim: usize, sizes: &[usize]) -> Result<Vec<Tensor>> {
    let op = "split";
    expect_float(op, "x", x)?;
    check_dim(op, x, dim)?;
    if sizes.iter().sum::<usize>() != x.shape()[dim] {
        return shape_err(
            op,
            format!(
                "sizes {sizes:?} do not add up to dim {dim} of shape {:?}",
                x.shape()
            ),
        );
    }
    let mut parts = Vec::with_capacity(sizes.len());
    let mut off = 0;
    for &len in sizes {
        let mut shape = x.shape().to_vec();
        shape[dim] = len;
        let out = Tensor::uninit(x.gpu(), &shape, op)?;
        block_copy(op, x, &out, dim, off, len, 0)?;
        // Each part is its own node; when several get gradients the tape adds their padded
        // gradients (one full-size add per extra part).
        let (x_shape, start) = (x.shape().to_vec(), off);
        parts.push(grad::record(op, out, &[x], move |g, _| {
            Ok(vec![Some(rules::slice_grad(g, &x_shape, dim, start)?)])
        }));
        off += len;
    }
    Ok(parts)
}

/// `n` equal parts of `dim` (as torch.chunk when the size divides by `n`; an error otherwise).
pub fn chunk(x: &Tensor, n: usize, dim: usize) -> Result<Vec<Tensor>> {
    let op = "chunk";
    check_dim(op, x, dim)?;
    let size = x.shape()[dim];
    if n == 0 || !size.is_multiple_of(n) {
        return shape_err(
            op,
            format!(
                "dim {dim} of shape {:?} does not split into {n} equal parts",
                x.shape()
            ),
        );
    }
    split(x, dim, &vec![size / n; n])
}

/// `out.shape[i] = x.shape[perm[i]]`, with the elements moved along (rank ≤ 8).
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let op = "permute";
    expect_float(op, "x", x)?;
    let r = x.rank();
    let mut seen = vec![false; r];
    let is_perm = perm.len() == r
        && perm
            .iter()
            .all(|&d| d < r && !std::mem::replace(&mut seen[d], true));
    if !is_perm {
        return shape_err(
            op,
            format!(
                "{perm:?} is not a permutation of the dims of shape {:?}",
                x.shape()
            ),
        );
    }
    if r > MAX_RANK {
        return shape_err(
            op,
            format!("rank {r} of shape {:?} exceeds {MAX_RANK}", x.shape()),
        );
    }
    let shape: Vec<usize> = perm.iter().map(|&d| x.shape()[d]).collect();
    let mut stride = vec![1usize; r];
    for d in (0..r.saturating_sub(1)).rev() {
        stride[d] = stride[d + 1] * x.shape()[d + 1];
    }
    // Merge output dims that stay adjacent and in order in the input, and drop size-1 dims, so the
    // kernel divides as little as possible (a pure copy ends up with one dim).
    let mut dims: Vec<(usize, usize, usize)> = Vec::new(); // (extent, input stride, input dim)
    for &d in perm {
        if x.shape()[d] == 1 {
            continue;
        }
        match dims.last_mut() {
            // Adjacent in the input up to size-1 dims, whose strides do not matter.
            Some(last) if last.2 < d && x.shape()[last.2 + 1..d].iter().all(|&e| e == 1) => {
                last.0 *= x.shape()[d];
                last.1 = stride[d];
                last.2 = d;
            }
            _ => dims.push((x.shape()[d], stride[d], d)),
        }
    }
    let dims: Vec<(usize, usize)> = dims.iter().map(|d| (d.0, d.1)).collect();
    let out = strided_gather(op, x, &shape, &dims, 1.0)?;
    let inverse = {
        let mut inv = vec![0; r];
        for (i, &d) in perm.iter().enumerate() {
            inv[d] = i;
        }
        inv
    };
    Ok(grad::record(op, out, &[x], move |g, _| {
        Ok(vec![Some(permute(g, &inverse)?)])
    }))
}

/// out = scale · x[Σ coord_d · stride_d] for out of shape `shape`, where `dims` lists (extent,
/// input stride) of the output's dims after merging (row-major; their extents multiply to the
/// output's size). A zero stride broadcasts (the backward of sum and mean).
pub(crate) fn strided_gather(
    op: &'static str,
    x: &Tensor,
    shape: &[usize],
    dims: &[(usize, usize)],
    scale: f32,
) -> Result<Tensor> {
    if dims.len() > MAX_RANK {
        return shape_err(
            op,
            format!(
                "{} dims remain after merging (shape {:?} from {:?}); at most {MAX_RANK}",
                dims.len(),
                shape,
                x.shape()
            ),
        );
    }
    let out = Tensor::uninit(x.gpu(), shape, op)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let extents: Vec<u32> = dims.iter().map(|d| d.0 as u32).collect();
    let strides = dims
        .iter()
        .map(|d| to_u32(op, d.1))
        .collect::<Result<Vec<u32>>>()?;
    let params = Params::new()
        .u32(to_u32(op, n)?)
        .u32(dims.len() as u32)
        .f32(scale)
        .u32(0)
        .u32_array(&extents, MAX_RANK)
        .u32_array(&strides, MAX_RANK);
    let gpu = x.gpu();
    gpu.launch(
        Launch::new(&PERMUTE)
            .input(x.bind(op)?)
            .output(out.bind(op)?)
            .params(params)
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}

/// Swap dims `d0` and `d1`.
pub fn transpose(x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
    let r = x.rank();
    if d0 >= r || d1 >= r {
        return shape_err(
            "transpose",
            format!(
                "dims {d0} and {d1} are not both within shape {:?}",
                x.shape()
            ),
        );
    }
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(d0, d1);
    permute(x, &perm)
}

/// Rows of `table` ([V, D], f32/f16/bf16, possibly stored in chunks) for i32 `ids` of any shape:
/// output `ids.shape + [D]`, f32. Ids outside [0, V) give rows of zeros: the GPU cannot report them
/// without a readback, so validate ids on the host when they come from untrusted input.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let op = "embedding";
    if table.rank() != 2 || !table.dtype().is_float() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "the table must be a [V, D] float tensor, got {:?} {:?}",
                table.shape(),
                table.dtype()
            ),
        });
    }
    if ids.dtype() != DType::I32 {
        return Err(Error::DType {
            op,
            detail: format!(
                "ids must be i32, got {:?} of shape {:?}",
                ids.dtype(),
                ids.shape()
            ),
        });
    }
    let (vocab, d) = (table.shape()[0], table.shape()[1]);
    let mut shape = ids.shape().to_vec();
    shape.push(d);
    let out = Tensor::uninit(table.gpu(), &shape, op)?;
    let n = out.numel();
    if n > 0 {
        gather_rows(op, table, ids, &out, vocab, d)?;
    }
    let ids = ids.detach();
    Ok(grad::record(op, out, &[table], move |g, _| {
        Ok(vec![Some(rules::embedding_grad(g, &ids, vocab, d)?)])
    }))
}

fn gather_rows(
    op: &'static str,
    table: &Tensor,
    ids: &Tensor,
    out: &Tensor,
    vocab: usize,
    d: usize,
) -> Result<()> {
    let n = out.numel();
    let gpu = table.gpu();
    let ids_binding = ids.bind(op)?;
    let groups = gpu.grid((n as u64).div_ceil(WG))?;
    // One launch per chunk; each writes the tokens whose rows it holds, the first also the zeros of
    // out-of-range ids, so every element is written exactly once.
    for c in 0..table.chunk_count() {
        let rows = table.chunk_rows(c);
        let params = Params::new()
            .u32(to_u32(op, n)?)
            .u32(d as u32)
            .u32(to_u32(op, rows.start)?)
            .u32(rows.len() as u32)
            .u32(to_u32(op, vocab)?)
            .u32((c == 0) as u32);
        gpu.launch(
            Launch::new(&EMBEDDING)
                .input(table.bind_chunk(c))
                .input(ids_binding.clone())
                .output(out.bind(op)?)
                .params(params)
                .groups(groups),
        )?;
    }
    Ok(())
}

impl Tensor {
    /// See [`concat()`].
    pub fn concat(tensors: &[&Tensor], dim: usize) -> Result<Tensor> {
        concat(tensors, dim)
    }
    /// See [`slice()`].
    pub fn slice(&self, dim: usize, start: usize, end: usize) -> Result<Tensor> {
        slice(self, dim, start, end)
    }
    /// See [`split`].
    pub fn split(&self, dim: usize, sizes: &[usize]) -> Result<Vec<Tensor>> {
        split(self, dim, sizes)
    }
    /// See [`chunk`].
    pub fn chunk(&self, n: usize, dim: usize) -> Result<Vec<Tensor>> {
        chunk(self, n, dim)
    }
    /// See [`permute`].
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        permute(self, perm)
    }
    /// See [`transpose`].
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        transpose(self, d0, d1)
    }
    /// See [`upsample_nearest2x`].
    pub fn upsample_nearest2x(&self) -> Result<Tensor> {
        upsample_nearest2x(self)
    }
    /// See [`resize_bilinear`].
    pub fn resize_bilinear(&self, out_h: usize, out_w: usize) -> Result<Tensor> {
        resize_bilinear(self, out_h, out_w)
    }
    /// See [`avg_pool2x2`].
    pub fn avg_pool2x2(&self) -> Result<Tensor> {
        avg_pool2x2(self)
    }
    /// See [`max_pool2x2`].
    pub fn max_pool2x2(&self) -> Result<Tensor> {
        max_pool2x2(self)
    }
    /// `self` is the [V, D] table; see [`embedding`].
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        embedding(self, ids)
    }
}
