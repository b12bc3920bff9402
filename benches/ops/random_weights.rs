//! Random f16 weights for the benches' full-size networks (no checkpoint needed).

use iterinv::models::weights::WeightSource;
use iterinv::{Gpu, Tensor};

/// Uniform random f16 weights with the variance of PyTorch's default init (±1/√fan_in), norm
/// scales near 1: values do not change the timing, but NaN or overflow could.
pub struct RandomF16<'a> {
    pub gpu: &'a Gpu,
}

impl WeightSource for RandomF16<'_> {
    fn tensor(&self, key: &str, shape: &[usize]) -> iterinv::models::Result<Tensor> {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let (center, half_width) = match (shape.len(), key.ends_with(".weight")) {
            (1, true) => (1.0, 0.1),
            (1, false) => (0.0, 0.02),
            _ => (0.0, 1.0 / (fan_in as f32).sqrt()),
        };
        let mut state = key.bytes().fold(0x9e37_79b9u32, |h, b| {
            (h ^ b as u32).wrapping_mul(16_777_619)
        });
        let data: Vec<half::f16> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let u = (state >> 8) as f32 / (1u32 << 24) as f32;
                half::f16::from_f32(center + half_width * (2.0 * u - 1.0))
            })
            .collect();
        Ok(Tensor::from_f16(self.gpu, shape, &data)?)
    }

    /// Every weight exists under the name asked first.
    fn contains(&self, _key: &str) -> bool {
        true
    }

    fn skip(&self, _key: &str) {}
}
