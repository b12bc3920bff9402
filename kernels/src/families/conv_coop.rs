//! The three convolution GEMMs (forward, input gradient, weight gradient) on cooperative matrices:
//! the tiled kernels' operand and epilogue hooks (conv_tiled.wgsl, conv_grad_input_tiled.wgsl,
//! conv_grad_weight_tiled.wgsl) on the cooperative GEMM template (gemm_coop.wgsl), for each tile
//! shape the hardware offers and on emulated matrices (any adapter; tests). Their constants are
//! the tiled kernels' plus the template's (`coop_constants!`).

use super::float;
use super::COOP_EMULATED;
use crate::{Input, Kernel};

const INPUTS: &[Input] = &[float("x"), float("w"), float("bias"), float("residual")];
const GRAD_INPUT_INPUTS: &[Input] = &[float("g"), float("w")];
const GRAD_WEIGHT_INPUTS: &[Input] = &[float("g"), float("x")];

const KERNEL: (&str, &str) = ("KH", "3u");
const KERNEL_W: (&str, &str) = ("KW", "3u");
const STRIDE: (&str, &str) = ("STRIDE", "1u");
const FORWARD: &[(&str, &str)] = coop_constants!(KERNEL, KERNEL_W, STRIDE, ("ACT", "0u"), ("HAS_BIAS", "false"), ("HAS_RESIDUAL", "false"); );
const GRAD_INPUT: &[(&str, &str)] =
    coop_constants!(KERNEL, KERNEL_W, STRIDE, ("NKY", "3u"), ("NKX", "3u"); );
const GRAD_WEIGHT: &[(&str, &str)] = coop_constants!(KERNEL, KERNEL_W, STRIDE; );
const FORWARD_EMULATED: &[(&str, &str)] = coop_constants!(
    KERNEL, KERNEL_W, STRIDE, ("ACT", "0u"), ("HAS_BIAS", "false"), ("HAS_RESIDUAL", "false");
    COOP_EMULATED[0], COOP_EMULATED[1]
);
const GRAD_INPUT_EMULATED: &[(&str, &str)] = coop_constants!(
    KERNEL, KERNEL_W, STRIDE, ("NKY", "3u"), ("NKX", "3u");
    COOP_EMULATED[0], COOP_EMULATED[1]
);
const GRAD_WEIGHT_EMULATED: &[(&str, &str)] =
    coop_constants!(KERNEL, KERNEL_W, STRIDE; COOP_EMULATED[0], COOP_EMULATED[1]);

macro_rules! kernel {
    ($name:expr, [$($prelude:literal),+], $params:literal, $hooks:literal, $inputs:expr, $constants:expr) => {
        Kernel {
            name: $name,
            body: concat!(
                $(include_str!($prelude),)+
                include_str!($params),
                include_str!($hooks),
                include_str!("../wgsl/conv_gemm_hooks.wgsl"),
                include_str!("../wgsl/gemm_coop.wgsl")
            ),
            inputs: $inputs,
            outputs: &["out"],
            constants: $constants,
        }
    };
}

/// The three GEMMs on one prelude: (forward, input gradient, weight gradient).
macro_rules! gemms {
    ($forward:ident, $grad_input:ident, $grad_weight:ident, $suffix:literal, [$($prelude:literal),+], $emulated:literal) => {
        pub static $forward: Kernel = kernel!(
            concat!("conv2d_coop_", $suffix),
            [$($prelude),+],
            "../wgsl/conv_params.wgsl",
            "../wgsl/conv_tiled.wgsl",
            INPUTS,
            if $emulated { FORWARD_EMULATED } else { FORWARD }
        );
        pub static $grad_input: Kernel = kernel!(
            concat!("conv2d_grad_input_coop_", $suffix),
            [$($prelude),+],
            "../wgsl/conv_grad_params.wgsl",
            "../wgsl/conv_grad_input_tiled.wgsl",
            GRAD_INPUT_INPUTS,
            if $emulated { GRAD_INPUT_EMULATED } else { GRAD_INPUT }
        );
        pub static $grad_weight: Kernel = kernel!(
            concat!("conv2d_grad_weight_coop_", $suffix),
            [$($prelude),+],
            "../wgsl/conv_grad_params.wgsl",
            "../wgsl/conv_grad_weight_tiled.wgsl",
            GRAD_WEIGHT_INPUTS,
            if $emulated { GRAD_WEIGHT_EMULATED } else { GRAD_WEIGHT }
        );
    };
}

gemms!(
    CONV2D_COOP_F16X16,
    CONV2D_GRAD_INPUT_COOP_F16X16,
    CONV2D_GRAD_WEIGHT_COOP_F16X16,
    "f16x16",
    [
        "../wgsl/coop_type_f16x16.wgsl",
        "../wgsl/coop_hardware.wgsl"
    ],
    false
);
gemms!(
    CONV2D_COOP_F16X8,
    CONV2D_GRAD_INPUT_COOP_F16X8,
    CONV2D_GRAD_WEIGHT_COOP_F16X8,
    "f16x8",
    ["../wgsl/coop_type_f16x8.wgsl", "../wgsl/coop_hardware.wgsl"],
    false
);
gemms!(
    CONV2D_COOP_F32X8,
    CONV2D_GRAD_INPUT_COOP_F32X8,
    CONV2D_GRAD_WEIGHT_COOP_F32X8,
    "f32x8",
    ["../wgsl/coop_type_f32x8.wgsl", "../wgsl/coop_hardware.wgsl"],
    false
);
gemms!(
    CONV2D_COOP_EMULATED,
    CONV2D_GRAD_INPUT_COOP_EMULATED,
    CONV2D_GRAD_WEIGHT_COOP_EMULATED,
    "emulated",
    ["../wgsl/coop_emulated.wgsl"],
    true
);

pub static KERNELS: &[&Kernel] = &[
    &CONV2D_COOP_F16X16,
    &CONV2D_GRAD_INPUT_COOP_F16X16,
    &CONV2D_GRAD_WEIGHT_COOP_F16X16,
    &CONV2D_COOP_F16X8,
    &CONV2D_GRAD_INPUT_COOP_F16X8,
    &CONV2D_GRAD_WEIGHT_COOP_F16X8,
    &CONV2D_COOP_F32X8,
    &CONV2D_GRAD_INPUT_COOP_F32X8,
    &CONV2D_GRAD_WEIGHT_COOP_F32X8,
    &CONV2D_COOP_EMULATED,
    &CONV2D_GRAD_INPUT_COOP_EMULATED,
    &CONV2D_GRAD_WEIGHT_COOP_EMULATED,
];
