//! Optimizer kernels: one in-place update of a parameter tensor and its optimizer state per
//! dispatch. The parameter and state buffers are bound as (read-write) outputs; the gradient is the
//! only input, so it may be stored as f32, f16 or bf16.

use crate::{Input, InputClass::Float, Kernel};

/// torch.optim.Adam (amsgrad off, L2 weight decay folded into the gradient).
pub static ADAM: Kernel = Kernel {
    name: "optim_adam",
    body: include_str!("../wgsl/optim_adam.wgsl"),
    inputs: &[Input {
        name: "g",
        class: Float,
    }],
    outputs: &["param", "exp_avg", "exp_avg_sq"],
    constants: &[("WG", "256u")],
};

/// torch.optim.SGD (momentum with PyTorch's buffer semantics, dampening, Nesterov, weight decay).
/// Without momentum `buf` is never touched: bind the dummy buffer there.
pub static SGD: Kernel = Kernel {
    name: "optim_sgd",
    body: include_str!("../wgsl/optim_sgd.wgsl"),
    inputs: &[Input {
        name: "g",
        class: Float,
    }],
    outputs: &["param", "buf"],
    constants: &[
        ("WG", "256u"),
        ("HAS_MOMENTUM", "true"),
        ("NESTEROV", "false"),
    ],
};

pub static KERNELS: &[&Kernel] = &[&ADAM, &SGD];
