//! Fused attention with an online softmax (flash-style): the queries × keys score matrix is never
//! stored. Two variants share `attention_common.wgsl`: `attention_tiled*` streams key/value tiles
//! through workgroup memory (GPUs), `attention_direct*` reads them straight from the inputs with
//! several query rows per invocation and no barriers (CPU adapters). Each comes in a one-dispatch
//! form and a `_split` form that also writes `ml`, the running (max, sum) per row, so that a key
//! range split over several dispatches can carry its state (see `attention_common.wgsl`).
//!
//! The backward (`attention_grad_*`, flash-style too: nothing of size queries × keys is stored)
//! with s_ij = scale·q_i·k_j + bias_ij, p = softmax_j(s) and O_i = Σ_j p_ij·v_j, for dO = ∂L/∂O:
//! - `attention_grad_prep`: Δ_i = dO_i·O_i (and a copy of the key mask, see below);
//! - `attention_grad_q_*`: per query row, the forward's online softmax again (m_i, l_i, so that
//!   p_ij = exp(s_ij − m_i)/l_i) and dQ_i = scale·Σ_j p_ij·(dO_i·v_j − Δ_i)·k_j, accumulated with
//!   the same rescaling; `attention_grad_lse_*` only the statistics (dK or dV asked, dQ not);
//! - `attention_grad_kv_*`: per key row, dV_j = Σ_i p_ij·dO_i and
//!   dK_j = scale·Σ_i p_ij·(dO_i·v_j − Δ_i)·q_i, each only when asked (`NEED_DK`, `NEED_DV`).
//!
//! The backward kernels see one key segment at a time (the host dispatches per segment, passing
//! its first global key for the bias and mask), which with the per-row statistics and the mask
//! copy in one `stats` buffer keeps every one of them at 8 storage buffers, WebGPU's default limit
//! per stage. Tiled (workgroup memory, GPUs) and direct (register-blocked, CPU adapters) variants
//! as in the forward; all of them carry their sums between dispatches, for CPU adapters' long
//! ranges.
//!
//! `ROUND_F16` (precision f16) rounds the operands of every product to f16, as tensor-core flash
//! attention does, products accumulating in f32: q, k, v and dO as they are read; in the forward
//! the weights exp(s − m) (m the running maximum) before they multiply v; in the backward dS
//! before dS·K and dSᵀ·Q and the recomputed P before Pᵀ·dO. The scores, the softmax's maximum
//! and sum, the rescaling and Δ stay f32 (`attention_grad_prep` has no products to round).

use super::float;
use crate::{Input, Kernel};

/// q, k, v, then the optional second key/value segment, additive bias and key mask (bound to a
/// dummy buffer and switched off by `HAS_K2`, `HAS_BIAS`, `HAS_MASK` when absent).
const INPUTS: &[Input] = &[
    float("q"),
    float("k"),
    float("v"),
    float("k2"),
    float("v2"),
    float("bias"),
    float("mask"),
];

/// `D` is the head dimension (at most 128: a row lives in registers); `TK` keys per tile.
const TILED_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("TK", "32u"),
    ("HAS_K2", "false"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
    ("ROUND_F16", "false"),
];

/// `QB` query rows per invocation share each key and value load.
const DIRECT_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("QB", "4u"),
    ("HAS_K2", "false"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
    ("ROUND_F16", "false"),
];

pub static ATTENTION_TILED: Kernel = Kernel {
    name: "attention_tiled",
    body: concat!(
        include_str!("../wgsl/attention_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_one_pass.wgsl"),
        include_str!("../wgsl/attention_tiled.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out"],
    constants: TILED_CONSTANTS,
};

pub static ATTENTION_TILED_SPLIT: Kernel = Kernel {
    name: "attention_tiled_split",
    body: concat!(
        include_str!("../wgsl/attention_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_tiled.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out", "ml"],
    constants: TILED_CONSTANTS,
};

pub static ATTENTION_DIRECT: Kernel = Kernel {
    name: "attention_direct",
    body: concat!(
        include_str!("../wgsl/attention_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_one_pass.wgsl"),
        include_str!("../wgsl/attention_direct.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out"],
    constants: DIRECT_CONSTANTS,
};

pub static ATTENTION_DIRECT_SPLIT: Kernel = Kernel {
    name: "attention_direct_split",
    body: concat!(
        include_str!("../wgsl/attention_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_direct.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out", "ml"],
    constants: DIRECT_CONSTANTS,
};

/// Δ per query row and the mask copy into `stats` (`D` the head dimension).
pub static ATTENTION_GRAD_PREP: Kernel = Kernel {
    name: "attention_grad_prep",
    body: include_str!("../wgsl/attention_grad_prep.wgsl"),
    inputs: &[float("o"), float("g"), float("mask")],
    outputs: &["stats"],
    constants: &[("D", "64u"), ("HAS_MASK", "false")],
};

/// The bound key segment (k, v), the output gradient g; bias absent unless `HAS_BIAS`. The key mask
/// is read from `stats` (`HAS_MASK`).
const GRAD_INPUTS: &[Input] = &[
    float("q"),
    float("k"),
    float("v"),
    float("bias"),
    float("g"),
];

const GRAD_KV_INPUTS: &[Input] = &[
    float("q"),
    float("k"),
    float("v"),
    float("bias"),
    float("g"),
    float("stats"),
];

/// `HAS_DQ` false: statistics only. `TK` keys per tile.
const GRAD_Q_TILED_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("TK", "32u"),
    ("HAS_DQ", "true"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
    ("ROUND_F16", "false"),
];

/// `QB` query rows per invocation.
const GRAD_Q_DIRECT_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("QB", "4u"),
    ("HAS_DQ", "true"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
    ("ROUND_F16", "false"),
];

/// `TQ` queries per tile.
const GRAD_KV_TILED_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("TQ", "32u"),
    ("NEED_DK", "true"),
    ("NEED_DV", "true"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
    ("ROUND_F16", "false"),
];

/// `KB` key rows per invocation.
const GRAD_KV_DIRECT_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("KB", "4u"),
    ("NEED_DK", "true"),
    ("NEED_DV", "true"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
    ("ROUND_F16", "false"),
];

pub static ATTENTION_GRAD_Q_TILED: Kernel = Kernel {
    name: "attention_grad_q_tiled",
    body: concat!(
        include_str!("../wgsl/attention_grad_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_grad_q.wgsl"),
        include_str!("../wgsl/attention_grad_q_tiled.wgsl")
    ),
    inputs: GRAD_INPUTS,
    outputs: &["dq", "stats"],
    constants: GRAD_Q_TILED_CONSTANTS,
};

pub static ATTENTION_GRAD_Q_DIRECT: Kernel = Kernel {
    name: "attention_grad_q_direct",
    body: concat!(
        include_str!("../wgsl/attention_grad_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_grad_q.wgsl"),
        include_str!("../wgsl/attention_grad_q_direct.wgsl")
    ),
    inputs: GRAD_INPUTS,
    outputs: &["dq", "stats"],
    constants: GRAD_Q_DIRECT_CONSTANTS,
};

/// The dQ kernels without dq: launch with `HAS_DQ` false.
pub static ATTENTION_GRAD_LSE_TILED: Kernel = Kernel {
    name: "attention_grad_lse_tiled",
    body: concat!(
        include_str!("../wgsl/attention_grad_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_grad_lse.wgsl"),
        include_str!("../wgsl/attention_grad_q.wgsl"),
        include_str!("../wgsl/attention_grad_q_tiled.wgsl")
    ),
    inputs: GRAD_INPUTS,
    outputs: &["stats"],
    constants: GRAD_Q_TILED_CONSTANTS,
};

pub static ATTENTION_GRAD_LSE_DIRECT: Kernel = Kernel {
    name: "attention_grad_lse_direct",
    body: concat!(
        include_str!("../wgsl/attention_grad_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_grad_lse.wgsl"),
        include_str!("../wgsl/attention_grad_q.wgsl"),
        include_str!("../wgsl/attention_grad_q_direct.wgsl")
    ),
    inputs: GRAD_INPUTS,
    outputs: &["stats"],
    constants: GRAD_Q_DIRECT_CONSTANTS,
};

pub static ATTENTION_GRAD_KV_TILED: Kernel = Kernel {
    name: "attention_grad_kv_tiled",
    body: concat!(
        include_str!("../wgsl/attention_grad_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_grad_kv.wgsl"),
        include_str!("../wgsl/attention_grad_kv_tiled.wgsl")
    ),
    inputs: GRAD_KV_INPUTS,
    outputs: &["dk", "dv"],
    constants: GRAD_KV_TILED_CONSTANTS,
};

pub static ATTENTION_GRAD_KV_DIRECT: Kernel = Kernel {
    name: "attention_grad_kv_direct",
    body: concat!(
        include_str!("../wgsl/attention_grad_common.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/attention_rows.wgsl"),
        include_str!("../wgsl/attention_grad_kv.wgsl"),
        include_str!("../wgsl/attention_grad_kv_direct.wgsl")
    ),
    inputs: GRAD_KV_INPUTS,
    outputs: &["dk", "dv"],
    constants: GRAD_KV_DIRECT_CONSTANTS,
};

pub static KERNELS: &[&Kernel] = &[
    &ATTENTION_TILED,
    &ATTENTION_TILED_SPLIT,
    &ATTENTION_DIRECT,
    &ATTENTION_DIRECT_SPLIT,
    &ATTENTION_GRAD_PREP,
    &ATTENTION_GRAD_Q_TILED,
    &ATTENTION_GRAD_Q_DIRECT,
    &ATTENTION_GRAD_LSE_TILED,
    &ATTENTION_GRAD_LSE_DIRECT,
    &ATTENTION_GRAD_KV_TILED,
    &ATTENTION_GRAD_KV_DIRECT,
];
