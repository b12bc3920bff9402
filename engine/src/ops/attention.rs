//! Fused multi-head attention with an online softmax: `softmax(scale·q·kᵀ + bias, masked) · v`
//! without ever storing the queries × keys score matrix, so 4096 × 4096 (or 65,536-token VAE)
//! attention costs memory linear in the sequence lengths.
//!
//! Layouts are the ones a linear projection gives after a reshape, `[B, L, H, D]`, so no transpose
//! is needed before or after. The keys may come in two segments (DeepFloyd IF attends to the 77
//! text tokens and then to the image tokens) that are never concatenated in memory.
//!
//! GPUs get the tiled variant (key/value tiles in workgroup memory, one query row per invocation);
//! CPU adapters (`caps().cpu_kernels`) the direct one (no barriers, 4 query rows per invocation
//! sharing every key load), about twice as fast on lavapipe. On CPU adapters long key ranges are
//! split over several dispatches to stay under lavapipe's loop-iteration cap (see
//! `keys_per_dispatch`).
//!
//! Where the matrix products run on cooperative matrices (tensor cores), attention without a
//! bias or mask whose score matrix is small goes through two GEMMs and a softmax instead
//! (`attention_blocked::on_gemms`).
//!
//! Recorded for autodiff with respect to q, k, v (and k2, v2); the bias and the key mask are
//! constants (see `grad::attention`, which holds the flash-style backward).

use iterinv_kernels::families::attention::{
    ATTENTION_DIRECT, ATTENTION_DIRECT_SPLIT, ATTENTION_TILED, ATTENTION_TILED_SPLIT,
};

use crate::error::{invalid, shape_err, Result};
use crate::grad;
use crate::grad::attention::{attention_grad, AttentionSaved};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::ops::attention_blocked::{
    attention_by_query_blocks, attention_on_gemms, on_gemms, SCORE_BLOCK_BYTES,
};
use crate::tensor::Tensor;

const OP: &str = "attention";

/// Largest head dimension of the flash kernels: q and the accumulator of a row live in registers.
/// Plain attention (one key segment, no bias, no mask) with wider heads runs in query blocks
/// (`attention_blocked`).
pub const MAX_HEAD_DIM: usize = 128;

/// The operands of [`attention`]. Inputs may be stored as f32, f16 or bf16.
#[derive(Clone, Copy, Debug)]
pub struct AttentionArgs<'a> {
    /// Queries `[B, Lq, H, D]`.
    pub q: &'a Tensor,
    /// Keys `[B, Lk1, H, D]`.
    pub k: &'a Tensor,
    /// Values `[B, Lk1, H, D]`.
    pub v: &'a Tensor,
    /// Optional second key segment `[B, Lk2, H, D]`; its keys come after segment 1's.
    pub k2: Option<&'a Tensor>,
    /// Values of the second segment, `[B, Lk2, H, D]`; given exactly when `k2` is.
    pub v2: Option<&'a Tensor>,
    /// Additive per-head bias `[Bb, H, Lq, Lk1 + Lk2]` with `Bb` 1 (shared) or B (T5 position bias).
    pub bias: Option<&'a Tensor>,
    /// Key padding mask `[B, Lk1 + Lk2]`: 0 masks a key, any other value lets it be attended.
    pub key_mask: Option<&'a Tensor>,
    /// Scores are `scale·(q·k) + bias`.
    pub scale: f32,
}

impl<'a> AttentionArgs<'a> {
    /// Plain attention over one key segment, no bias or mask.
    pub fn new(q: &'a Tensor, k: &'a Tensor, v: &'a Tensor, scale: f32) -> AttentionArgs<'a> {
        AttentionArgs {
            q,
            k,
            v,
            k2: None,
            v2: None,
            bias: None,
            key_mask: None,
            scale,
        }
    }
}

fn rank4(name: &str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.shape() {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => shape_err(
            OP,
            format!("{name} must be [B, L, H, D], got shape {:?}", t.shape()),
        ),
    }
}

/// Attention of every query row over the keys of both segments; output `[B, Lq, H, D]` in f32.
///
/// Differentiable with respect to q, k, v, k2 and v2; the bias and the key mask are treated as
/// constants (a tracked bias receives no gradient).
///
/// Softmax runs in f32 with a running maximum (online rescaling), accumulation in f32. On a device
/// of precision f16 the products' operands are rounded to f16 as tensor-core flash attention
/// rounds them: q, k, v, and the weights exp(s − m) before they multiply v. A query row
/// whose keys are all masked by `key_mask` (or with no keys at all) is written as zeros. A bias of
/// −inf also excludes a key on IEEE-conforming devices; a bias of −FLT_MAX on every key gives the
/// plain mean of the values, as in PyTorch.
///
/// Where the matrix products run on cooperative matrices and there is no bias or mask, the
/// products are two GEMMs around an f32 softmax ([`on_gemms`]); at f16 their operands are
/// rounded as the GEMMs round them: scale·q, k, the normalised probabilities and v.
///
/// Head dims above [`MAX_HEAD_DIM`] are taken without a bias, mask or second segment, and run in
/// blocks of queries (`attention_blocked`: a bounded block of scores at a time, never the whole
/// matrix).
pub fn attention(args: &AttentionArgs) -> Result<Tensor> {
    let AttentionArgs {
        q,
        k,
        v,
        k2,
        v2,
        bias,
        key_mask,
        scale,
    } = *args;
    for (name, t) in [("q", Some(q)), ("k", Some(k)), ("v", Some(v)), ("k2", k2)]
        .into_iter()
        .chain([("v2", v2), ("bias", bias), ("key_mask", key_mask)])
    {
        if let Some(t) = t {
            expect_float(OP, name, t)?;
        }
    }
    let [b, lq, h, d] = rank4("q", q)?;
    let [kb, lk1, kh, kd] = rank4("k", k)?;
    if (kb, kh, kd) != (b, h, d) {
        return shape_err(
            OP,
            format!(
                "k {:?} does not match q {:?} in batch, heads or head dim",
                k.shape(),
                q.shape()
            ),
        );
    }
    if v.shape() != k.shape() {
        return shape_err(
            OP,
            format!("v {:?} must have k's shape {:?}", v.shape(), k.shape()),
        );
    }
    let lk2 = match (k2, v2) {
        (None, None) => 0,
        (Some(k2), Some(v2)) => {
            let [b2, lk2, h2, d2] = rank4("k2", k2)?;
            if (b2, h2, d2) != (b, h, d) {
                return shape_err(
                    OP,
                    format!(
                        "k2 {:?} does not match q {:?} in batch, heads or head dim",
                        k2.shape(),
                        q.shape()
                    ),
                );
            }
            if v2.shape() != k2.shape() {
                return shape_err(
                    OP,
                    format!("v2 {:?} must have k2's shape {:?}", v2.shape(), k2.shape()),
                );
            }
            lk2
        }
        _ => {
            return invalid(
                OP,
                "k2 and v2 must be given together (the second key segment needs both)",
            )
        }
    };
    let lk = lk1 + lk2;
    let mut bias_b = 0;
    if let Some(bias) = bias {
        let ok = matches!(*bias.shape(), [bb, bh, bq, bk]
            if (bb == 1 || bb == b) && (bh, bq, bk) == (h, lq, lk));
        if !ok {
            return shape_err(
                OP,
                format!(
                    "bias {:?} must be [1 or {b}, {h}, {lq}, {lk}] for q {:?} and {lk} keys",
                    bias.shape(),
                    q.shape()
                ),
            );
        }
        bias_b = u32::from(bias.shape()[0] == b && b != 1);
    }
    if let Some(mask) = key_mask {
        if mask.shape() != [b, lk] {
            return shape_err(
                OP,
                format!(
                    "key_mask {:?} must be [{b}, {lk}] for q {:?} and {lk} keys",
                    mask.shape(),
                    q.shape()
                ),
            );
        }
    }
    if !scale.is_finite() {
        return invalid(OP, format!("scale {scale} is not finite"));
    }
    let plain = k2.is_none() && bias.is_none() && key_mask.is_none();
    if d > MAX_HEAD_DIM && plain {
        // Wider heads than the flash kernels hold in registers (the VAE's 512): see
        // `attention_blocked` for why they go through blocked GEMMs instead.
        return attention_by_query_blocks(q, k, v, scale, SCORE_BLOCK_BYTES);
    }
    if d == 0 || d > MAX_HEAD_DIM {
        return shape_err(
            OP,
            format!(
                "head dim {d} of q {:?} must be in 1..={MAX_HEAD_DIM} with a second key segment, \
                 a bias or a key mask (plain attention takes any positive head dim)",
                q.shape()
            ),
        );
    }
    let gpu = q.gpu();
    if bias.is_none() && key_mask.is_none() && on_gemms(gpu, b * h, lq, lk) {
        return attention_on_gemms(q, k, v, k2.zip(v2), scale);
    }
    let out = Tensor::uninit(gpu, q.shape(), OP)?;
    let saved = AttentionSaved {
        q: q.detach(),
        k: k.detach(),
        v: v.detach(),
        k2: k2.map(Tensor::detach),
        v2: v2.map(Tensor::detach),
        bias: bias.map(Tensor::detach),
        key_mask: key_mask.map(Tensor::detach),
        out: out.detach(),
        scale,
    };
    let tracked: Vec<&Tensor> = [Some(q), Some(k), Some(v), k2, v2]
        .into_iter()
        .flatten()
        .collect();
    // The bias and the key mask are not recorded: no gradient flows to them.
    let out = grad::record(OP, out, &tracked, move |g, needed| {
        attention_grad(&saved, g, needed)
    });
    if out.numel() == 0 {
        return Ok(out);
    }
    for t in [Some(q), Some(k), k2, bias].into_iter().flatten() {
        to_u32(OP, t.numel())?;
    }

    let caps = gpu.caps();
    let d4 = d.div_ceil(4);
    // The direct variant's workgroup shrinks for short queries so that few invocations only
    // repeat the last row; its QB rows per invocation stay (they are what makes it fast).
    let (wg, qb) = if caps.cpu_kernels {
        let wg = lq.div_ceil(DIRECT_QB).next_power_of_two().clamp(8, 64);
        (wg, DIRECT_QB)
    } else {
        (TILED_WG, 1)
    };
    let tile = tile_keys(d4, caps.max_workgroup_storage);
    let qtiles = lq.div_ceil(wg * qb);
    let chunk = keys_per_dispatch(gpu, d, qb);
    let passes = lk.div_ceil(chunk).max(1);
    let kernel = match (caps.cpu_kernels, passes > 1) {
        (true, false) => &ATTENTION_DIRECT,
        (true, true) => &ATTENTION_DIRECT_SPLIT,
        (false, false) => &ATTENTION_TILED,
        (false, true) => &ATTENTION_TILED_SPLIT,
    };
    let mut constants = vec![
        ("D", format!("{d}u")),
        ("WG", format!("{wg}u")),
        ("HAS_K2", k2.is_some().to_string()),
        ("HAS_BIAS", bias.is_some().to_string()),
        ("HAS_MASK", key_mask.is_some().to_string()),
    ];
    constants.push(if caps.cpu_kernels {
        ("QB", format!("{qb}u"))
    } else {
        ("TK", format!("{tile}u"))
    });
    let mut inputs = vec![q.bind(OP)?, k.bind(OP)?, v.bind(OP)?];
    for t in [k2, v2, bias, key_mask] {
        inputs.push(match t {
            Some(t) => t.bind(OP)?,
            None => gpu.dummy(),
        });
    }
    let mut outputs = vec![out.bind(OP)?];
    // (max, sum) per row between dispatches.
    let ml;
    if passes > 1 {
        ml = Tensor::uninit(gpu, &[b * lq * h, 2], OP)?;
        outputs.push(ml.bind(OP)?);
    }
    let groups = gpu.grid((b * h) as u64 * qtiles as u64)?;
    for pass in 0..passes {
        let j_begin = pass * chunk;
        let j_end = (j_begin + chunk).min(lk);
        let params = Params::new()
            .u32(to_u32(OP, b)?)
            .u32(to_u32(OP, lq)?)
            .u32(to_u32(OP, h)?)
            .u32(to_u32(OP, lk1)?)
            .u32(to_u32(OP, lk2)?)
            .u32(bias_b)
            .f32(scale)
            .u32(to_u32(OP, qtiles)?)
            .u32(to_u32(OP, j_begin)?)
            .u32(to_u32(OP, j_end)?)
            .u32(u32::from(pass == 0))
            .u32(u32::from(pass + 1 == passes));
        // Two products of lq × keys × d per (batch, head); q, k, v read and the output written
        // once (read again when a later pass accumulates); the bias and mask are not counted.
        let keys = (j_end - j_begin) as u64;
        let rows = (b * h * lq) as u64;
        let kv_bytes = (k.dtype().size() + v.dtype().size()) as u64;
        let out_bytes = if pass == 0 { 4 } else { 8 };
        let bytes = rows * d as u64 * (q.dtype().size() as u64 + out_bytes)
            + (b * h) as u64 * keys * d as u64 * kv_bytes;
        gpu.launch(
            Launch {
                constants: constants.clone(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
                params,
                groups,
                ..Launch::new(kernel)
            }
            .profile_as(&["D", "QB", "TK"])
            .work(4 * rows * keys * d as u64, bytes),
        )?;
    }
    Ok(out)
}

/// Query rows (= invocations) per workgroup of the tiled variant.
const TILED_WG: usize = 64;
/// Query rows per invocation of the direct variant. Measured on lavapipe (B2, 16 heads, 1024
/// queries, 1101 keys, D 64): 2 → 4.3, 4 → 6.2, 8 → 6.8 GFLOP/s; 4 wastes less on short queries.
const DIRECT_QB: usize = 4;

/// Keys per workgroup-memory tile: the largest of 64, 32, 16, 8 whose K and V tiles (2·TK·D4 vec4)
/// and mask flags fit the device's workgroup storage (16 KiB guaranteed by WebGPU).
pub(crate) fn tile_keys(d4: usize, max_workgroup_storage: u32) -> usize {
    let budget = max_workgroup_storage.max(16384) as usize;
    [64, 32, 16, 8]
        .into_iter()
        .find(|&tk| tk * (2 * d4 * 16 + 4) <= budget)
        .unwrap_or(8)
}

/// Mesa's llvmpipe (lavapipe; Mesa 22.3 as in Debian 12) counts the iterations of all loops of a
/// shader invocation together and silently breaks out of every loop once 65535 have run (gallivm's
/// `LP_MAX_TGSI_LOOP_ITERATIONS`): a long key loop would end early and leave a wrong or
/// half-written output. On CPU adapters the keys are therefore split over dispatches that stay
/// under that count even if the compiler unrolls none of the inner loops (it unrolls most);
/// elsewhere one dispatch takes them all.
fn keys_per_dispatch(gpu: &crate::Gpu, d: usize, qb: usize) -> usize {
    let Some(limit) = gpu.caps().max_loop_iterations else {
        return usize::MAX;
    };
    let d4 = d.div_ceil(4);
    // Loads of a partial vec4 loop over its 4 elements.
    let tail = if d.is_multiple_of(4) { 0 } else { 4 };
    // Per 4 keys: the key loop; the score and value loops over D4, each step loading 4 rows and
    // looping over the QB rows; the QB rows' softmax update. The tiled variant (QB = 1) adds its
    // tile loads and flags, less than the extra D4 counted for it here.
    let per_4_keys = 1 + qb + 2 * d4 * (1 + 4 * tail + qb) + d4;
    // Per dispatch: loading q and the accumulators, storing the rows (4 elements per vec4).
    let fixed = 64 + qb * d4 * (1 + tail + 2 * 5);
    let keys = ((limit as usize).saturating_sub(fixed) / per_4_keys * 4).max(4);
    // Whole tiles of the tiled variant.
    if keys >= 64 {
        keys / 64 * 64
    } else {
        keys / 4 * 4
    }
}

impl Tensor {
    /// Single-segment attention of `self` (queries `[B, Lq, H, D]`) over `k`, `v`.
    pub fn attention(&self, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
        attention(&AttentionArgs::new(self, k, v, scale))
    }
}
