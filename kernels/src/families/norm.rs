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

pub static KERNELS: &[&Kernel] = &[&NORM_STATS, &NORM];
