//! Elementwise kernels: unary maps (with activation and affine forms), broadcasting binary ops,
//! fills, and gated activations (GEGLU).

use super::float;
use crate::Kernel;

pub static UNARY: Kernel = Kernel {
    name: "unary",
    body: include_str!("../wgsl/unary.wgsl"),
    inputs: &[float("x")],
    outputs: &["out"],
    constants: &[("OP", "0u"), ("WG", "256u")],
};

pub static BINARY: Kernel = Kernel {
    name: "binary",
    body: include_str!("../wgsl/binary.wgsl"),
    inputs: &[float("x"), float("y")],
    outputs: &["out"],
    constants: &[("OP", "0u"), ("WG", "256u")],
};

/// dx = g · f'(x) for the maps of `UNARY` (same `OP` codes).
pub static UNARY_GRAD: Kernel = Kernel {
    name: "unary_grad",
    body: include_str!("../wgsl/unary_grad.wgsl"),
    inputs: &[float("x"), float("g")],
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

/// out = first half · act(second half) over the last dimension (GEGLU), read in place.
pub static GATED: Kernel = Kernel {
    name: "gated",
    body: include_str!("../wgsl/gated.wgsl"),
    inputs: &[float("x")],
    outputs: &["out"],
    constants: &[("ACT", "1u"), ("WG", "256u")],
};

/// The gradient of `GATED` with respect to its input (both halves in one dispatch).
pub static GATED_GRAD: Kernel = Kernel {
    name: "gated_grad",
    body: include_str!("../wgsl/gated_grad.wgsl"),
    inputs: &[float("x"), float("g")],
    outputs: &["out"],
    constants: &[("ACT", "1u"), ("WG", "256u")],
};

pub static KERNELS: &[&Kernel] = &[&UNARY, &UNARY_GRAD, &BINARY, &FILL, &GATED, &GATED_GRAD];
