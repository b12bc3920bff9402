//! Planning devices (`Gpu::planner`): a computation planned takes exactly the pooled memory and
//! dispatches it takes when it runs, moves no data, and plans sizes no device here could hold.

mod common;

use common::tensor;
use iterinv_engine::grad::backward;
use iterinv_engine::ops::conv::Conv2dOptions;
use iterinv_engine::ops::norm::GroupNormArgs;
use iterinv_engine::{Activation, Gpu, Tensor};

fn real() -> Gpu {
    Gpu::new().expect("a GPU adapter (lavapipe in CI)")
}

/// A residual block with attention, as the UNets chain them: GroupNorm + SiLU, a 3×3
/// convolution, self-attention over the pixels, a residual sum; the squared sum as loss, and
/// its gradient with respect to the input and the convolution's weight. Returns the loss (read
/// back) and the gradients.
fn block_forward_backward(gpu: &Gpu, side: usize) -> (f32, Vec<Tensor>) {
    let c = 32;
    let x = tensor(gpu, &[2, c, side, side], 1).requires_grad();
    let w = tensor(gpu, &[c, c, 3, 3], 2)
        .mul_scalar(0.05)
        .unwrap()
        .requires_grad();
    let h = x
        .group_norm(&GroupNormArgs {
            activation: Activation::Silu,
            ..GroupNormArgs::new(8, 1e-5)
        })
        .unwrap()
        .conv2d(
            &w,
            None,
            Conv2dOptions {
                padding: 1,
                ..Default::default()
            },
        )
        .unwrap();
    // [B, C, H, W] → tokens [B, HW, 1 head, C].
    let tokens = h
        .reshape(&[2, c, side * side])
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape(&[2, side * side, 1, c])
        .unwrap();
    let a = tokens.attention(&tokens, &tokens, 0.2).unwrap();
    let y = a
        .reshape(&[2, side * side, c])
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape(&[2, c, side, side])
        .unwrap()
        .add(&x)
        .unwrap();
    let loss = y.square().unwrap().sum(&[0, 1, 2, 3], false).unwrap();
    let grads = backward(&loss, &[&x, &w]).unwrap();
    (loss.to_vec().unwrap()[0], grads)
}

#[test]
fn a_planned_computation_takes_the_memory_and_dispatches_it_takes_when_it_runs() {
    let gpu = real();
    let planner = gpu.planner();
    assert!(planner.is_planning() && !gpu.is_planning());
    let (loss, grads) = block_forward_backward(&gpu, 12);
    let (planned_loss, planned_grads) = block_forward_backward(&planner, 12);
    assert!(
        loss.is_finite() && loss > 0.0,
        "the real run computed {loss}"
    );
    // A planner's readbacks are 1.0, never a computed value.
    assert_eq!(planned_loss, 1.0);
    for (g, p) in grads.iter().zip(&planned_grads) {
        assert_eq!(g.shape(), p.shape());
    }
    let (real_stats, plan_stats) = (gpu.pool_stats(), planner.pool_stats());
    assert_eq!(
        plan_stats.peak_bytes_in_use, real_stats.peak_bytes_in_use,
        "peak pooled bytes: planned {plan_stats:?}, ran {real_stats:?}"
    );
    assert_eq!(plan_stats.bytes_in_use, real_stats.bytes_in_use);
    assert_eq!(plan_stats.buffers_created, real_stats.buffers_created);
    assert_eq!(planner.dispatch_count(), gpu.dispatch_count());
    assert!(gpu.dispatch_count() > 10);
    // Nothing was submitted or compiled for the plan.
    assert_eq!(planner.submission_count(), 0);
    assert_eq!(planner.pipelines_built(), 0);
}

#[test]
fn a_planner_plans_sizes_past_what_the_device_holds() {
    let gpu = real();
    let mut caps = gpu.caps().clone();
    caps.max_binding_size = 1 << 40;
    let planner = gpu.planner_with_caps(caps);
    // 3 × 2^30 f32 = 12 GiB per tensor: more than this machine's memory, three times over.
    let side = 1 << 15;
    let a = Tensor::zeros(&planner, &[3, side, side]).unwrap();
    let b = a.add(&a).unwrap().silu().unwrap();
    assert_eq!(b.shape(), &[3, side, side]);
    let stats = planner.pool_stats();
    let one = 3 * (side * side) as u64 * 4;
    // a, the sum and the SiLU were all alive at once at the peak.
    assert_eq!(stats.peak_bytes_in_use, 3 * one);
    drop((a, b));
    assert_eq!(planner.pool_stats().bytes_in_use, 0);
}

#[test]
fn a_planner_uploads_nothing_and_reads_ones() {
    let gpu = real();
    let planner = gpu.planner();
    let t = Tensor::from_f32(&planner, &[5], &[3.0, -1.0, 0.0, 7.0, 2.5]).unwrap();
    assert_eq!(t.to_vec().unwrap(), vec![1.0; 5]);
    assert_eq!(planner.synchronize().map_err(|e| e.to_string()), Ok(()));
}
