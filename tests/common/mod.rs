//! Shared by the root package's integration tests.

use std::sync::OnceLock;

use iterinv::{Gpu, GpuOptions, Tensor};

/// One device per test binary, with outputs poisoned (NaN) before every kernel writes them.
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

/// The largest error of `got` relative to the golden's largest magnitude (shape `want.0`, values
/// `want.1`); asserts every value is finite and the error is at most `tol`, prints the
/// measurement, and returns it.
pub fn assert_close(what: &str, got: &Tensor, want: &(Vec<usize>, Vec<f64>), tol: f64) -> f64 {
    assert_eq!(got.shape(), &want.0[..], "{what}: shape");
    let got = got.to_vec().unwrap();
    let scale = want.1.iter().fold(0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&want.1)
        .map(|(&a, &b)| {
            assert!(a.is_finite(), "{what}: engine value {a}");
            (a as f64 - b).abs()
        })
        .fold(0f64, f64::max);
    let rel = err / scale;
    eprintln!("{what}: max error {err:.3e} = {rel:.3e} × scale {scale:.3} (tolerance {tol:.0e})");
    assert!(
        rel <= tol,
        "{what}: error {rel:.3e} × scale exceeds {tol:.0e}"
    );
    rel
}
