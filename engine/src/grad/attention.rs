//! Backward rules of softmax and of fused attention (the ops record them in `ops::softmax` and
//! `ops::attention`).
//!
//! Softmax: dx = y·(g − Σ g·y) per row, one kernel laid out as the forward.
//!
//! Attention, flash-style: nothing of size queries × keys is ever stored. With s_ij =
//! scale·q_i·k_j + bias_ij, p = softmax_j(s) (masked keys excluded) and dO the output's gradient:
//! dV_j = Σ_i p_ij·dO_i, dS_ij = p_ij·(dO_i·v_j − Δ_i) with Δ_i = dO_i·O_i, dQ_i = scale·Σ_j dS_ij·k_j,
//! dK_j = scale·Σ_i dS_ij·q_i. The rule saves the inputs and the output (detached) and runs:
//! 1. `attention_grad_prep`: Δ per query row into `stats`, plus a copy of the key mask;
//! 2. per key segment (and key range on CPU adapters): `attention_grad_q_*`, which redoes the
//!    forward's online softmax to get each row's (max, sum) into `stats` and accumulates dQ; or
//!    `attention_grad_lse_*`, the statistics alone, when dQ is not asked for;
//! 3. only when a key or value gradient is asked for, per segment (and query range on CPU
//!    adapters): `attention_grad_kv_*`, dK and/or dV of that segment's keys.
//!
//! The bias and the key mask get no gradient: they are constants in every use (T5's relative
//! position bias and the text padding mask; no mission path differentiates with respect to either),
//! so the op does not record them as inputs.
//!
//! On a device of precision f16 every product rounds its operands to f16 (q, k, v, dO as read;
//! dS before dS·K and dSᵀ·Q; the recomputed P before Pᵀ·dO), accumulating in f32; Δ and the
//! softmax statistics stay f32.
//!
//! lavapipe ends every loop of an invocation after 65535 iterations in all (see `ops::attention`);
//! on CPU adapters both loops (keys for dQ, queries for dK/dV) are split over dispatches that carry
//! their sums, as the forward does.

use iterinv_kernels::families::attention::{
    ATTENTION_GRAD_KV_DIRECT, ATTENTION_GRAD_KV_TILED, ATTENTION_GRAD_LSE_DIRECT,
    ATTENTION_GRAD_LSE_TILED, ATTENTION_GRAD_PREP, ATTENTION_GRAD_Q_DIRECT, ATTENTION_GRAD_Q_TILED,
};
use iterinv_kernels::families::softmax::{SOFTMAX_GRAD, SOFTMAX_GRAD_SUBGROUP};
use iterinv_kernels::Kernel;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::launch::{to_u32, Binding, Launch, Params};
use crate::ops::attention::tile_keys;
use crate::ops::softmax::workgroup_size;
use crate::tensor::Tensor;

/// Softmax backward: dx = y·(g − Σ_j g_j·y_j) along the last dimension, y the forward's output.
pub(crate) fn softmax_grad(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax backward";
    let gpu = y.gpu();
    let out = Tensor::uninit(gpu, y.shape(), OP)?;
    if y.numel() == 0 {
        return Ok(out);
    }
    let n = y.dim(-1);
    let rows = y.numel() / n;
    let wg = workgroup_size(gpu, n)?;
    gpu.launch(
        Launch::new(gpu.rows_kernel(&SOFTMAX_GRAD, &SOFTMAX_GRAD_SUBGROUP))
            .constant("WG", format!("{wg}u"))
            .input(y.bind(OP)?)
            .input(g.bind(OP)?)
            .output(out.bind(OP)?)
            .params(Params::new().u32(to_u32(OP, n)?).u32(to_u32(OP, rows)?))
            .groups(gpu.grid(rows as u64)?),
    )?;
    Ok(out)
}

const OP: &str = "attention backward";

/// What the attention rule keeps: the operands and the output, detached. Recorded inputs are q, k,
/// v, then k2, v2 when present, in that order.
pub(crate) struct AttentionSaved {
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub k2: Option<Tensor>,
    pub v2: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub key_mask: Option<Tensor>,
    pub out: Tensor,
    pub scale: f32,
}

/// Query rows (dQ) or key rows (dK/dV) per workgroup of the tiled variants.
const TILED_WG: usize = 64;
/// Rows per invocation of the direct variants (query rows for dQ, key rows for dK/dV), as the
/// forward's direct variant.
const DIRECT_BLOCK: usize = 4;

/// One key segment: its keys, values, first global key, and the index of its key in `needed`.
struct Segment<'a> {
    k: &'a Tensor,
    v: &'a Tensor,
    seg0: usize,
    len: usize,
    slot: usize,
}

/// Gradients for (q, k, v[, k2, v2]) given the output gradient `g`, only those `needed`.
pub(crate) fn attention_grad(
    s: &AttentionSaved,
    g: &Tensor,
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let need = |i: usize| needed.get(i).copied().unwrap_or(false);
    let gpu = s.q.gpu();
    let [b, lq, h, d] = [s.q.dim(0), s.q.dim(1), s.q.dim(2), s.q.dim(3)];
    let lk1 = s.k.dim(1);
    let mut segs = vec![Segment {
        k: &s.k,
        v: &s.v,
        seg0: 0,
        len: lk1,
        slot: 1,
    }];
    if let (Some(k2), Some(v2)) = (&s.k2, &s.v2) {
        segs.push(Segment {
            k: k2,
            v: v2,
            seg0: lk1,
            len: k2.dim(1),
            slot: 3,
        });
    }
    let lk: usize = segs.iter().map(|sg| sg.len).sum();
    let mut out: Vec<Option<Tensor>> = vec![None; 1 + 2 * segs.len()];
    let rows = b * lq * h;
    if rows == 0 {
        // No query rows (or no batch): the output was empty, every gradient is zero.
        let inputs = [
            Some(&s.q),
            Some(&s.k),
            Some(&s.v),
            s.k2.as_ref(),
            s.v2.as_ref(),
        ];
        for (i, t) in inputs.into_iter().flatten().enumerate() {
            if need(i) {
                out[i] = Some(Tensor::zeros(gpu, t.shape())?);
            }
        }
        return Ok(out);
    }
    let mask_len = if s.key_mask.is_some() { b * lk } else { 0 };
    let stats = Tensor::uninit(gpu, &[3 * rows + mask_len], OP)?;
    let l = Layout {
        gpu,
        b,
        lq,
        h,
        d,
        lk,
        rows,
        bias_b: s
            .bias
            .as_ref()
            .map_or(0, |t| u32::from(t.dim(0) == b && b != 1)),
        scale: s.scale,
        has_bias: s.bias.is_some(),
        has_mask: s.key_mask.is_some(),
        chunk: per_dispatch(gpu, d),
    };
    let bias = match &s.bias {
        Some(t) => t.bind(OP)?,
        None => gpu.dummy(),
    };

    gpu.launch(
        Launch::new(&ATTENTION_GRAD_PREP)
            .constant("D", format!("{d}u"))
            .constant("HAS_MASK", l.has_mask)
            .input(s.out.bind(OP)?)
            .input(g.bind(OP)?)
            .input(match &s.key_mask {
                Some(t) => t.bind(OP)?,
                None => gpu.dummy(),
            })
            .output(stats.bind(OP)?)
            .params(
                Params::new()
                    .u32(to_u32(OP, rows)?)
                    .u32(to_u32(OP, mask_len)?),
            )
            .groups(gpu.grid(rows.max(mask_len).div_ceil(64) as u64)?),
    )?;

    let dq = if need(0) {
        Some(Tensor::uninit(gpu, s.q.shape(), OP)?)
    } else {
        None
    };
    l.query_pass(&s.q, g, &bias, &segs, dq.as_ref(), &stats)?;
    out[0] = dq;

    for sg in &segs {
        let (nk, nv) = (need(sg.slot), need(sg.slot + 1));
        if !(nk || nv) {
            continue;
        }
        let dk = Tensor::uninit(gpu, if nk { sg.k.shape() } else { &[1] }, OP)?;
        let dv = Tensor::uninit(gpu, if nv { sg.v.shape() } else { &[1] }, OP)?;
        l.key_pass(&s.q, g, &bias, sg, &stats, (&dk, nk), (&dv, nv))?;
        out[sg.slot] = nk.then_some(dk);
        out[sg.slot + 1] = nv.then_some(dv);
    }
    Ok(out)
}

/// The sizes and switches shared by the backward's dispatches.
struct Layout<'a> {
    gpu: &'a Gpu,
    b: usize,
    lq: usize,
    h: usize,
    d: usize,
    lk: usize,
    rows: usize,
    bias_b: u32,
    scale: f32,
    has_bias: bool,
    has_mask: bool,
    /// Longest loop range (keys or queries) of one dispatch.
    chunk: usize,
}

/// One dispatch's share of the loop axis and its place in the sequence.
struct Range {
    seg0: usize,
    seg_len: usize,
    begin: usize,
    end: usize,
    first: bool,
    last: bool,
}

impl Layout<'_> {
    fn params(&self, tiles: usize, r: &Range) -> Result<Params> {
        Ok(Params::new()
            .u32(to_u32(OP, self.b)?)
            .u32(to_u32(OP, self.lq)?)
            .u32(to_u32(OP, self.h)?)
            .u32(to_u32(OP, self.lk)?)
            .u32(to_u32(OP, r.seg0)?)
            .u32(to_u32(OP, r.seg_len)?)
            .u32(self.bias_b)
            .f32(self.scale)
            .u32(to_u32(OP, tiles)?)
            .u32(to_u32(OP, r.begin)?)
            .u32(to_u32(OP, r.end)?)
            .u32(u32::from(r.first))
            .u32(u32::from(r.last))
            .u32(to_u32(OP, self.rows)?))
    }

    fn constants(&self, wg: usize) -> Vec<(&'static str, String)> {
        vec![
            ("D", format!("{}u", self.d)),
            ("WG", format!("{wg}u")),
            ("HAS_BIAS", self.has_bias.to_string()),
            ("HAS_MASK", self.has_mask.to_string()),
        ]
    }

    /// Workgroup size and rows per invocation for `n` rows: the direct variants' workgroups shrink
    /// for short row counts (as the forward's), the tiled ones keep one row per invocation.
    fn shape(&self, n: usize) -> (usize, usize) {
        if self.gpu.caps().cpu_kernels {
            let wg = n.div_ceil(DIRECT_BLOCK).next_power_of_two().clamp(8, 64);
            (wg, DIRECT_BLOCK)
        } else {
            (TILED_WG, 1)
        }
    }

    /// Row statistics into `stats` and, when `dq` is given, dQ: over every key of every segment.
    fn query_pass(
        &self,
        q: &Tensor,
        g: &Tensor,
        bias: &Binding,
        segs: &[Segment],
        dq: Option<&Tensor>,
        stats: &Tensor,
    ) -> Result<()> {
        let cpu = self.gpu.caps().cpu_kernels;
        let (wg, qb) = self.shape(self.lq);
        let tiles = self.lq.div_ceil(wg * qb);
        let kernel: &'static Kernel = match (cpu, dq.is_some()) {
            (true, true) => &ATTENTION_GRAD_Q_DIRECT,
            (true, false) => &ATTENTION_GRAD_LSE_DIRECT,
            (false, true) => &ATTENTION_GRAD_Q_TILED,
            (false, false) => &ATTENTION_GRAD_LSE_TILED,
        };
        let mut constants = self.constants(wg);
        constants.push(("HAS_DQ", dq.is_some().to_string()));
        constants.push(if cpu {
            ("QB", format!("{qb}u"))
        } else {
            let tk = tile_keys(self.d.div_ceil(4), self.gpu.caps().max_workgroup_storage);
            ("TK", format!("{tk}u"))
        });
        let mut ranges: Vec<(&Segment, usize, usize)> = Vec::new();
        for sg in segs {
            for begin in (0..sg.len).step_by(self.chunk) {
                ranges.push((sg, begin, (begin + self.chunk).min(sg.len)));
            }
        }
        if ranges.is_empty() {
            // No keys at all: one empty dispatch still writes zeros and l = 0.
            ranges.push((&segs[0], 0, 0));
        }
        let mut outputs = Vec::new();
        if let Some(dq) = dq {
            outputs.push(dq.bind(OP)?);
        }
        outputs.push(stats.bind(OP)?);
        let q_bind = q.bind(OP)?;
        let g_bind = g.bind(OP)?;
        let groups = self.gpu.grid((self.b * self.h * tiles) as u64)?;
        let n = ranges.len();
        for (i, (sg, begin, end)) in ranges.into_iter().enumerate() {
            let r = Range {
                seg0: sg.seg0,
                seg_len: sg.len,
                begin,
                end,
                first: i == 0,
                last: i + 1 == n,
            };
            self.gpu.launch(Launch {
                constants: constants.clone(),
                inputs: vec![
                    q_bind.clone(),
                    sg.k.bind(OP)?,
                    sg.v.bind(OP)?,
                    bias.clone(),
                    g_bind.clone(),
                ],
                outputs: outputs.clone(),
                params: self.params(tiles, &r)?,
                groups,
                ..Launch::new(kernel)
            })?;
        }
        Ok(())
    }

    /// dK and/or dV of one segment's keys (the flags say which; the other output is a stand-in).
    #[allow(clippy::too_many_arguments)]
    fn key_pass(
        &self,
        q: &Tensor,
        g: &Tensor,
        bias: &Binding,
        sg: &Segment,
        stats: &Tensor,
        (dk, need_dk): (&Tensor, bool),
        (dv, need_dv): (&Tensor, bool),
    ) -> Result<()> {
        if sg.len == 0 {
            return Ok(());
        }
        let cpu = self.gpu.caps().cpu_kernels;
        let (wg, kb) = self.shape(sg.len);
        let tiles = sg.len.div_ceil(wg * kb);
        let mut constants = self.constants(wg);
        constants.push(("NEED_DK", need_dk.to_string()));
        constants.push(("NEED_DV", need_dv.to_string()));
        constants.push(if cpu {
            ("KB", format!("{kb}u"))
        } else {
            ("TQ", format!("{}u", tile_queries(self.d, self.gpu)))
        });
        let kernel: &'static Kernel = if cpu {
            &ATTENTION_GRAD_KV_DIRECT
        } else {
            &ATTENTION_GRAD_KV_TILED
        };
        let inputs = vec![
            q.bind(OP)?,
            sg.k.bind(OP)?,
            sg.v.bind(OP)?,
            bias.clone(),
            g.bind(OP)?,
            stats.bind(OP)?,
        ];
        let outputs = vec![dk.bind(OP)?, dv.bind(OP)?];
        let groups = self.gpu.grid((self.b * self.h * tiles) as u64)?;
        let n = self.lq.div_ceil(self.chunk);
        for i in 0..n {
            let begin = i * self.chunk;
            let r = Range {
                seg0: sg.seg0,
                seg_len: sg.len,
                begin,
                end: (begin + self.chunk).min(self.lq),
                first: i == 0,
                last: i + 1 == n,
            };
            self.gpu.launch(Launch {
                constants: constants.clone(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
                params: self.params(tiles, &r)?,
                groups,
                ..Launch::new(kernel)
            })?;
        }
        Ok(())
    }
}

/// Queries per workgroup-memory tile of the dK/dV kernel: the largest of 64, 32, 16, 8 whose q and
/// dO tiles (2·TQ·D4 vec4) and per-query statistics (3 floats) fit the workgroup storage.
fn tile_queries(d: usize, gpu: &Gpu) -> usize {
    let budget = gpu.caps().max_workgroup_storage.max(16384) as usize;
    let d4 = d.div_ceil(4);
    [64, 32, 16, 8]
        .into_iter()
        .find(|&tq| tq * (2 * d4 * 16 + 12) <= budget)
        .unwrap_or(8)
}

/// The longest loop range one dispatch may take: unbounded except on lavapipe, whose invocations
/// stop looping after 65535 iterations in all (see `ops::attention::keys_per_dispatch`). Counted
/// as if the compiler unrolled nothing, for the direct kernels' four rows per invocation (the
/// tiled ones, with one, loop less) in steps of four keys (dQ) or queries (dK/dV): the step loop;
/// two passes over D4 each loading eight rows (a partial vec4 loops over its four elements) and
/// looping twice over the four rows; the per-row weight loop; D4 more for the tiled variants' tile
/// loads. Fixed: four rows of two inputs loaded, two accumulators loaded and stored.
fn per_dispatch(gpu: &Gpu, d: usize) -> usize {
    let Some(limit) = gpu.caps().max_loop_iterations else {
        return usize::MAX;
    };
    let d4 = d.div_ceil(4);
    let tail = if d.is_multiple_of(4) { 0 } else { 4 };
    let blk = DIRECT_BLOCK;
    let per_4 = 1 + blk + 2 * d4 * (1 + 8 * tail + 2 * blk) + d4;
    let fixed = 64 + blk * d4 * (2 * (1 + tail) + 4 * 5);
    let n = ((limit as usize).saturating_sub(fixed) / per_4 * 4).max(4);
    // Whole tiles of the tiled variants.
    if n >= 64 {
        n / 64 * 64
    } else {
        n / 4 * 4
    }
}
