//! Seeded Gaussian noise, identical bit for bit for a seed on every backend and platform.
//!
//! The numbers are made on the CPU and uploaded: Philox4x32-10 (integer-only, so exact everywhere)
//! gives uniform words, and the Box–Muller transform runs in f64 with `libm` (a portable, pure Rust
//! libm) before rounding to f32. A WGSL transform would not do: WGSL lets `log`, `cos` and `sqrt`
//! differ by several ULP between drivers, so the same seed would give different images on Vulkan,
//! Metal and DX12. Noise is needed once per sampling step at most (3·256² values for IF stage II),
//! so the upload is cheap next to a UNet pass.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds (Salmon et al., SC'11), as Random123 defines it.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let p0 = M0 as u64 * c[0] as u64;
        let p1 = M1 as u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// `n` standard normal values for `seed`; `stream` selects an independent sequence for the same
/// seed (e.g. one per sampling step). Value `i` depends only on (seed, stream, i).
pub fn gaussian_values(n: usize, seed: u64, stream: u32) -> Vec<f32> {
    let key = [seed as u32, (seed >> 32) as u32];
    let mut out = Vec::with_capacity(n + 3);
    let mut block = 0u64;
    while out.len() < n {
        let w = philox4x32_10([block as u32, (block >> 32) as u32, stream, 0], key);
        for pair in [[w[0], w[1]], [w[2], w[3]]] {
            // u1 in (0, 1] so the log is finite; u2 in [0, 1).
            let u1 = (pair[0] as f64 + 1.0) * (1.0 / 4_294_967_296.0);
            let u2 = pair[1] as f64 * (1.0 / 4_294_967_296.0);
            let r = libm::sqrt(-2.0 * libm::log(u1));
            let theta = 2.0 * std::f64::consts::PI * u2;
            out.push((r * libm::cos(theta)) as f32);
            out.push((r * libm::sin(theta)) as f32);
        }
        block += 1;
    }
    out.truncate(n);
    out
}

impl Tensor {
    /// A tensor of standard normal noise, reproducible from `(seed, stream)` on every backend.
    pub fn randn(gpu: &Gpu, shape: &[usize], seed: u64, stream: u32) -> Result<Tensor> {
        let n = shape.iter().product();
        Tensor::from_f32(gpu, shape, &gaussian_values(n, seed, stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_random123_known_answers() {
        // Random123's tests/kat_vectors for philox4x32_10.
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn gaussian_statistics_and_determinism() {
        let n = 200_000;
        let v = gaussian_values(n, 42, 0);
        assert_eq!(v, gaussian_values(n, 42, 0));
        assert_ne!(v[..16], gaussian_values(16, 43, 0)[..]);
        assert_ne!(v[..16], gaussian_values(16, 42, 1)[..]);
        // A prefix is a prefix: value i does not depend on n.
        assert_eq!(v[..1001], gaussian_values(1001, 42, 0)[..]);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt =
            v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        // Sampling error of the mean is 1/sqrt(n) = 0.0022; of the variance sqrt(2/n) = 0.0032.
        assert!(mean.abs() < 0.012, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt}");
        let frac_beyond_2 = v.iter().filter(|x| x.abs() > 2.0).count() as f64 / n as f64;
        assert!(
            (frac_beyond_2 - 0.0455).abs() < 0.003,
            "P(|x|>2) = {frac_beyond_2}"
        );
    }
}
