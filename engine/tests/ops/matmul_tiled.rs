//! The scalar GEMM template's wide register blocks in matmul (the narrow ones are matmul.rs's
//! subject, on every shape it tests).

use iterinv_engine::{Activation, Cooperative, Gpu, GpuOptions};

use crate::common::wide_tiles_gpu;
use crate::matmul::{case, run, WeightType};

/// The tiled kernel's wide register blocks (8 × 8 per invocation, 128 × 128 tiles, K steps of
/// 8), which GEMMs of two such tiles a side take (on test devices whatever the grid, see
/// `wide_tiles_gpu`): ragged and tile-multiple shapes, every transpose, a batch, a transposed
/// output, and K split over dispatches by a loop cap. The profile names the variant that ran.
#[test]
fn wide_register_blocks_of_the_tiled_kernel() {
    let g = wide_tiles_gpu(true);
    for (i, (ta, tb)) in [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        let c = case(&[], 300, 260, 70, ta, tb, false);
        run(
            &g,
            &c,
            WeightType::F32,
            true,
            Activation::Gelu,
            140 + i as u64,
        );
    }
    run(
        &g,
        &case(&[2], 256, 256, 48, false, true, true),
        WeightType::F16,
        false,
        Activation::None,
        145,
    );
    run(
        &g,
        &case(&[2], 260, 300, 33, false, true, false).transposed_out(),
        WeightType::F32,
        true,
        Activation::Silu,
        146,
    );
    let report = g.profile_report().unwrap().to_string();
    assert!(
        report.contains("matmul_tiled[CHECK_BOUNDS=true,TR=8]"),
        "{report}"
    );
    assert!(
        report.contains("matmul_tiled[CHECK_BOUNDS=false,TR=8]"),
        "{report}"
    );
    // A cap of 2,000 iterations: K steps of 8 at 221 iterations each, 32 k a dispatch.
    let capped = Gpu::with_options(GpuOptions {
        poison: true,
        cpu_kernels: Some(false),
        cooperative: Some(Cooperative::Off),
        max_loop_iterations: Some(2000),
        ..Default::default()
    })
    .unwrap();
    let before = capped.kernel_dispatches("matmul_tiled");
    run(
        &capped,
        &case(&[], 300, 260, 70, false, true, false),
        WeightType::F32,
        true,
        Activation::Gelu,
        147,
    );
    assert_eq!(capped.kernel_dispatches("matmul_tiled") - before, 3);
}
