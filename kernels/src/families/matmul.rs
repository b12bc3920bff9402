//! Matrix multiplication: C = act(A·B + bias), batched, any operand transposed (via strides),
//! with split-K accumulation and output-column offsets so a weight stored in several chunks can be
//! multiplied chunk by chunk.

use super::COOP_EMULATED;
use crate::{Input, InputClass::Float, Kernel};

const INPUTS: &[Input] = &[
    Input {
        name: "a",
        class: Float,
    },
    Input {
        name: "b",
        class: Float,
    },
    Input {
        name: "bias",
        class: Float,
    },
    // Added to the result after the activation (HAS_RESIDUAL), at the output's own index.
    Input {
        name: "residual",
        class: Float,
    },
];

/// The scalar GEMM template (gemm_tiled.wgsl: 64×64 outputs, K-tile 16, 4×4 outputs per
/// invocation) with matmul's operand and epilogue hooks, the cooperative kernels' own: for GPUs.
/// `CHECK_BOUNDS = false` drops every bounds check when M, N and K divide the tiles. In this and
/// the direct kernel `ROUND_F16` rounds the operands to f16 (precision f16).
pub static MATMUL_TILED: Kernel = Kernel {
    name: "matmul_tiled",
    body: concat!(
        include_str!("../wgsl/matmul_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/matmul_gemm_hooks.wgsl"),
        include_str!("../wgsl/gemm_tiled.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["c"],
    constants: &[
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

/// Register blocking without workgroup memory or barriers: for CPU adapters (lavapipe), where a
/// barrier switches between SIMD programs and costs more than it saves. Each invocation holds `TM`
/// (4, 8 or 16) rows × 8 columns in private vectors; the workgroup is `WX` × `WY` = 64 invocations.
/// Its only loop runs one iteration per two k, which the engine counts on to stay under a loop
/// cap.
pub static MATMUL_DIRECT: Kernel = Kernel {
    name: "matmul_direct",
    body: concat!(
        include_str!("../wgsl/matmul_params.wgsl"),
        include_str!("../wgsl/round_operands.wgsl"),
        include_str!("../wgsl/matmul_direct.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["c"],
    constants: &[
        ("ACT", "0u"),
        ("HAS_BIAS", "false"),
        ("HAS_RESIDUAL", "false"),
        ("TM", "16u"),
        ("WX", "64u"),
        ("WY", "1u"),
        ("ROUND_F16", "false"),
    ],
};

const COOP_CONSTANTS: &[(&str, &str)] =
    coop_constants!(("ACT", "0u"), ("HAS_BIAS", "false"), ("HAS_RESIDUAL", "false"); );

macro_rules! coop_kernel {
    ($name:literal, $types:literal) => {
        Kernel {
            name: $name,
            body: concat!(
                include_str!($types),
                include_str!("../wgsl/coop_hardware.wgsl"),
                include_str!("../wgsl/matmul_params.wgsl"),
                include_str!("../wgsl/matmul_gemm_hooks.wgsl"),
                include_str!("../wgsl/gemm_coop.wgsl")
            ),
            inputs: INPUTS,
            outputs: &["c"],
            constants: COOP_CONSTANTS,
        }
    };
}

/// Tensor cores: 16 × 16 × 16 tiles, f16 inputs, f32 accumulation (Vulkan's
/// `VK_KHR_cooperative_matrix`). Needs `SHADER_F16` and `EXPERIMENTAL_COOPERATIVE_MATRIX`.
pub static MATMUL_COOP_F16X16: Kernel =
    coop_kernel!("matmul_coop_f16x16", "../wgsl/coop_type_f16x16.wgsl");

/// 8 × 8 × 8 tiles, f16 inputs, f32 accumulation (Metal's simdgroup matrices).
pub static MATMUL_COOP_F16X8: Kernel =
    coop_kernel!("matmul_coop_f16x8", "../wgsl/coop_type_f16x8.wgsl");

/// 8 × 8 × 8 tiles, f32 inputs and accumulation (Metal's simdgroup matrices).
pub static MATMUL_COOP_F32X8: Kernel =
    coop_kernel!("matmul_coop_f32x8", "../wgsl/coop_type_f32x8.wgsl");

/// The cooperative-matrix kernel's body on emulated matrices of side `CM`: runs on any adapter,
/// for testing the body where the hardware has no cooperative matrices. `ROUND_F16` rounds the
/// staged inputs to f16, as the f16 hardware variants do.
pub static MATMUL_COOP_EMULATED: Kernel = Kernel {
    name: "matmul_coop_emulated",
    body: concat!(
        include_str!("../wgsl/coop_emulated.wgsl"),
        include_str!("../wgsl/matmul_params.wgsl"),
        include_str!("../wgsl/matmul_gemm_hooks.wgsl"),
        include_str!("../wgsl/gemm_coop.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["c"],
    constants: coop_constants!(
        ("ACT", "0u"), ("HAS_BIAS", "false"), ("HAS_RESIDUAL", "false");
        COOP_EMULATED[0], COOP_EMULATED[1]
    ),
};

pub static KERNELS: &[&Kernel] = &[
    &MATMUL_TILED,
    &MATMUL_DIRECT,
    &MATMUL_COOP_F16X16,
    &MATMUL_COOP_F16X8,
    &MATMUL_COOP_F32X8,
    &MATMUL_COOP_EMULATED,
];
