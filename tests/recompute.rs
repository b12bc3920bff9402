//! A 20-block residual conv/attention stack, differentiated with respect to its input (as IterInv
//! does) with and without recomputation: the gradients agree, and recomputation lowers the peak
//! memory held by the buffer pool. Run with `--nocapture` to see both peaks.

use iterinv::grad::{checkpoint, grad};
use iterinv::ops::attention::AttentionArgs;
use iterinv::ops::conv::Conv2dOptions;
use iterinv::ops::norm::GroupNormArgs;
use iterinv::{Activation, Gpu, Result, Tensor};

const C: usize = 16;
const HW: usize = 8;
const HEADS: usize = 2;
const BLOCKS: usize = 20;

/// The weights of one block (constants: only the input's gradient is asked for).
#[derive(Clone)]
struct Block {
    gamma: Tensor,
    beta: Tensor,
    conv_w: Tensor,
    conv_b: Tensor,
    qkv: Tensor,
    out: Tensor,
}

fn weights(gpu: &Gpu, i: u32) -> Result<Block> {
    let s = 100 + 10 * i;
    Ok(Block {
        gamma: Tensor::randn(gpu, &[C], 7, s)?
            .mul_scalar(0.1)?
            .add_scalar(1.0)?,
        beta: Tensor::randn(gpu, &[C], 7, s + 1)?.mul_scalar(0.1)?,
        conv_w: Tensor::randn(gpu, &[C, C, 3, 3], 7, s + 2)?.mul_scalar(0.08)?,
        conv_b: Tensor::randn(gpu, &[C], 7, s + 3)?.mul_scalar(0.1)?,
        qkv: Tensor::randn(gpu, &[3 * C, C], 7, s + 4)?.mul_scalar(0.2)?,
        out: Tensor::randn(gpu, &[C, C], 7, s + 5)?.mul_scalar(0.1)?,
    })
}

/// x + conv(silu(norm(x))), then + attention over the pixels on odd blocks.
fn block(x: &Tensor, w: &Block, with_attention: bool) -> Result<Tensor> {
    let norm = GroupNormArgs {
        gamma: Some(&w.gamma),
        beta: Some(&w.beta),
        activation: Activation::Silu,
        ..GroupNormArgs::new(4, 1e-5)
    };
    let h = x.group_norm(&norm)?;
    let h = x.add(&h.conv2d(
        &w.conv_w,
        Some(&w.conv_b),
        Conv2dOptions {
            padding: 1,
            ..Default::default()
        },
    )?)?;
    if !with_attention {
        return Ok(h);
    }
    let tokens = h.reshape(&[1, C, HW * HW])?.transpose(1, 2)?; // [1, L, C]
    let qkv = tokens
        .linear(&w.qkv, None)?
        .reshape(&[1, HW * HW, 3, HEADS, C / HEADS])?;
    let (q, k, v) = (
        qkv.slice(2, 0, 1)?,
        qkv.slice(2, 1, 2)?,
        qkv.slice(2, 2, 3)?,
    );
    let shape = [1, HW * HW, HEADS, C / HEADS];
    let (q, k, v) = (q.reshape(&shape)?, k.reshape(&shape)?, v.reshape(&shape)?);
    let a = iterinv::ops::attention::attention(&AttentionArgs::new(&q, &k, &v, 0.5))?;
    let a = a.reshape(&[1, HW * HW, C])?.linear(&w.out, None)?;
    h.add(&a.transpose(1, 2)?.reshape(&[1, C, HW, HW])?)
}

/// Forward and backward through the stack; returns dL/dx and the pool's peak bytes.
fn run(gpu: &Gpu, blocks: &[Block], recompute: bool) -> (Vec<f32>, u64) {
    let x0 = Tensor::randn(gpu, &[1, C, HW, HW], 3, 0).unwrap();
    let cot = Tensor::randn(gpu, &[1, C, HW, HW], 3, 1).unwrap();
    gpu.synchronize().unwrap();
    gpu.reset_peak();
    let x = x0.requires_grad();
    let mut h = x.clone();
    for (i, w) in blocks.iter().enumerate() {
        let attn = i % 2 == 1;
        h = if recompute {
            let w = w.clone();
            checkpoint(&[&h], move |xs| block(&xs[0], &w, attn)).unwrap()
        } else {
            block(&h, w, attn).unwrap()
        };
    }
    let g = grad(&[&h], &[&cot], &[&x]).unwrap().remove(0);
    drop(h);
    let values = g.to_vec().unwrap();
    (values, gpu.pool_stats().peak_bytes_in_use)
}

#[test]
fn recomputation_gives_the_same_gradient_with_less_memory() {
    let gpu = Gpu::new().unwrap();
    let blocks: Vec<Block> = (0..BLOCKS as u32)
        .map(|i| weights(&gpu, i).unwrap())
        .collect();
    let (saved, peak_saved) = run(&gpu, &blocks, false);
    let (recomputed, peak_recomputed) = run(&gpu, &blocks, true);
    println!("peak pool use, 20 blocks: {peak_saved} bytes saving activations, {peak_recomputed} bytes recomputing");
    assert!(saved.iter().all(|v| v.is_finite()));
    let scale = saved.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    // The same kernels on the same inputs; only the order of gradient accumulation may differ.
    for (a, b) in saved.iter().zip(&recomputed) {
        assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
    }
    assert!(
        peak_recomputed < peak_saved,
        "recomputation did not lower the peak: {peak_recomputed} >= {peak_saved}"
    );
}
