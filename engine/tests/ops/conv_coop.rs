//! The convolution GEMMs (forward, input gradient, weight gradient) on the cooperative-matrix
//! kernels, against the f64 references of conv.rs and grad_conv.rs.
//!
//! lavapipe has no cooperative matrices: here their kernels' bodies run on emulated matrices
//! (`Cooperative::Emulated`) at f32 precision, so the f32 tolerances of conv.rs and grad_conv.rs
//! apply unchanged, and the operand hooks, tiling, K splitting and epilogue of the cooperative
//! path are checked on every shape those files check. At f16, and on the hardware's cooperative
//! matrices where the adapter offers them, precision_f16.rs checks the convolutions against
//! references on f16-rounded operands (tools/gpu-check runs it and the tests named `coop` with
//! `ITERINV_COOP=on`, where absent hardware is an error).

use iterinv_engine::ops::conv::conv2d;
use iterinv_engine::{Activation, Cooperative, DType, Gpu, GpuOptions, Precision};

use crate::common::{check_vjp_on, GradInput, Rng};
use crate::conv::{case, reference};

fn emulated(precision: Precision) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        cooperative: Some(Cooperative::Emulated),
        precision: Some(precision),
        ..Default::default()
    })
    .unwrap()
}

/// Dispatches of the emulated cooperative conv kernels so far.
fn coop_dispatches(g: &Gpu) -> u64 {
    [
        "conv2d_coop_emulated",
        "conv2d_grad_input_coop_emulated",
        "conv2d_grad_weight_coop_emulated",
    ]
    .iter()
    .map(|k| g.kernel_dispatches(k))
    .sum()
}

#[test]
fn emulated_cooperative_conv_matches_reference() {
    let g = emulated(Precision::F32);
    let mut rng = Rng::new(400);
    let mut cases = crate::conv::awkward_cases();
    // Cout, B·Ho·Wo and Cin·kh·kw multiples of the 64 × 64 tile and the K step of 32: the
    // kernel without bounds checks.
    cases.push(case(1, 32, 64, (8, 8), (1, 1), 1, 0));
    cases.push(case(2, 64, 128, (8, 4), (1, 1), 1, 0));
    // Cout and B·Ho·Wo at least 256: 128 × 128 blocks (subgroups owning 4 × 4 tiles), ragged
    // and whole.
    cases.push(case(1, 5, 260, (17, 16), (3, 3), 1, 1));
    cases.push(case(1, 32, 256, (16, 16), (1, 1), 1, 0));
    for (i, c) in cases.into_iter().enumerate() {
        crate::conv::check(
            &g,
            &mut rng,
            c,
            DType::F32,
            [DType::F32, DType::F16, DType::BF16][i % 3],
            i % 2 == 0,
            [Activation::None, Activation::Silu][i % 2],
            "emulated cooperative",
        );
    }
    assert!(
        coop_dispatches(&g) > 0,
        "the cooperative kernels did not run"
    );
}

#[test]
fn emulated_cooperative_conv_gradients_match_reference() {
    let g = emulated(Precision::F32);
    let mut rng = Rng::new(401);
    // Every element of the awkward shapes; 24 of each input of the large ones (each finite
    // difference is a reference convolution): 128 × 128 blocks, dX with Cin 260 over 16 × 17
    // pixels, dW with Cout 256 over Cin·9 = 261.
    let large = [
        case(1, 260, 3, (16, 17), (3, 3), 1, 1),
        case(1, 29, 256, (4, 4), (3, 3), 1, 1),
    ];
    let cases = crate::grad_conv::awkward_cases()
        .into_iter()
        .map(|c| (c, usize::MAX));
    for (c, elements) in cases.chain(large.into_iter().map(|c| (c, 24))) {
        crate::grad_conv::check(
            &g,
            &mut rng,
            c,
            true,
            [true, true, true],
            Activation::None,
            elements,
            "emulated cooperative",
        );
    }
    assert!(g.kernel_dispatches("conv2d_grad_input_coop_emulated") > 0);
    assert!(g.kernel_dispatches("conv2d_grad_weight_coop_emulated") > 0);
}

#[test]
fn emulated_cooperative_conv_splits_long_reductions() {
    // Under lavapipe's loop cap the emulated kernels take about 1,700 k per dispatch: Cin = 400
    // with a 3×3 kernel (K = 3,600) forward, and dX over Cout = 400, are split into accumulating
    // dispatches, the bias applied once after the last. Tolerances as grad_conv.rs's long
    // reductions: f32 sums of thousands of products.
    let g = emulated(Precision::F32);
    let mut rng = Rng::new(402);
    let before = coop_dispatches(&g);
    let c = case(1, 400, 5, (3, 4), (3, 3), 1, 1);
    crate::conv::check(
        &g,
        &mut rng,
        c,
        DType::F32,
        DType::F32,
        true,
        Activation::None,
        "emulated cooperative",
    );
    let c = case(1, 2, 400, (2, 3), (3, 3), 1, 1);
    let inputs = [
        GradInput::new(&[1, 2, 2, 3], rng.vec(12, -1.0, 1.0), true),
        GradInput::new(&[400, 2, 3, 3], rng.vec(7200, -1.0, 1.0), false),
    ];
    let opts = |c: crate::conv::Case| iterinv_engine::ops::conv::Conv2dOptions {
        stride: c.stride,
        padding: c.pad,
        activation: Activation::None,
    };
    check_vjp_on(
        &g,
        &format!("emulated cooperative dX {c:?}"),
        &inputs,
        |t| conv2d(&t[0], &t[1], None, opts(c)).unwrap(),
        |x| reference(c, &x[0], &x[1], None, Activation::None).0,
        2e-4,
        12,
    );
    if g.caps().max_loop_iterations.is_some() {
        // Forward: ≥ 2 parts; dX: one phase of ≥ 2 parts.
        assert!(
            coop_dispatches(&g) - before >= 4,
            "the reductions were not split"
        );
    }
}
