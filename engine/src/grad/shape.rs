//! Backward rules of the shape ops (the ops record them in `ops::shape`). Permute, nearest
//! upsampling and average pooling are differentiated in `ops::shape` itself, where each is the
//! other's adjoint; this module holds the rules that need more than one launch.

use iterinv_kernels::families::shape::{EMBEDDING_GRAD, RESIZE_WEIGHTS};

use crate::error::{invalid, Result};
use crate::launch::{to_u32, Launch, Params};
use crate::ops::elementwise::fill_bits;
use crate::ops::matmul::{matmul, MatmulOptions};
use crate::ops::shape::{block_copy, slice};
use crate::ops::spatial::bilinear_scale;
use crate::tensor::Tensor;

const WG: u64 = 256;

/// A zero-filled f32 tensor, its errors naming `op`.
fn zeros(op: &'static str, like: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let t = Tensor::uninit(like.gpu(), shape, op)?;
    fill_bits(&t, 0, t.numel())?;
    Ok(t)
}

/// Concat: each needed input gets its slice of `g` along `dim`.
pub(crate) fn concat_grad(
    g: &Tensor,
    dim: usize,
    sizes: &[usize],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let mut off = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for (&len, &need) in sizes.iter().zip(needed) {
        out.push(if !need {
            None
        } else if len == g.shape()[dim] {
            Some(g.clone())
        } else {
            Some(slice(g, dim, off, off + len)?)
        });
        off += len;
    }
    Ok(out)
}

/// Slice (and each part of split/chunk): `g` placed at `start` along `dim` of zeros shaped like x.
pub(crate) fn slice_grad(
    g: &Tensor,
    x_shape: &[usize],
    dim: usize,
    start: usize,
) -> Result<Tensor> {
    const OP: &str = "slice backward";
    if g.shape() == x_shape {
        return Ok(g.clone());
    }
    let out = zeros(OP, g, x_shape)?;
    block_copy(OP, g, &out, dim, 0, g.shape()[dim], start)?;
    Ok(out)
}

/// The interpolation matrix [out_size, in_size] of one axis, built on the GPU with the forward
/// kernel's own arithmetic (no upload, and exactly the forward's weights).
fn resize_weights(like: &Tensor, in_size: usize, out_size: usize) -> Result<Tensor> {
    const OP: &str = "resize_bilinear backward";
    let out = Tensor::uninit(like.gpu(), &[out_size, in_size], OP)?;
    let n = out_size * in_size;
    let gpu = like.gpu();
    gpu.launch(
        Launch::new(&RESIZE_WEIGHTS)
            .output(out.bind(OP)?)
            .params(
                Params::new()
                    .u32(to_u32(OP, n)?)
                    .u32(to_u32(OP, in_size)?)
                    .f32(bilinear_scale(in_size, out_size)),
            )
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}

/// Bilinear resize: the forward is Y = R_h·X·R_wᵀ per plane, so dX = R_hᵀ·dY·R_w, as two batched
/// matmuls that need no transposed copies: (dYᵀ·R_h)ᵀ·R_w. Dense in the small interpolation
/// matrices, so it costs P·Wo·Ho·H + P·H·Wo·W multiply-adds for P planes.
pub(crate) fn resize_bilinear_grad(g: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let s = g.shape();
    let (planes, oh, ow) = (s[0] * s[1], s[2], s[3]);
    let rh = resize_weights(g, h, oh)?;
    let rw = resize_weights(g, w, ow)?;
    let ta = MatmulOptions {
        trans_a: true,
        ..Default::default()
    };
    // [P, Ho, Wo]ᵀ · [Ho, H] = [P, Wo, H]; then [P, Wo, H]ᵀ · [Wo, W] = [P, H, W].
    let a = matmul(&g.reshape(&[planes, oh, ow])?, &rh, None, ta)?;
    let dx = matmul(&a, &rw, None, ta)?;
    dx.reshape(&[s[0], s[1], h, w])
}

/// Embedding: the table gradient, rows summed over the tokens that gathered them (others zero).
/// The gradient is one f32 [V, D] tensor, so a table too large for one storage binding in f32 gives
/// an error naming this rule (no mission path differentiates a frozen text encoder's table).
pub(crate) fn embedding_grad(g: &Tensor, ids: &Tensor, vocab: usize, d: usize) -> Result<Tensor> {
    const OP: &str = "embedding backward";
    let out = zeros(OP, g, &[vocab, d])?;
    let tokens = ids.numel();
    let n = tokens * d;
    if n == 0 {
        return Ok(out);
    }
    let gpu = g.gpu();
    // Every invocation loops over the tokens (shape_embedding_grad.wgsl): under a loop cap
    // (lavapipe) more tokens than it allows are refused rather than summed short.
    if let Some(cap) = gpu.caps().max_loop_iterations {
        if tokens as u64 + 1 > cap / 2 {
            return invalid(
                OP,
                format!(
                    "{tokens} tokens need as many loop iterations per invocation, over half of \
                     this adapter's cap of {cap}"
                ),
            );
        }
    }
    gpu.launch(
        Launch::new(&EMBEDDING_GRAD)
            .input(g.bind(OP)?)
            .input(ids.bind(OP)?)
            .output(out.bind(OP)?)
            .params(
                Params::new()
                    .u32(to_u32(OP, n)?)
                    .u32(to_u32(OP, d)?)
                    .u32(to_u32(OP, tokens)?)
                    .u32(to_u32(OP, vocab)?),
            )
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}
