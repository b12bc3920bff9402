//! Softmax over the last dimension: one workgroup per row, each invocation keeping an online
//! (max, sum) over a strided slice of the row, merged by a workgroup tree reduction.

use crate::{Input, InputClass::Float, Kernel};

/// `out[r, i] = exp(x[r, i] − max_r) / Σ_j exp(x[r, j] − max_r)`. `WG` must be a power of two.
pub static SOFTMAX: Kernel = Kernel {
    name: "softmax",
    body: include_str!("../wgsl/softmax.wgsl"),
    inputs: &[Input {
        name: "x",
        class: Float,
    }],
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static KERNELS: &[&Kernel] = &[&SOFTMAX];
