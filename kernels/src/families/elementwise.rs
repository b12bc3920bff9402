//! Elementwise kernels: unary maps (with activation and affine forms), broadcasting binary ops,
//! and fills.

use crate::{Input, InputClass::Float, Kernel};

pub static UNARY: Kernel = Kernel {
    name: "unary",
    body: include_str!("../wgsl/unary.wgsl"),
    inputs: &[Input {
        name: "x",
        class: Float,
    }],
    outputs: &["out"],
    constants: &[("OP", "0u"), ("WG", "256u")],
};

pub static BINARY: Kernel = Kernel {
    name: "binary",
    body: include_str!("../wgsl/binary.wgsl"),
    inputs: &[
        Input {
            name: "x",
            class: Float,
        },
        Input {
            name: "y",
            class: Float,
        },
    ],
    outputs: &["out"],
    constants: &[("OP", "0u"), ("WG", "256u")],
};

/// dx = g · f'(x) for the maps of `UNARY` (same `OP` codes).
pub static UNARY_GRAD: Kernel = Kernel {
    name: "unary_grad",
    body: include_str!("../wgsl/unary_grad.wgsl"),
    inputs: &[
        Input {
            name: "x",
            class: Float,
        },
        Input {
            name: "g",
            class: Float,
        },
    ],
    outputs: &["out"],
    constants: &[("OP", "0u"), ("WG", "256u")],
};

pub static FILL: Kernel = Kernel {
    name: "fill",
    body: include_str!("../wgsl/fill.wgsl"),
    inputs: &[],
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static KERNELS: &[&Kernel] = &[&UNARY, &UNARY_GRAD, &BINARY, &FILL];
