//! Shared by the root package's integration tests.

use std::sync::OnceLock;

use iterinv::{Gpu, GpuOptions};

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
