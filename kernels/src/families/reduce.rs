//! Reduction kernels: sums over the middle axis of an [outer, r, inner] view (sum and mean over any
//! set of dims are built from these by the engine), the per-sample quantile by radix select, and
//! the quantile's backward.

use crate::{Input, InputClass::Float, Kernel};

/// `WG` lanes as `TX` columns × `WG/TX` lanes along the reduced axis; both powers of two.
pub static SUM: Kernel = Kernel {
    name: "reduce_sum",
    body: include_str!("../wgsl/reduce_sum.wgsl"),
    inputs: &[Input {
        name: "x",
        class: Float,
    }],
    outputs: &["out"],
    constants: &[("WG", "256u"), ("TX", "1u")],
};

/// One workgroup of 256 lanes per sample (the histogram has 256 bins, one per lane).
pub static QUANTILE: Kernel = Kernel {
    name: "reduce_quantile",
    body: include_str!("../wgsl/reduce_quantile.wgsl"),
    inputs: &[Input {
        name: "x",
        class: Float,
    }],
    outputs: &["out"],
    constants: &[],
};

/// One workgroup of 256 lanes per sample: `x` `[batch, n]`, the output gradient `g` `[batch]` and the
/// selected elements `vlo`, `vhi` `[batch]` give the gradient `[batch, n]`.
pub static QUANTILE_GRAD: Kernel = Kernel {
    name: "reduce_quantile_grad",
    body: include_str!("../wgsl/reduce_quantile_grad.wgsl"),
    inputs: &[
        Input {
            name: "x",
            class: Float,
        },
        Input {
            name: "g",
            class: Float,
        },
        Input {
            name: "vlo",
            class: Float,
        },
        Input {
            name: "vhi",
            class: Float,
        },
    ],
    outputs: &["out"],
    constants: &[],
};

pub static KERNELS: &[&Kernel] = &[&SUM, &QUANTILE, &QUANTILE_GRAD];
