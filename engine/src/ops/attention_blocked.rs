//! Attention for head dimensions beyond the flash kernels'
//! [`MAX_HEAD_DIM`](super::attention::MAX_HEAD_DIM): the VAE's mid-block
//! attention is one head of dimension 512 (the SD x4 upscaler's VAE), over 65,536 tokens at a
//! 256×256 latent.
//!
//! Why query blocks and not a wider flash kernel: the flash kernels keep a query row and its
//! accumulator in registers (2·D floats per row, 4 KiB at D 512, which spills on every GPU) and
//! stage key/value tiles in workgroup memory (2·TK·D floats: at D 512 not even 8 keys fit the
//! 16 KiB WebGPU guarantees). At D 512 the two products are large GEMMs (K = 512 for the scores,
//! K = all keys for the values), exactly what the matmul kernels are built for. So the queries go
//! in blocks: scores of a block of queries × all keys (one matmul), softmax over each row (f32,
//! max-subtracted), times V (a second matmul), the block's rows written into the output. The full
//! score matrix is never stored: a block's scores are bounded by `max_score_bytes`
//! ([`SCORE_BLOCK_BYTES`] by default; the softmax output doubles that at the peak). The result is
//! the same function as [`attention`](super::attention::attention); only the memory traffic (each
//! block's scores are written and read back three times) is higher than a flash kernel's.
//!
//! Built from recorded ops, so it is differentiable; but the backward keeps every block's
//! probabilities, the whole score matrix in total: at long sequences run it under
//! [`no_grad`](crate::grad::no_grad), as the VAE does.
//!
//! The same GEMMs carry attention at any head dim where the matrix products run on cooperative
//! matrices (tensor cores, [`Gpu::coop`]) and the score matrix is small ([`on_gemms`]): the
//! flash kernels multiply on scalar cores, the two GEMMs on tensor cores, at UNet attention sizes
//! (1,024 image tokens and 77 text tokens) several times faster than the flash kernel's scalar
//! products even with the score matrix's extra memory traffic. Their backward is the GEMMs' and
//! softmax's, on tensor cores too.

use super::matmul::{matmul, MatmulOptions};
use crate::error::{shape_err, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

const OP: &str = "attention (query blocks)";

/// Default bound on one block's f32 score matrix: 256 MiB, 1024 queries × 65,536 keys.
pub const SCORE_BLOCK_BYTES: usize = 256 << 20;

/// Bound on the f32 score matrix of attention taken as GEMMs on cooperative matrices
/// ([`on_gemms`]): 256 MiB, e.g. IF-I-XL's guided pair at 32×32 (2 × 16 heads × 1,024 queries ×
/// 1,101 keys, 144 MiB). A recorded pass keeps its probabilities for the backward, so the bound
/// is also what one attention layer adds to a VJP's memory; past it the flash kernels run.
pub const GEMM_SCORE_BYTES: usize = 256 << 20;

/// Whether attention of `batch_heads` × `queries` × `keys` takes its two products as GEMMs on
/// `gpu` now: where its matrix products run on cooperative matrices at the thread's precision
/// and the score matrix fits [`GEMM_SCORE_BYTES`] and one storage binding.
pub fn on_gemms(gpu: &Gpu, batch_heads: usize, queries: usize, keys: usize) -> bool {
    let bytes = (batch_heads as u128) * (queries as u128) * (keys as u128) * 4;
    gpu.coop().is_some()
        && bytes <= GEMM_SCORE_BYTES as u128
        && bytes <= gpu.caps().max_binding_size as u128
}

/// [`attention_by_query_blocks`] over two key segments (`second`'s keys after `k`'s), in one
/// block: the keys and values are concatenated (77 text tokens before the image's in IF), a copy
/// that is small beside the scores.
pub fn attention_on_gemms(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    second: Option<(&Tensor, &Tensor)>,
    scale: f32,
) -> Result<Tensor> {
    match second {
        Some((k2, v2)) if k2.dim(1) > 0 => {
            let (k, v) = if k.dim(1) > 0 {
                (Tensor::concat(&[k, k2], 1)?, Tensor::concat(&[v, v2], 1)?)
            } else {
                (k2.clone(), v2.clone())
            };
            attention_by_query_blocks(q, &k, &v, scale, usize::MAX)
        }
        _ => attention_by_query_blocks(q, k, v, scale, usize::MAX),
    }
}

/// Queries per block so that `batch·heads·block·keys` f32 scores fit `max_score_bytes` (at least
/// one query, whatever the bound).
pub fn queries_per_block(batch_heads: usize, keys: usize, max_score_bytes: usize) -> usize {
    let row = batch_heads.max(1) * keys.max(1) * std::mem::size_of::<f32>();
    (max_score_bytes / row).max(1)
}

/// `softmax(scale·q·kᵀ)·v` for q `[B, Lq, H, D]`, k and v `[B, Lk, H, D]` (any D, any float
/// storage); output `[B, Lq, H, D]` f32, as [`attention`](super::attention::attention) without
/// its bias, mask or second key segment. Queries are taken in blocks whose score matrix stays
/// within `max_score_bytes`.
pub fn attention_by_query_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    max_score_bytes: usize,
) -> Result<Tensor> {
    let (&[b, lq, h, d], &[kb, lk, kh, kd]) = (q.shape(), k.shape()) else {
        return shape_err(
            OP,
            format!(
                "q and k must be [B, L, H, D], got {:?} and {:?}",
                q.shape(),
                k.shape()
            ),
        );
    };
    if (kb, kh, kd) != (b, h, d) || v.shape() != k.shape() {
        return shape_err(
            OP,
            format!(
                "k {:?} and v {:?} must be [{b}, Lk, {h}, {d}] for q {:?}",
                k.shape(),
                v.shape(),
                q.shape()
            ),
        );
    }
    // [B, L, H, D] → [B, H, L, D]: heads become batch dimensions of the matmuls (a reshape when
    // there is one head, the VAE's case).
    let heads_first = |t: &Tensor| -> Result<Tensor> {
        if h == 1 {
            Ok(t.reshape(&[t.dim(0), 1, t.dim(1), t.dim(3)])?)
        } else {
            Ok(t.permute(&[0, 2, 1, 3])?)
        }
    };
    let (qh, kh, vh) = (
        heads_first(&q.mul_scalar(scale)?)?,
        heads_first(k)?,
        heads_first(v)?,
    );
    if q.numel() == 0 || lk == 0 {
        // No queries, or no keys (rows with no keys are zeros, as in the flash kernels).
        return Tensor::zeros(q.gpu(), q.shape());
    }
    let block = queries_per_block(b * h, lk, max_score_bytes).min(lq.max(1));
    let mut parts = Vec::with_capacity(lq.div_ceil(block));
    for start in (0..lq).step_by(block) {
        let end = (start + block).min(lq);
        let qb = if start == 0 && end == lq {
            qh.clone()
        } else {
            qh.slice(2, start, end)?
        };
        let scores = matmul(
            &qb,
            &kh,
            None,
            MatmulOptions {
                trans_b: true,
                ..Default::default()
            },
        )?;
        let p = scores.softmax()?;
        drop(scores);
        parts.push(matmul(&p, &vh, None, MatmulOptions::default())?);
    }
    let out = if parts.len() == 1 {
        parts.pop().expect("one block")
    } else {
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::concat(&refs, 2)?
    };
    if h == 1 {
        Ok(out.reshape(&[b, lq, 1, d])?)
    } else {
        Ok(out.permute(&[0, 2, 1, 3])?)
    }
}
