//! 2-D convolution (NCHW, groups 1, dilation 1) as an implicit GEMM: M = Cout, N = B·Ho·Wo,
//! K = Cin·kh·kw, with input elements gathered on the fly (no im2col buffer), bias and activation
//! fused in the epilogue. Two variants of one interface: workgroup-memory tiles for GPUs, register
//! blocking without barriers for CPU adapters.

use crate::{Input, InputClass::Float, Kernel};

const INPUTS: &[Input] = &[
    Input {
        name: "x",
        class: Float,
    },
    Input {
        name: "w",
        class: Float,
    },
    Input {
        name: "bias",
        class: Float,
    },
];

/// 64×64 output tiles, K-tile 16, 16×16 invocations with 4×4 outputs each: for GPUs.
/// `CHECK_BOUNDS = false` drops the M/N/K bounds checks when Cout, N and K divide the tiles.
pub static CONV2D_TILED: Kernel = Kernel {
    name: "conv2d_tiled",
    body: concat!(
        include_str!("../wgsl/conv_params.wgsl"),
        include_str!("../wgsl/conv_tiled.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("ACT", "0u"),
        ("HAS_BIAS", "false"),
        ("CHECK_BOUNDS", "true"),
    ],
};

/// Register blocking without workgroup memory or barriers: MB (4 or 8) channels × NB (8 or 16)
/// neighbouring columns of one output row per invocation, for CPU adapters (lavapipe), where a
/// barrier switches between SIMD programs and every buffer load is a loop over the lanes.
pub static CONV2D_DIRECT: Kernel = Kernel {
    name: "conv2d_direct",
    body: concat!(
        include_str!("../wgsl/conv_params.wgsl"),
        include_str!("../wgsl/conv_direct.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("ACT", "0u"),
        ("HAS_BIAS", "false"),
        ("MB", "8u"),
        ("NB", "16u"),
    ],
};

pub static KERNELS: &[&Kernel] = &[&CONV2D_TILED, &CONV2D_DIRECT];
