//! The UNets against diffusers: forward outputs and vector-Jacobian products with respect to
//! the sample and the text, on the tiny stage-I- and stage-II-like IF UNets of
//! tools/reference/make_if_unet_fixtures.py and the tiny UNets with SD's blocks of
//! tools/reference/make_sd_unet_fixtures.py (x4-upscaler-like: linear projections, mixed
//! only_cross_attention, uneven layers, a class-embedding table with per-sample noise levels;
//! and one with convolution projections), goldens in float64.
//!
//! Tolerance: 1e-3 of the reference's largest magnitude. The engine computes in f32 with f32
//! accumulation through ~40 layers; observed errors are ~2e-6 relative (lavapipe), so 1e-3 leaves room for
//! other drivers' transcendental functions while still catching any wrong layer (a missing bias,
//! a swapped chunk or an off-by-one group changes outputs by 1e-2 or more).

mod common;

use std::collections::HashMap;

use common::golden::{self, max_diff, upload, Array};
use common::{fixture, poisoned_gpu};
use iterinv_models::engine::{grad, Tensor};
use iterinv_models::{UNet, UNetInputs};

const TOLERANCE: f64 = 1e-3;

/// `io` is `set/name` (`if_unet/stage1_io.safetensors`).
fn load_io(io: &str) -> HashMap<String, Array> {
    golden::load_io(&fixture(io))
}

fn assert_close(what: &str, got: &Tensor, want: &Array) {
    golden::assert_close(what, got, want, TOLERANCE);
}

/// Forward and VJP of the UNet in `model_dir` (`set/name`) against the goldens
/// `{out,grad_*}{suffix}` of `io`; returns the output.
fn check(model_dir: &str, variant: Option<&str>, io: &str, suffix: &str) -> Vec<f32> {
    let gpu = poisoned_gpu();
    let unet = UNet::load(gpu, &fixture(model_dir), variant).unwrap();
    let io = load_io(io);
    let sample = upload(gpu, &io["sample"]).requires_grad();
    let text = upload(gpu, &io["encoder_hidden_states"]).requires_grad();
    let values = |k: &str| {
        io.get(k)
            .map(|a| a.data.iter().map(|&x| x as f32).collect::<Vec<_>>())
    };
    let timesteps = values("timestep").unwrap();
    let labels = values("class_labels");
    let out = unet
        .forward(&UNetInputs {
            sample: &sample,
            timesteps: &timesteps,
            encoder_hidden_states: &text,
            class_labels: labels.as_deref(),
        })
        .unwrap();
    assert_close("out_sample", &out, &io[&format!("out_sample{suffix}")]);
    let cotangent = upload(gpu, &io["cotangent"]);
    let grads = grad::grad(&[&out], &[&cotangent], &[&sample, &text]).unwrap();
    assert_close(
        "grad_sample",
        &grads[0],
        &io[&format!("grad_sample{suffix}")],
    );
    assert_close(
        "grad_encoder_hidden_states",
        &grads[1],
        &io[&format!("grad_encoder_hidden_states{suffix}")],
    );
    for t in [&out, &grads[0], &grads[1]] {
        assert!(t.guards_intact().unwrap(), "an op wrote past its output");
    }
    out.to_vec().unwrap()
}

#[test]
fn stage1_matches_diffusers() {
    check("if_unet/stage1", None, "if_unet/stage1_io.safetensors", "");
}

#[test]
fn stage1_sharded_matches_diffusers() {
    check(
        "if_unet/stage1_sharded",
        None,
        "if_unet/stage1_io.safetensors",
        "",
    );
}

#[test]
fn stage2_matches_diffusers() {
    check("if_unet/stage2", None, "if_unet/stage2_io.safetensors", "");
}

/// The UNet with the fp16 variant's weights matches the golden computed with fp16-rounded
/// weights, and is far closer to it than to the f32-weight golden (so the f16 weights were the
/// ones used; the two goldens differ by ~4e-5, well inside the tolerance).
fn check_fp16(model_dir: &str, io: &str) {
    let out = check(model_dir, Some("fp16"), io, "_fp16w");
    let io = load_io(io);
    let to_fp16w = max_diff(&out, &io["out_sample_fp16w"].data);
    let to_f32w = max_diff(&out, &io["out_sample"].data);
    assert!(to_fp16w * 4.0 < to_f32w, "{to_fp16w:.3e} vs {to_f32w:.3e}");
}

#[test]
fn stage2_fp16_variant_matches_diffusers_with_fp16_weights() {
    check_fp16("if_unet/stage2", "if_unet/stage2_io.safetensors");
}

#[test]
fn sd_upscaler_like_unet_matches_diffusers() {
    check(
        "sd_unet/upscaler",
        None,
        "sd_unet/upscaler_io.safetensors",
        "",
    );
}

#[test]
fn sd_upscaler_like_fp16_variant_matches_diffusers_with_fp16_weights() {
    check_fp16("sd_unet/upscaler", "sd_unet/upscaler_io.safetensors");
}

#[test]
fn sd_unet_with_conv_projections_matches_diffusers() {
    check(
        "sd_unet/conv_proj",
        None,
        "sd_unet/conv_proj_io.safetensors",
        "",
    );
}
