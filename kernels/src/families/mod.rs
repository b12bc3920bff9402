//! The table of kernels, one module per family. Each family module owns its WGSL files and
//! declares their interfaces.

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
