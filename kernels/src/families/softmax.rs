//! Softmax over the last dimension: one workgroup per row, each invocation keeping an online
//! (max, sum) over a strided slice of the row, merged over the workgroup by the row-reduction
//! template; and its backward, laid out the same way. Both with workgroup-memory trees and, as
//! `*_SUBGROUP`, with subgroup operations (`rows_kernels!`).

use crate::{Input, InputClass::Float, Kernel};

rows_kernels!(
    SOFTMAX,
    SOFTMAX_SUBGROUP,
    "softmax",
    ["../wgsl/softmax.wgsl"],
    &[Input {
        name: "x",
        class: Float,
    }],
    &["out"],
    &[("WG", "256u")]
);

rows_kernels!(
    SOFTMAX_GRAD,
    SOFTMAX_GRAD_SUBGROUP,
    "softmax_grad",
    ["../wgsl/softmax_grad.wgsl"],
    &[
        Input {
            name: "y",
            class: Float,
        },
        Input {
            name: "g",
            class: Float,
        },
    ],
    &["dx"],
    &[("WG", "256u")]
);

pub static KERNELS: &[&Kernel] = &[
    &SOFTMAX,
    &SOFTMAX_GRAD,
    &SOFTMAX_SUBGROUP,
    &SOFTMAX_GRAD_SUBGROUP,
];
