//! 2-D convolution (NCHW, groups 1, dilation 1) and its gradients as implicit GEMMs, with operands
//! gathered on the fly (no im2col or col2im buffer):
//! - forward: M = Cout, N = B·Ho·Wo, K = Cin·kh·kw, bias and activation fused in the epilogue;
//! - input gradient (a transposed convolution), per phase (iy mod stride, ix mod stride):
//!   M = Cin, N = B·⌈H/stride⌉·⌈W/stride⌉, K = Cout·(the taps reaching that phase);
//! - weight gradient: M = Cout, N = Cin·kh·kw, K = B·Ho·Wo.
//!
//! Each in two variants of one interface: workgroup-memory tiles for GPUs (one shared tile loop,
//! gemm_tiled.wgsl, with the tile origin and sizes of conv_gemm_hooks.wgsl) and register blocking without barriers for CPU adapters (one shared
//! block, conv_block.wgsl). Every kernel adds the part [kb, ke) of its reduction given in its
//! params, so a launcher can split a reduction over dispatches.
//!
//! `ROUND_F16` (precision f16) rounds both GEMM operands of every kernel to f16 as they are loaded
//! (x and w forward, g and w for dX, g and x for dW); products accumulate in f32 and the bias and
//! activation epilogue stays f32.

use super::float;
use crate::{Input, Kernel};

/// The forward's: x, w, bias and the residual added after the activation (HAS_RESIDUAL).
const INPUTS: &[Input] = &[float("x"), float("w"), float("bias"), float("residual")];
const GRAD_INPUT_INPUTS: &[Input] = &[float("g"), float("w")];
const GRAD_WEIGHT_INPUTS: &[Input] = &[float("g"), float("x")];

/// The scalar GEMM template (gemm_tiled.wgsl: 64×64 output tiles, K-tile 16, 16×16 invocations
/// with 4×4 outputs each) with the forward's hooks: for GPUs. `CHECK_BOUNDS = false` drops the
/// M/N/K bounds checks when Cout, N and the K range divide the tiles.
pub static CONV2D_TILED: Kernel = Kernel {
    name: "conv2d_tiled",
    body: concat!(
        include_str!("../wgsl/conv_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/conv_tiled.wgsl"),
        include_str!("../wgsl/conv_gemm_hooks.wgsl"),
        include_str!("../wgsl/gemm_tiled.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("ACT", "0u"),
        ("HAS_BIAS", "false"),
        ("HAS_RESIDUAL", "false"),
        ("CHECK_BOUNDS", "true"),
        ("TR", "4u"),
        ("TK", "16u"),
        ("A_M_FASTEST", "false"),
        ("B_K_FASTEST", "false"),
        ("ROUND_F16", "false"),
    ],
};

/// Register blocking without workgroup memory or barriers: MB (4 or 8) channels × NB (8 or 16)
/// neighbouring columns of one output row per invocation, for CPU adapters (lavapipe), where a
/// barrier switches between SIMD programs and every buffer load is a loop over the lanes.
pub static CONV2D_DIRECT: Kernel = Kernel {
    name: "conv2d_direct",
    body: concat!(
        include_str!("../wgsl/conv_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/conv_block.wgsl"),
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
        ("HAS_RESIDUAL", "false"),
        ("MB", "8u"),
        ("NB", "16u"),
        ("ROUND_F16", "false"),
    ],
};

/// The input gradient of one phase, GPU tiles. NKY × NKX (at least 1 each) taps reach the phase.
pub static CONV2D_GRAD_INPUT_TILED: Kernel = Kernel {
    name: "conv2d_grad_input_tiled",
    body: concat!(
        include_str!("../wgsl/conv_grad_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/conv_grad_input_tiled.wgsl"),
        include_str!("../wgsl/conv_gemm_hooks.wgsl"),
        include_str!("../wgsl/gemm_tiled.wgsl")
    ),
    inputs: GRAD_INPUT_INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("NKY", "3u"),
        ("NKX", "3u"),
        ("CHECK_BOUNDS", "true"),
        ("TR", "4u"),
        ("TK", "16u"),
        ("A_M_FASTEST", "false"),
        ("B_K_FASTEST", "false"),
        ("ROUND_F16", "false"),
    ],
};

/// The input gradient of one phase, CPU-adapter register blocks: MB input channels × NB columns.
pub static CONV2D_GRAD_INPUT_DIRECT: Kernel = Kernel {
    name: "conv2d_grad_input_direct",
    body: concat!(
        include_str!("../wgsl/conv_grad_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/conv_block.wgsl"),
        include_str!("../wgsl/conv_grad_input_direct.wgsl")
    ),
    inputs: GRAD_INPUT_INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("NKY", "3u"),
        ("NKX", "3u"),
        ("MB", "8u"),
        ("NB", "16u"),
        ("ROUND_F16", "false"),
    ],
};

/// The weight gradient, GPU tiles.
pub static CONV2D_GRAD_WEIGHT_TILED: Kernel = Kernel {
    name: "conv2d_grad_weight_tiled",
    body: concat!(
        include_str!("../wgsl/conv_grad_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/conv_grad_weight_tiled.wgsl"),
        include_str!("../wgsl/conv_gemm_hooks.wgsl"),
        include_str!("../wgsl/gemm_tiled.wgsl")
    ),
    inputs: GRAD_WEIGHT_INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("CHECK_BOUNDS", "true"),
        ("TR", "4u"),
        ("TK", "16u"),
        ("A_M_FASTEST", "false"),
        ("B_K_FASTEST", "false"),
        ("ROUND_F16", "false"),
    ],
};

/// The weight gradient, CPU-adapter register blocks: MB output channels × NB input channels of
/// one tap.
pub static CONV2D_GRAD_WEIGHT_DIRECT: Kernel = Kernel {
    name: "conv2d_grad_weight_direct",
    body: concat!(
        include_str!("../wgsl/conv_grad_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/conv_block.wgsl"),
        include_str!("../wgsl/conv_grad_weight_direct.wgsl")
    ),
    inputs: GRAD_WEIGHT_INPUTS,
    outputs: &["out"],
    constants: &[
        ("KH", "3u"),
        ("KW", "3u"),
        ("STRIDE", "1u"),
        ("MB", "8u"),
        ("NB", "16u"),
        ("ROUND_F16", "false"),
    ],
};

pub static KERNELS: &[&Kernel] = &[
    &CONV2D_TILED,
    &CONV2D_DIRECT,
    &CONV2D_GRAD_INPUT_TILED,
    &CONV2D_GRAD_INPUT_DIRECT,
    &CONV2D_GRAD_WEIGHT_TILED,
    &CONV2D_GRAD_WEIGHT_DIRECT,
];
