//! Shape kernels: a strided block copy (concat, slice, split), a general strided gather (permute,
//! and the broadcast that the backward of sum and mean needs), nearest 2× upsampling, bilinear
//! resizing (align_corners), one pass of a separable resampling with host-computed taps (PIL's
//! antialiased bicubic), 2×2 block sums (average pooling), 2×2 block maxima (max pooling), the embedding gather, and the backward
//! kernels of this family: the bilinear interpolation matrices and the embedding table gradient.
//! Upsampling and block sums are each other's adjoints (up to their scale), so each serves the
//! other's backward. All use flat one-element-per-lane grids.

use crate::{
    Input,
    InputClass::{Float, Int},
    Kernel,
};

const X: &[Input] = &[Input {
    name: "x",
    class: Float,
}];

pub static COPY: Kernel = Kernel {
    name: "shape_copy",
    body: include_str!("../wgsl/shape_copy.wgsl"),
    inputs: X,
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static PERMUTE: Kernel = Kernel {
    name: "shape_permute",
    body: include_str!("../wgsl/shape_permute.wgsl"),
    inputs: X,
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static UPSAMPLE_NEAREST2X: Kernel = Kernel {
    name: "shape_upsample_nearest2x",
    body: include_str!("../wgsl/shape_upsample.wgsl"),
    inputs: X,
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static RESIZE_BILINEAR: Kernel = Kernel {
    name: "shape_resize_bilinear",
    body: include_str!("../wgsl/shape_resize.wgsl"),
    inputs: X,
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

/// One axis of a separable resampling: the image `x`, the per-output `spans` (start, count) and the
/// zero-padded weights `w` [outputs, taps].
pub static RESAMPLE: Kernel = Kernel {
    name: "shape_resample",
    body: include_str!("../wgsl/shape_resample.wgsl"),
    inputs: &[
        Input {
            name: "x",
            class: Float,
        },
        Input {
            name: "spans",
            class: Int,
        },
        Input {
            name: "w",
            class: Float,
        },
    ],
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static AVG_POOL2X2: Kernel = Kernel {
    name: "shape_avg_pool2x2",
    body: include_str!("../wgsl/shape_avgpool.wgsl"),
    inputs: X,
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static MAX_POOL2X2: Kernel = Kernel {
    name: "shape_max_pool2x2",
    body: include_str!("../wgsl/shape_maxpool.wgsl"),
    inputs: X,
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static EMBEDDING: Kernel = Kernel {
    name: "shape_embedding",
    body: include_str!("../wgsl/shape_embedding.wgsl"),
    inputs: &[
        Input {
            name: "table",
            class: Float,
        },
        Input {
            name: "ids",
            class: Int,
        },
    ],
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

/// Writes one axis's interpolation matrix [out_size, in_size]; no inputs.
pub static RESIZE_WEIGHTS: Kernel = Kernel {
    name: "shape_resize_weights",
    body: include_str!("../wgsl/shape_resize_weights.wgsl"),
    inputs: &[],
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

/// Table gradient of the embedding gather: `g` `[tokens, d]`, `ids` `[tokens]` into a zeroed
/// `[V, d]`.
pub static EMBEDDING_GRAD: Kernel = Kernel {
    name: "shape_embedding_grad",
    body: include_str!("../wgsl/shape_embedding_grad.wgsl"),
    inputs: &[
        Input {
            name: "g",
            class: Float,
        },
        Input {
            name: "ids",
            class: Int,
        },
    ],
    outputs: &["out"],
    constants: &[("WG", "256u")],
};

pub static KERNELS: &[&Kernel] = &[
    &COPY,
    &PERMUTE,
    &UPSAMPLE_NEAREST2X,
    &RESIZE_BILINEAR,
    &RESAMPLE,
    &AVG_POOL2X2,
    &MAX_POOL2X2,
    &EMBEDDING,
    &RESIZE_WEIGHTS,
    &EMBEDDING_GRAD,
];
