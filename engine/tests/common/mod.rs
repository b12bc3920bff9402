//! Helpers shared by the engine's top-level test binaries (the op tests have their own, in
//! ops/common.rs).

use iterinv_engine::{Gpu, Tensor};

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A tensor of [`values`].
pub fn tensor(gpu: &Gpu, shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_f32(gpu, shape, &values(shape.iter().product(), seed)).unwrap()
}
