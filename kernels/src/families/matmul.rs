//! Matrix multiplication: C = act(A·B + bias), batched, any operand transposed (via strides),
//! with split-K accumulation and output-column offsets so a weight stored in several chunks can be
//! multiplied chunk by chunk.

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
];

/// Workgroup-memory tiles (64×64 outputs, K-tile 16) with 4×4 outputs per invocation: for GPUs.
/// `CHECK_BOUNDS = false` drops every bounds check when M, N and K divide the tiles.
pub static MATMUL_TILED: Kernel = Kernel {
    name: "matmul_tiled",
    body: concat!(
        include_str!("../wgsl/matmul_params.wgsl"),
        include_str!("../wgsl/matmul_tiled.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["c"],
    constants: &[
        ("ACT", "0u"),
        ("HAS_BIAS", "false"),
        ("CHECK_BOUNDS", "true"),
        ("A_M_FASTEST", "false"),
        ("B_K_FASTEST", "false"),
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
        include_str!("../wgsl/matmul_direct.wgsl")
    ),
    inputs: INPUTS,
    outputs: &["c"],
    constants: &[
        ("ACT", "0u"),
        ("HAS_BIAS", "false"),
        ("TM", "16u"),
        ("WX", "64u"),
        ("WY", "1u"),
    ],
};

pub static KERNELS: &[&Kernel] = &[&MATMUL_TILED, &MATMUL_DIRECT];
