//! The runtime as an embedding application sees it: an adopted device, buffer reuse, pipeline
//! caching and recording without hidden submissions.

use iterinv::ops::matmul::{matmul, MatmulOptions};
use iterinv::{Activation, Gpu, GpuOptions, Tensor};

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
        })
        .collect()
}

/// One "step": a small chain of ops of the kinds a network uses.
fn step(gpu: &Gpu, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let h = matmul(
        x,
        w,
        Some(b),
        MatmulOptions {
            trans_b: true,
            activation: Activation::Gelu,
            ..Default::default()
        },
    )
    .unwrap();
    let h = h.mul_scalar(0.5).unwrap().add(x).unwrap();
    let _ = gpu;
    h.silu().unwrap()
}

#[test]
fn an_adopted_host_device_runs_ops_and_stays_usable() {
    // The host application creates its own device, as a game engine or viewer would.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let gpu = Gpu::from_device(
        device.clone(),
        queue.clone(),
        Some(adapter.get_info()),
        GpuOptions::default(),
    );
    assert!(gpu.info().adopted);

    let (m, k) = (5, 7);
    let a = data(m * k, 1);
    let w = data(k * k, 2);
    let out = Tensor::from_f32(&gpu, &[m, k], &a)
        .unwrap()
        .matmul(&Tensor::from_f32(&gpu, &[k, k], &w).unwrap())
        .unwrap();
    let got = out.to_vec().unwrap();
    for i in 0..m {
        for j in 0..k {
            let e: f64 = (0..k)
                .map(|l| a[i * k + l] as f64 * w[l * k + j] as f64)
                .sum();
            assert!(
                (got[i * k + j] as f64 - e).abs() < 1e-5,
                "({i},{j}) {} vs {e}",
                got[i * k + j]
            );
        }
    }
    // The host keeps using its device and queue afterwards.
    let buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&buf, 0, &[0u8; 16]);
    queue.submit([]);
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
}

#[test]
fn repeating_a_computation_allocates_no_new_buffers_or_pipelines() {
    let gpu = Gpu::new().unwrap();
    let (rows, k) = (33, 48);
    let x = Tensor::from_f32(&gpu, &[rows, k], &data(rows * k, 3)).unwrap();
    let w = Tensor::from_f32(&gpu, &[k, k], &data(k * k, 4)).unwrap();
    let b = Tensor::from_f32(&gpu, &[k], &data(k, 5)).unwrap();
    let first = step(&gpu, &x, &w, &b).to_vec().unwrap();
    let after_first = gpu.pool_stats();
    let pipelines = gpu.pipelines_built();
    for _ in 0..5 {
        let again = step(&gpu, &x, &w, &b).to_vec().unwrap();
        assert_eq!(
            again, first,
            "a repeated computation must give identical results"
        );
    }
    let after = gpu.pool_stats();
    assert_eq!(
        after.buffers_created, after_first.buffers_created,
        "{after_first:?} -> {after:?}"
    );
    assert_eq!(after.bytes_held, after_first.bytes_held);
    assert_eq!(gpu.pipelines_built(), pipelines);
    assert!(after_first.buffers_created > 0);
}

#[test]
fn recording_ops_submits_nothing_until_a_readback() {
    let gpu = Gpu::new().unwrap();
    let x = Tensor::from_f32(&gpu, &[64, 64], &data(64 * 64, 6)).unwrap();
    let w = Tensor::from_f32(&gpu, &[64, 64], &data(64 * 64, 7)).unwrap();
    let b = Tensor::from_f32(&gpu, &[64], &data(64, 8)).unwrap();
    gpu.flush();
    let submissions = gpu.submission_count();
    let dispatches = gpu.dispatch_count();
    let mut h = x.clone();
    for _ in 0..50 {
        h = step(&gpu, &h, &w, &b).mul_scalar(0.1).unwrap();
    }
    assert_eq!(
        gpu.submission_count(),
        submissions,
        "recording a step must not submit"
    );
    assert_eq!(gpu.dispatch_count() - dispatches, 50 * 5);
    assert!(h.to_vec().unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(gpu.submission_count(), submissions + 1);
}

#[test]
fn info_names_the_backend_and_limits() {
    let gpu = Gpu::new().unwrap();
    let text = gpu.info().to_string();
    for needle in [
        "backend",
        "adapter",
        "max_storage_buffer_binding_size",
        "shader-f16",
        "subgroups",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}
