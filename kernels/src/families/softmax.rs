//! Softmax over the last dimension: one workgroup per row, each invocation keeping an online
//! (max, sum) over a strided slice of the row, merged by a workgroup tree reduction; and its
//! backward, laid out the same way.

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

/// `dx[r, i] = y[r, i]·(g[r, i] − Σ_j g[r, j]·y[r, j])` for the softmax output y and its gradient g.
/// `WG` must be a power of two.
pub static SOFTMAX_GRAD: Kernel = Kernel {
    name: "softmax_grad",
    body: include_str!("../wgsl/softmax_grad.wgsl"),
    inputs: &[
        Input {
            name: "y",
            class: Float,
        },
        Input {
            name: "g",
            class: Float,
        },
    ],
    outputs: &["dx"],
    constants: &[("WG", "256u")],
};

pub static KERNELS: &[&Kernel] = &[&SOFTMAX, &SOFTMAX_GRAD];
