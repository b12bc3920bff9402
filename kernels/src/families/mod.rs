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

/// A kernel on the row-reduction template (norms, softmax), declared twice from one body: `$tree`
/// reduces through workgroup-memory trees (rows_tree.wgsl, any adapter) and `$subgroup`, named
/// `<name>_subgroup`, through subgroup operations (rows_subgroup.wgsl, adapters with
/// `Features::SUBGROUP`). The body's files define `run(wid, nwg, lid)`.
macro_rules! rows_kernels {
    ($tree:ident, $subgroup:ident, $name:literal, [$($file:literal),+], $inputs:expr, $outputs:expr, $constants:expr) => {
        pub static $tree: Kernel = Kernel {
            name: $name,
            body: concat!(include_str!("../wgsl/rows_tree.wgsl"), $(include_str!($file)),+),
            inputs: $inputs,
            outputs: $outputs,
            constants: $constants,
        };
        pub static $subgroup: Kernel = Kernel {
            name: concat!($name, "_subgroup"),
            body: concat!(include_str!("../wgsl/rows_subgroup.wgsl"), $(include_str!($file)),+),
            inputs: $inputs,
            outputs: $outputs,
            constants: $constants,
        };
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

use crate::{Input, InputClass, Kernel};

/// A float input named `name` (stored as f32, f16 or bf16).
pub(crate) const fn float(name: &'static str) -> Input {
    Input {
        name,
        class: InputClass::Float,
    }
}

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
