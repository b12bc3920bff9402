//! Normalisation kernels: group norm, layer norm and RMS norm, all as "normalise contiguous rows".
//! `norm` is the whole op for rows one workgroup can take (`FUSED`); longer rows (IF stage II's
//! groups of 655,360 elements) are split over workgroups: `norm_stats` writes per-split statistics
//! and `norm` merges them before normalising its split. Each is built on the row-reduction
//! template twice (`rows_kernels!`): with workgroup-memory trees and, as `*_SUBGROUP`, with
//! subgroup operations.

use super::float;
use crate::{Input, Kernel};

rows_kernels!(
    NORM_STATS,
    NORM_STATS_SUBGROUP,
    "norm_stats",
    ["../wgsl/norm_common.wgsl", "../wgsl/norm_stats.wgsl"],
    &[float("x")],
    &["stats"],
    &[("WG", "256u"), ("RMS", "false")]
);

rows_kernels!(
    NORM,
    NORM_SUBGROUP,
    "norm",
    ["../wgsl/norm_common.wgsl", "../wgsl/norm.wgsl"],
    &[
        float("x"),
        float("stats"),
        float("gamma"),
        float("beta"),
        float("scale"),
        float("shift"),
    ],
    &["out"],
    &[
        ("WG", "256u"),
        ("RMS", "false"),
        ("FUSED", "true"),
        ("HAS_GAMMA", "true"),
        ("HAS_BETA", "true"),
        ("HAS_SS", "true"),
        ("ACT", "0u"),
    ]
);

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

rows_kernels!(
    NORM_GRAD,
    NORM_GRAD_SUBGROUP,
    "norm_grad",
    [
        "../wgsl/norm_common.wgsl",
        "../wgsl/norm_grad_common.wgsl",
        "../wgsl/norm_grad.wgsl"
    ],
    GRAD_INPUTS,
    &["dx"],
    &[
        GRAD_FLAGS[0],
        GRAD_FLAGS[1],
        GRAD_FLAGS[2],
        GRAD_FLAGS[3],
        GRAD_FLAGS[4],
        GRAD_FLAGS[5],
        ("FUSED", "true"),
    ]
);

rows_kernels!(
    NORM_GRAD_SUMS,
    NORM_GRAD_SUMS_SUBGROUP,
    "norm_grad_sums",
    [
        "../wgsl/norm_common.wgsl",
        "../wgsl/norm_grad_common.wgsl",
        "../wgsl/norm_grad_sums.wgsl"
    ],
    GRAD_INPUTS,
    &["part"],
    &GRAD_FLAGS
);

rows_kernels!(
    NORM_GRAD_PARAMS,
    NORM_GRAD_PARAMS_SUBGROUP,
    "norm_grad_params",
    [
        "../wgsl/norm_common.wgsl",
        "../wgsl/norm_grad_common.wgsl",
        "../wgsl/norm_grad_params.wgsl"
    ],
    GRAD_INPUTS,
    &["pq"],
    &[
        GRAD_FLAGS[0],
        GRAD_FLAGS[1],
        GRAD_FLAGS[2],
        GRAD_FLAGS[3],
        GRAD_FLAGS[4],
        GRAD_FLAGS[5],
        ("PER_INV", "false"),
    ]
);

pub static KERNELS: &[&Kernel] = &[
    &NORM_STATS,
    &NORM,
    &NORM_GRAD,
    &NORM_GRAD_SUMS,
    &NORM_GRAD_PARAMS,
    &NORM_STATS_SUBGROUP,
    &NORM_SUBGROUP,
    &NORM_GRAD_SUBGROUP,
    &NORM_GRAD_SUMS_SUBGROUP,
    &NORM_GRAD_PARAMS_SUBGROUP,
];
