//! The table of kernels, one module per family. Each family module owns its WGSL files and
//! declares their interfaces.

/// The constants of a cooperative-matrix GEMM kernel (gemm_coop.wgsl): the op's own first, then
/// the template's (bounds checks, operand layouts and the grid: `WM` × `WN` subgroups of `SG`
/// invocations, each owning `TI` × `TJ` tiles, `KSTEPS` tiles of K staged per step; `SG` must be
/// the adapter's subgroup size for the hardware variants, any divisor of `CM`² for the emulated
/// ones), then any extra ones (the emulated kernels' `CM` and `ROUND_F16`).
macro_rules! coop_constants {
    ($($own:expr),* ; $($extra:expr),*) => {
        &[
            $($own,)*
            ("CHECK_BOUNDS", "true"),
            ("A_M_FASTEST", "false"),
            ("B_K_FASTEST", "false"),
            ("SG", "32u"),
            ("WM", "2u"),
            ("WN", "2u"),
            ("TI", "2u"),
            ("TJ", "2u"),
            ("KSTEPS", "2u"),
            $($extra,)*
        ]
    };
}

/// The emulated cooperative kernels' extra constants: the tile side and the f16 rounding of
/// precision f16.
const COOP_EMULATED: [(&str, &str); 2] = [("CM", "16u"), ("ROUND_F16", "true")];

pub mod attention;
pub mod conv;
pub mod conv_coop;
pub mod elementwise;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod texture;

use crate::Kernel;

/// Every kernel of the engine.
pub fn all() -> Vec<&'static Kernel> {
    [
        elementwise::KERNELS,
        matmul::KERNELS,
        conv::KERNELS,
        conv_coop::KERNELS,
        norm::KERNELS,
        softmax::KERNELS,
        attention::KERNELS,
        shape::KERNELS,
        reduce::KERNELS,
        optim::KERNELS,
        texture::KERNELS,
    ]
    .concat()
}

/// The kernel named `name`, if any.
pub fn kernel(name: &str) -> Option<&'static Kernel> {
    all().into_iter().find(|k| k.name == name)
}
