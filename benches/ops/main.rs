//! Op benchmarks: `cargo bench --bench ops`. Prints a Markdown table of our time per op, achieved
//! GFLOP/s and, when `ITERINV_TORCH_TIMES` names the JSON written by
//! `tools/reference/bench_ops.py`, PyTorch's time for the same workload and the ratio.
//! `ITERINV_BENCH_SECONDS` sets the minimum time per workload (default 2),
//! `ITERINV_BENCH_ONLY` keeps the workloads whose name contains it, `ITERINV_BENCH_IF_M=1` adds
//! the IF-I-M-shaped UNet (meant for a real GPU: about 0.8 GB of weights),
//! `ITERINV_BENCH_INNER=1` an NTI inner iteration on it and an IterInv inner iteration on IF-II-L
//! at 256 px (2.4 GB more), and
//! `ITERINV_BENCH_T5_XXL=1` the T5-XXL-shaped encoder (9.5 GB), `ITERINV_BENCH_X4=1` the real SD
//! x4 upscaler's UNet and VAE at a 64×64 latent, `ITERINV_BENCH_LARGE=1` matmul 4096³;
//! `ITERINV_BENCH_INVERT=1` adds a table of whole-image inversions on the tiny trained cascade
//! (invert_image.rs). The work column is the most pooled GPU memory a run uses on top of what is
//! resident (weights, inputs). Under `ITERINV_PRECISION=f16` (f16 products, on tensor cores where
//! the device has cooperative matrices) every row is named with `_fp16` and compared with
//! PyTorch's fp16 row of that name.

mod invert;
mod invert_image;
mod random_weights;
mod t5;
mod unet;

use std::collections::HashMap;
use std::time::Instant;

use iterinv::grad::grad;
use iterinv::ops::attention::{attention, AttentionArgs};
use iterinv::ops::conv::{conv2d, Conv2dOptions};
use iterinv::ops::matmul::{matmul, MatmulOptions};
use iterinv::ops::norm::GroupNormArgs;
use iterinv::{Activation, Gpu, Result, Tensor};

type BenchResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Workload {
    name: &'static str,
    /// FLOPs of one run, or 0 where not counted (composite blocks).
    flops: f64,
    run: Box<dyn Fn() -> BenchResult<Tensor>>,
}

fn randn(gpu: &Gpu, shape: &[usize], stream: u32) -> Result<Tensor> {
    Tensor::randn(gpu, shape, 0, stream)
}

fn workloads(gpu: &Gpu) -> Result<Vec<Workload>> {
    let n = 1024;
    let a = randn(gpu, &[n, n], 1)?;
    let b = randn(gpu, &[n, n], 2)?;
    let b16 = Tensor::from_f16(
        gpu,
        &[n, n],
        &b.to_vec()?
            .iter()
            .map(|&x| half::f16::from_f32(x))
            .collect::<Vec<_>>(),
    )?;
    let mm_flops = 2.0 * (n * n * n) as f64;
    let (a1, b1, a2) = (a.clone(), b.clone(), a.clone());

    let x = randn(gpu, &[2, 256, 64, 64], 3)?;
    let w = randn(gpu, &[256, 256, 3, 3], 4)?.mul_scalar(0.02)?;
    let bias = randn(gpu, &[256], 5)?;
    let conv_flops = 2.0 * (2 * 256 * 64 * 64) as f64 * (256 * 9) as f64;

    let (heads, lq, lk_img, lk_txt, d) = (16, 1024, 1024, 77, 64);
    let q = randn(gpu, &[2, lq, heads, d], 6)?;
    let k_txt = randn(gpu, &[2, lk_txt, heads, d], 7)?;
    let v_txt = randn(gpu, &[2, lk_txt, heads, d], 8)?;
    let k_img = randn(gpu, &[2, lk_img, heads, d], 9)?;
    let v_img = randn(gpu, &[2, lk_img, heads, d], 10)?;
    let attn_flops = 4.0 * (2 * heads * lq * (lk_img + lk_txt) * d) as f64;

    let conv_block = conv_block_workload(gpu)?;
    let attention_block = attention_block_workload(gpu)?;

    let mut rows = Vec::new();
    if std::env::var("ITERINV_BENCH_LARGE").is_ok_and(|v| v == "1") {
        let n = 4096;
        let (a, b) = (randn(gpu, &[n, n], 22)?, randn(gpu, &[n, n], 23)?);
        rows.push(Workload {
            name: "matmul_4096",
            flops: 2.0 * (n * n * n) as f64,
            run: Box::new(move || Ok(a.matmul(&b)?)),
        });
    }

    rows.extend([
        Workload {
            name: "matmul_1024_f32",
            flops: mm_flops,
            run: Box::new(move || Ok(a1.matmul(&b1)?)),
        },
        Workload {
            name: "matmul_1024_f16w",
            flops: mm_flops,
            run: Box::new(move || Ok(matmul(&a2, &b16, None, MatmulOptions::default())?)),
        },
        Workload {
            name: "conv3x3_b2_256_64",
            flops: conv_flops,
            run: Box::new(move || {
                Ok(conv2d(
                    &x,
                    &w,
                    Some(&bias),
                    Conv2dOptions {
                        padding: 1,
                        ..Default::default()
                    },
                )?)
            }),
        },
        Workload {
            name: "attention_b2_h16_1024x1101_d64",
            flops: attn_flops,
            run: Box::new(move || {
                Ok(attention(&AttentionArgs {
                    q: &q,
                    k: &k_txt,
                    v: &v_txt,
                    k2: Some(&k_img),
                    v2: Some(&v_img),
                    bias: None,
                    key_mask: None,
                    scale: 1.0 / (d as f32).sqrt(),
                })?)
            }),
        },
        conv_block,
        attention_block,
    ]);
    Ok(rows)
}

/// x + conv3x3(silu(group_norm(x))), B2 256 ch 64², forward and the input gradient (IterInv's
/// case: weights constant).
fn conv_block_workload(gpu: &Gpu) -> Result<Workload> {
    let x = randn(gpu, &[2, 256, 64, 64], 11)?;
    let gamma = Tensor::full(gpu, &[256], 1.0)?;
    let beta = Tensor::zeros(gpu, &[256])?;
    let w = randn(gpu, &[256, 256, 3, 3], 12)?.mul_scalar(0.02)?;
    let bias = randn(gpu, &[256], 13)?;
    let cot = randn(gpu, &[2, 256, 64, 64], 14)?;
    Ok(Workload {
        name: "conv_block_fwd_bwd_b2_256_64",
        flops: 0.0,
        run: Box::new(move || {
            let xr = x.requires_grad();
            let norm = GroupNormArgs {
                gamma: Some(&gamma),
                beta: Some(&beta),
                activation: Activation::Silu,
                ..GroupNormArgs::new(32, 1e-5)
            };
            let h = xr.group_norm(&norm)?.conv2d(
                &w,
                Some(&bias),
                Conv2dOptions {
                    padding: 1,
                    ..Default::default()
                },
            )?;
            let y = xr.add(&h)?;
            Ok(grad(&[&y], &[&cot], &[&xr])?.remove(0))
        }),
    })
}

/// Self- plus cross-attention block on 1024 tokens of 512 channels (8 heads of 64) with 77 text
/// tokens, forward and the input gradient.
fn attention_block_workload(gpu: &Gpu) -> Result<Workload> {
    let (l, c, heads) = (1024, 512, 8);
    let x = randn(gpu, &[2, l, c], 15)?;
    let ctx = randn(gpu, &[2, 77, c], 16)?;
    let ws: Vec<Tensor> = (0..4)
        .map(|i| randn(gpu, &[c, c], 17 + i).and_then(|w| w.mul_scalar(0.04)))
        .collect::<Result<_>>()?;
    let cot = randn(gpu, &[2, l, c], 21)?;
    Ok(Workload {
        name: "attention_block_fwd_bwd_b2_1024_c512",
        flops: 0.0,
        run: Box::new(move || {
            let xr = x.requires_grad();
            let split = |t: Tensor, n: usize| t.reshape(&[2, n, heads, c / heads]);
            let q = split(xr.linear(&ws[0], None)?, l)?;
            let k_txt = split(ctx.linear(&ws[1], None)?, 77)?;
            let v_txt = split(ctx.linear(&ws[2], None)?, 77)?;
            let k_img = split(xr.linear(&ws[1], None)?, l)?;
            let v_img = split(xr.linear(&ws[2], None)?, l)?;
            let a = attention(&AttentionArgs {
                k2: Some(&k_img),
                v2: Some(&v_img),
                ..AttentionArgs::new(&q, &k_txt, &v_txt, 0.125)
            })?;
            let y = xr.add(&a.reshape(&[2, l, c])?.linear(&ws[3], None)?)?;
            Ok(grad(&[&y], &[&cot], &[&xr])?.remove(0))
        }),
    })
}

/// Milliseconds per run: one warm-up, then batches recorded back to back and waited for together.
fn time(gpu: &Gpu, run: &dyn Fn() -> BenchResult<Tensor>, min_seconds: f64) -> BenchResult<f64> {
    run()?.to_vec()?;
    // ITERINV_PROFILE=1: profile the timed runs only (the warm-up builds the pipelines).
    gpu.profile_reset();
    let start = Instant::now();
    let mut iters = 0;
    while iters < 3 || start.elapsed().as_secs_f64() < min_seconds {
        drop(run()?);
        iters += 1;
        gpu.synchronize()?;
    }
    Ok(1000.0 * start.elapsed().as_secs_f64() / iters as f64)
}

fn torch_times() -> HashMap<String, f64> {
    let Ok(path) = std::env::var("ITERINV_TORCH_TIMES") else {
        return HashMap::new();
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    // The file is a flat JSON object of numbers (and one string, "_machine").
    text.trim()
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((
                k.trim().trim_matches('"').to_string(),
                v.trim().parse().ok()?,
            ))
        })
        .collect()
}

fn main() -> BenchResult<()> {
    let min_seconds = std::env::var("ITERINV_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let gpu = Gpu::new()?;
    let info = gpu.info();
    println!(
        "device: {} ({:?}, {})",
        info.adapter.name, info.adapter.backend, info.adapter.driver_info
    );
    let f16 = gpu.precision() == iterinv::Precision::F16;
    println!(
        "products: {}, {} (the adapter's cooperative-matrix shapes: {})",
        gpu.precision().name(),
        match gpu.coop() {
            Some((k, _)) => format!("cooperative matrices {}", k.name()),
            None => "portable kernels".into(),
        },
        iterinv::precision::describe(&info.coop_shapes)
    );
    let torch = torch_times();
    println!(
        "| workload | iterinv ms | GFLOP/s | work MiB | PyTorch ms | iterinv / PyTorch time |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    // The real networks' shapes come right after the ops, before the tiny fixtures: on a lent GPU
    // they are what the time limit must not cut off.
    let mut all = workloads(&gpu)?;
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    if flag("ITERINV_BENCH_IF_M") {
        all.extend(unet::if_m_unet(&gpu)?);
    }
    if flag("ITERINV_BENCH_X4") {
        all.extend(unet::x4_upscaler(&gpu)?);
    }
    if flag("ITERINV_BENCH_T5_XXL") {
        all.push(t5::t5_xxl(&gpu)?);
    }
    all.extend(unet::tiny_if_unet(&gpu)?);
    all.extend(unet::tiny_sd_unet(&gpu)?);
    all.push(unet::tiny_vae_decode(&gpu)?);
    all.push(t5::tiny_t5(&gpu)?);
    all.extend(invert::workloads(&gpu)?);
    // Last, so that a time limit cuts these before anything else.
    if flag("ITERINV_BENCH_INNER") {
        all.extend(invert::real_shaped(&gpu)?);
    }
    let only = std::env::var("ITERINV_BENCH_ONLY").unwrap_or_default();
    let mut profiles = Vec::new();
    for w in all.into_iter().filter(|w| w.name.contains(&only)) {
        let name = if f16 {
            format!("{}_fp16", w.name)
        } else {
            w.name.to_string()
        };
        gpu.reset_peak();
        let resident = gpu.pool_stats().bytes_in_use;
        let ms = time(&gpu, &*w.run, min_seconds)?;
        let work = (gpu.pool_stats().peak_bytes_in_use - resident) as f64 / (1 << 20) as f64;
        let gflops = if w.flops > 0.0 {
            format!("{:.1}", w.flops / (ms * 1e6))
        } else {
            "—".into()
        };
        let (t, ratio) = match torch.get(&name) {
            Some(t) => (format!("{t:.2}"), format!("{:.1}×", ms / t)),
            None => ("—".into(), "—".into()),
        };
        println!("| {name} | {ms:.2} | {gflops} | {work:.0} | {t} | {ratio} |");
        profiles.extend(gpu.profile_report().map(|r| (name, r)));
    }
    // ITERINV_PROFILE=1: each workload's kernels over its timed runs, after the table.
    for (name, report) in profiles {
        println!("\n{name}: {report}");
    }
    if flag("ITERINV_BENCH_INVERT") {
        invert_image::run(&gpu, &torch)?;
    }
    Ok(())
}
