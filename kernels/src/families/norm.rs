//! Normalisation kernels: group norm, layer norm and RMS norm, all as "normalise contiguous rows".
//! `norm` is the whole op for rows one workgroup can take (`FUSED`); longer rows (IF stage II's
//! groups of 655,360 elements) are split over workgroups: `norm_stats` writes per-split statistics
//! and `norm` merges them before normalising its split.

use crate::{Input, InputClass::Float, Kernel};

const fn float(name: &'static str) -> Input {
    Input { name, class: Float }
}

pub static NORM_STATS: Kernel = Kernel {
    name: "norm_stats",
    body: concat!(
        include_str!("../wgsl/norm_common.wgsl"),
        include_str!("../wgsl/norm_stats.wgsl")
    ),
    inputs: &[float("x")],
    outputs: &["stats"],
    constants: &[("WG", "256u"), ("RMS", "false")],
};

pub static NORM: Kernel = Kernel {
    name: "norm",
    body: concat!(
        include_str!("../wgsl/norm_common.wgsl"),
        include_str!("../wgsl/norm.wgsl")
    ),
    inputs: &[
        float("x"),
        float("stats"),
        float("gamma"),
        float("beta"),
        float("scale"),
        float("shift"),
    ],
    outputs: &["out"],
    constants: &[
        ("WG", "256u"),
        ("RMS", "false"),
        ("FUSED", "true"),
        ("HAS_GAMMA", "true"),
        ("HAS_BETA", "true"),
        ("HAS_SS", "true"),
        ("ACT", "0u"),
    ],
};

/// The inputs of the backward kernels: x, the output gradient, per-split statistics (absent for
/// fused rows), and the epilogue's parameters (needed to recompute z for the activation's
/// derivative and the affine's scale).
const GRAD_INPUTS: &[Input] = &[
    float("x"),
    float("g"),
    float("stats"),
    float("gamma"),
    float("beta"),
    float("scale"),
    float("shift"),
];

const GRAD_FLAGS: [(&str, &str); 6] = [
    ("WG", "256u"),
    ("RMS", "false"),
    ("HAS_GAMMA", "true"),
    ("HAS_BETA", "true"),
    ("HAS_SS", "true"),
    ("ACT", "1u"),
];

macro_rules! grad_body {
    ($file:literal) => {
        concat!(
            include_str!("../wgsl/norm_common.wgsl"),
            include_str!("../wgsl/norm_grad_common.wgsl"),
            include_str!($file)
        )
    };
}

pub static NORM_GRAD: Kernel = Kernel {
    name: "norm_grad",
    body: grad_body!("../wgsl/norm_grad.wgsl"),
    inputs: GRAD_INPUTS,
    outputs: &["dx"],
    constants: &[
        GRAD_FLAGS[0],
        GRAD_FLAGS[1],
        GRAD_FLAGS[2],
        GRAD_FLAGS[3],
        GRAD_FLAGS[4],
        GRAD_FLAGS[5],
        ("FUSED", "true"),
    ],
};

pub static NORM_GRAD_SUMS: Kernel = Kernel {
    name: "norm_grad_sums",
    body: grad_body!("../wgsl/norm_grad_sums.wgsl"),
    inputs: GRAD_INPUTS,
    outputs: &["part"],
    constants: &GRAD_FLAGS,
};

pub static NORM_GRAD_PARAMS: Kernel = Kernel {
    name: "norm_grad_params",
    body: grad_body!("../wgsl/norm_grad_params.wgsl"),
    inputs: GRAD_INPUTS,
    outputs: &["pq"],
    constants: &[
        GRAD_FLAGS[0],
        GRAD_FLAGS[1],
        GRAD_FLAGS[2],
        GRAD_FLAGS[3],
        GRAD_FLAGS[4],
        GRAD_FLAGS[5],
        ("PER_INV", "false"),
    ],
};

pub static KERNELS: &[&Kernel] = &[
    &NORM_STATS,
    &NORM,
    &NORM_GRAD,
    &NORM_GRAD_SUMS,
    &NORM_GRAD_PARAMS,
];
