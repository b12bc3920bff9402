//! Test support: a shared poisoned device, a seeded RNG, and checked comparison with references.

use std::sync::OnceLock;

use iterinv_engine::{Gpu, GpuOptions, Tensor};

/// The device shared by the op tests, in poison mode.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            ..Default::default()
        })
        .expect("a GPU adapter (lavapipe in CI)")
    })
}

/// A device in poison mode with the kernel variants for CPUs or for GPUs forced.
pub fn gpu_variant(cpu_kernels: bool) -> &'static Gpu {
    static CPU: OnceLock<Gpu> = OnceLock::new();
    static GPU: OnceLock<Gpu> = OnceLock::new();
    let cell = if cpu_kernels { &CPU } else { &GPU };
    cell.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            cpu_kernels: Some(cpu_kernels),
            ..Default::default()
        })
        .unwrap()
    })
}

/// SplitMix64: a small deterministic generator for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` values uniform in [lo, hi), as f32.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (hi - lo) * self.uniform()) as f32)
            .collect()
    }
    /// Integer in [lo, hi].
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

pub fn upload(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu(), shape, data).unwrap()
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Read `out` back and compare it with `expected` elementwise: |got − exp| ≤ atol + rtol·|exp|.
/// Fails on any NaN, on a shape mismatch, or when a guard word after the data was overwritten.
pub fn assert_close(what: &str, out: &Tensor, expected: &[f64], atol: f64, rtol: f64) {
    let got = out.to_vec().unwrap();
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: {} elements, expected {}",
        got.len(),
        expected.len()
    );
    assert!(
        out.guards_intact().unwrap(),
        "{what}: a kernel wrote past the end of its output"
    );
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert!(
            !g.is_nan(),
            "{what}: element {i} is NaN (unwritten or invalid), expected {e}"
        );
        let err = (g as f64 - e).abs();
        let excess = err - (atol + rtol * e.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}: element {i} is {} but the reference is {} (atol {atol}, rtol {rtol})",
        got[i],
        expected[i]
    );
}
