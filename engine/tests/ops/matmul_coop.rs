//! The cooperative-matrix (tensor-core) matmul and f16 precision against f64.
//!
//! lavapipe has no cooperative matrices, so here the cooperative kernel's body runs on matrices
//! emulated in plain WGSL (`Cooperative::Emulated`): its staging, tiling, subgroup indexing,
//! epilogue and K splitting are the hardware kernels' own. On a GPU that offers them
//! (tools/gpu-check runs this file with `ITERINV_COOP=on`, which fails at device creation where
//! there are none) the same cases run on the hardware kernels. f16 precision is checked on every
//! variant against a reference that rounds the operands to f16, and shown to differ from f32.

use iterinv_engine::ops::matmul::{matmul, MatmulOptions};
use iterinv_engine::precision::CoopKernels;
use iterinv_engine::{Activation, Cooperative, Gpu, GpuOptions, Precision, Tensor};

use crate::common::Rng;
use crate::matmul::{case, run, transposes_and_batching, WeightType};

fn device(cooperative: Option<Cooperative>, precision: Precision, cpu: bool) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        cooperative,
        precision: Some(precision),
        cpu_kernels: Some(cpu),
        ..Default::default()
    })
    .unwrap()
}

/// Ragged and tile-multiple shapes, every transpose, batching, 16-bit weights, epilogues.
fn cases(g: &Gpu) {
    transposes_and_batching(g, 100);
    run(
        g,
        &case(&[2, 2], 70, 67, 130, false, true, false),
        WeightType::F16,
        true,
        Activation::Gelu,
        111,
    );
    run(
        g,
        &case(&[], 19, 66, 17, false, false, false),
        WeightType::Bf16,
        true,
        Activation::Relu,
        112,
    );
    // Multiples of the 64 × 64 tile and the K step of 32: the kernels without bounds checks.
    run(
        g,
        &case(&[2], 128, 64, 96, false, false, false),
        WeightType::F32,
        true,
        Activation::Silu,
        113,
    );
    run(
        g,
        &case(&[], 64, 128, 64, true, true, false),
        WeightType::F16,
        true,
        Activation::None,
        114,
    );
    // Both sides at least two 128-wide blocks: subgroups own 4 × 4 tiles (128 × 128 outputs a
    // workgroup; the emulation takes them from this size on, the hardware on larger grids).
    run(
        g,
        &case(&[], 300, 260, 70, false, true, false),
        WeightType::F32,
        true,
        Activation::Gelu,
        115,
    );
    run(
        g,
        &case(&[], 256, 256, 64, true, false, false),
        WeightType::F16,
        false,
        Activation::None,
        116,
    );
}

#[test]
fn emulated_cooperative_kernel_matches_reference_at_both_precisions() {
    for precision in [Precision::F16, Precision::F32] {
        let g = device(Some(Cooperative::Emulated), precision, false);
        assert_eq!(g.coop().map(|c| c.0), Some(CoopKernels::Emulated));
        let before = g.kernel_dispatches("matmul_coop_emulated");
        cases(&g);
        assert!(
            g.kernel_dispatches("matmul_coop_emulated") > before,
            "the emulated cooperative kernel did not run"
        );
    }
}

#[test]
fn emulated_cooperative_kernel_splits_long_k_and_chunked_weights() {
    // lavapipe's loop cap splits K over accumulating dispatches (the emulated kernel takes a few
    // hundred k per dispatch there), the epilogue after the last.
    let g = device(Some(Cooperative::Emulated), Precision::F16, false);
    let before = g.kernel_dispatches("matmul_coop_emulated");
    run(
        &g,
        &case(&[], 9, 20, 1500, false, true, false),
        WeightType::F32,
        true,
        Activation::Gelu,
        120,
    );
    let dispatches = g.kernel_dispatches("matmul_coop_emulated") - before;
    if g.caps().max_loop_iterations.is_some() {
        assert!(dispatches >= 2, "{dispatches} dispatch: K was not split");
    }
    // A 16 KiB binding limit splits the weights: column blocks of an [N, K] weight, K blocks of
    // a [K, N] one.
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        cooperative: Some(Cooperative::Emulated),
        precision: Some(Precision::F16),
        max_binding_size: Some(16 * 1024),
        ..Default::default()
    })
    .unwrap();
    run(
        &g,
        &case(&[], 5, 300, 40, false, true, false),
        WeightType::F32,
        true,
        Activation::Gelu,
        121,
    );
    run(
        &g,
        &case(&[], 5, 40, 300, false, false, false),
        WeightType::F16,
        true,
        Activation::Silu,
        122,
    );
}

#[test]
fn f16_precision_rounds_operands_on_the_portable_kernels() {
    for cpu in [true, false] {
        let g = device(Some(Cooperative::Off), Precision::F16, cpu);
        assert_eq!(g.coop(), None);
        cases(&g);
    }
    // The rounding is real: values that f16 cannot hold give another product than at f32.
    let a = [1.0 + 1.0 / 4096.0, 3.0e-3];
    let b = [1.0, 1.0];
    let product = |precision| {
        let g = device(Some(Cooperative::Off), precision, false);
        let ta = Tensor::from_f32(&g, &[1, 2], &a).unwrap();
        let tb = Tensor::from_f32(&g, &[2, 1], &b).unwrap();
        matmul(&ta, &tb, None, MatmulOptions::default())
            .unwrap()
            .to_vec()
            .unwrap()[0]
    };
    let f16 = |x: f32| half::f16::from_f32(x).to_f32();
    assert_eq!(product(Precision::F32), a[0] + a[1]);
    assert_eq!(product(Precision::F16), f16(a[0]) + f16(a[1]));
    assert_ne!(f16(a[0]) + f16(a[1]), a[0] + a[1]);
}

#[test]
fn f16_rounding_of_large_and_tiny_operands_matches_ieee_half() {
    // Past 65504 an operand is an infinity in f16; below 2⁻¹⁴ it is a subnormal, a multiple of
    // 2⁻²⁴; ties round to even. Each product with 1.0 shows the rounded operand itself.
    let mut rng = Rng::new(130);
    let mut values: Vec<f32> = vec![
        65504.0,
        65519.0,
        65520.0,
        -70000.0,
        6.0e-5,
        3.0e-8,
        2.9802322e-8,
        -1.0e-9,
        0.0,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        2049.0,
        2051.0,
    ];
    for _ in 0..51 {
        let scale = 10f64.powi(rng.range(0, 12) as i32 - 6);
        values.push(((rng.uniform() * 2.0 - 1.0) * scale) as f32);
    }
    let n = values.len();
    for (cooperative, cpu) in [
        (Cooperative::Off, true),
        (Cooperative::Off, false),
        (Cooperative::Emulated, false),
    ] {
        let g = device(Some(cooperative), Precision::F16, cpu);
        let ta = Tensor::from_f32(&g, &[n, 1], &values).unwrap();
        let tb = Tensor::from_f32(&g, &[1, 1], &[1.0]).unwrap();
        let out = matmul(&ta, &tb, None, MatmulOptions::default())
            .unwrap()
            .to_vec()
            .unwrap();
        for (x, got) in values.iter().zip(out) {
            // Compared as values: the f32 sum turns a rounded −0 into +0.
            let want = half::f16::from_f32(*x).to_f32();
            assert!(
                got == want,
                "{cooperative:?} cpu {cpu}: {x:e} became {got:e}, IEEE half {want:e}"
            );
        }
    }
}

#[test]
fn hardware_cooperative_kernels_match_reference_where_offered() {
    // Follows ITERINV_COOP: unset, the adapter's cooperative matrices are used where it offers
    // them for f16 products; `on` makes their absence an error (the GPU check sets it).
    let g = Gpu::with_options(GpuOptions {
        poison: true,
        precision: Some(Precision::F16),
        ..Default::default()
    })
    .unwrap();
    match g.coop() {
        Some((kernels, _)) => {
            assert_ne!(
                kernels,
                CoopKernels::Emulated,
                "emulation is never chosen by default"
            );
            let name = kernels.matmul().name;
            let before = g.kernel_dispatches(name);
            cases(&g);
            assert!(g.kernel_dispatches(name) > before, "{name} did not run");
        }
        // Without them, nothing the adapter lists carries f16 products: f16 inputs with f32
        // accumulators in square tiles.
        None => {
            use wgpu::CooperativeScalarType::{F16, F32};
            let usable = g.info().coop_shapes.iter().any(|s| {
                s.ab_type == F16 && s.cr_type == F32 && s.m_size == s.n_size && s.n_size == s.k_size
            });
            let fixed_subgroup =
                g.info().adapter.subgroup_min_size == g.info().adapter.subgroup_max_size;
            assert!(
                !(usable && fixed_subgroup && g.caps().shader_f16),
                "the adapter offers {:?} but the device did not take them",
                g.info().coop_shapes
            );
        }
    }
}
