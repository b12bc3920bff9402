//! Fused attention with an online softmax (flash-style): the queries × keys score matrix is never
//! stored. Two variants share `attention_common.wgsl`: `attention_tiled*` streams key/value tiles
//! through workgroup memory (GPUs), `attention_direct*` reads them straight from the inputs with
//! several query rows per invocation and no barriers (CPU adapters). Each comes in a one-dispatch
//! form and a `_split` form that also writes `ml`, the running (max, sum) per row, so that a key
//! range split over several dispatches can carry its state (see `attention_common.wgsl`).

use crate::{Input, InputClass::Float, Kernel};

const fn float(name: &'static str) -> Input {
    Input { name, class: Float }
}

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
];

/// `QB` query rows per invocation share each key and value load.
const DIRECT_CONSTANTS: &[(&str, &str)] = &[
    ("D", "64u"),
    ("WG", "64u"),
    ("QB", "4u"),
    ("HAS_K2", "false"),
    ("HAS_BIAS", "false"),
    ("HAS_MASK", "false"),
];

pub static ATTENTION_TILED: Kernel = Kernel {
    name: "attention_tiled",
    body: concat!(
        include_str!("../wgsl/attention_common.wgsl"),
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
        include_str!("../wgsl/attention_direct.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out", "ml"],
    constants: DIRECT_CONSTANTS,
};

pub static KERNELS: &[&Kernel] = &[
    &ATTENTION_TILED,
    &ATTENTION_TILED_SPLIT,
    &ATTENTION_DIRECT,
    &ATTENTION_DIRECT_SPLIT,
];
