//! GPU failures come back as typed errors, never as wgpu's default panic: an allocation past the
//! memory budget (a simulated out-of-memory), and a lost device, on a device iterinv created and
//! on one adopted from a host application (whose uncaptured-error handler is wgpu's default,
//! which panics: any error iterinv let through would fail the test).

use iterinv_engine::{Error, Gpu, GpuOptions, Tensor};

fn host_device() -> (wgpu::Device, wgpu::Queue, wgpu::AdapterInfo) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .expect("a GPU adapter (lavapipe in CI)");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&Default::default())).expect("a device");
    (device, queue, adapter.get_info())
}

fn budgeted(budget: u64) -> Gpu {
    Gpu::with_options(GpuOptions {
        memory_budget: Some(budget),
        ..Default::default()
    })
    .expect("a GPU adapter (lavapipe in CI)")
}

#[test]
fn an_allocation_past_the_budget_is_an_out_of_memory_error_naming_it() {
    let gpu = budgeted(1 << 20);
    let small = Tensor::full(&gpu, &[1000], 2.0).unwrap();
    // 512 × 1024 f32 = 2 MiB: past the 1 MiB budget.
    let err = Tensor::zeros(&gpu, &[512, 1024]).unwrap_err();
    match &err {
        Error::OutOfMemory {
            what,
            bytes,
            in_use,
            budget,
        } => {
            assert!(what.contains("[512, 1024]"), "{what}");
            assert_eq!(*bytes, 2 << 20);
            assert_eq!(*in_use, gpu.pool_stats().bytes_in_use);
            assert_eq!(*budget, Some(1 << 20));
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("2.00 MiB") && message.contains("budget is 1.00 MiB"),
        "{message}"
    );
    // The device goes on working, and the pool holds what it held.
    assert_eq!(small.add(&small).unwrap().to_vec().unwrap()[999], 4.0);
    assert!(gpu.pool_stats().bytes_held <= 1 << 20);
}

#[test]
fn idle_pooled_buffers_are_freed_to_make_room_within_the_budget() {
    let gpu = budgeted(3 << 20);
    // Each 1 MiB tensor is dropped at once: its buffer goes idle in the pool.
    for n in [1usize << 18, 3 << 16, 5 << 16] {
        drop(Tensor::zeros(&gpu, &[n]).unwrap());
    }
    let held = gpu.pool_stats().bytes_held;
    assert!(
        held > 2 << 20,
        "three idle buffers of different sizes: {held}"
    );
    // 2 MiB more would pass the budget with the idle buffers kept: they are freed instead.
    let t = Tensor::zeros(&gpu, &[1 << 19]).unwrap();
    assert!(gpu.pool_stats().bytes_held <= 3 << 20);
    assert_eq!(t.to_vec().unwrap().len(), 1 << 19);
}

#[test]
fn a_budget_set_later_applies_to_the_next_allocation() {
    let gpu = Gpu::new().unwrap();
    let _kept = Tensor::zeros(&gpu, &[1 << 18]).unwrap();
    gpu.set_memory_budget(Some(1 << 20));
    assert_eq!(gpu.memory_budget(), Some(1 << 20));
    assert!(matches!(
        Tensor::zeros(&gpu, &[1 << 18]),
        Err(Error::OutOfMemory { .. })
    ));
    gpu.set_memory_budget(None);
    assert!(Tensor::zeros(&gpu, &[1 << 18]).is_ok());
}

fn assert_lost<T: std::fmt::Debug>(r: iterinv_engine::Result<T>, doing: &str) {
    match r {
        Err(Error::DeviceLost(m)) => assert!(!m.is_empty(), "{doing}: empty message"),
        other => panic!("{doing}: expected DeviceLost, got {other:?}"),
    }
}

#[test]
fn a_lost_device_of_our_own_is_an_error_not_a_panic() {
    let gpu = Gpu::new().unwrap();
    let a = Tensor::full(&gpu, &[64], 1.5).unwrap();
    assert_eq!(a.to_vec().unwrap()[0], 1.5);
    gpu.device().destroy();
    assert_lost(a.add(&a).and_then(|b| b.to_vec()), "an op and its readback");
    assert_lost(Tensor::zeros(&gpu, &[64]), "an allocation");
    assert_lost(gpu.synchronize(), "synchronize");
    // Lost stays lost.
    assert_lost(a.to_vec(), "a second readback");
}

#[test]
fn a_lost_adopted_device_is_an_error_and_the_host_keeps_its_callback() {
    let (device, queue, info) = host_device();
    let host_saw = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = host_saw.clone();
    device.set_device_lost_callback(move |_, _| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst)
    });
    let gpu = Gpu::from_device(device.clone(), queue, Some(info), GpuOptions::default());
    let a = Tensor::full(&gpu, &[64], 2.0).unwrap();
    assert_eq!(a.to_vec().unwrap()[63], 2.0);
    device.destroy();
    // The host forwards the loss from its callback; even without that, the failures wgpu
    // reports on a lost device are read as one.
    let r = a.add(&a).and_then(|b| b.to_vec());
    assert!(
        matches!(r, Err(Error::DeviceLost(_))),
        "without notice: {r:?}"
    );
    assert!(
        host_saw.load(std::sync::atomic::Ordering::SeqCst),
        "iterinv must not replace the host's device-lost callback"
    );
    gpu.notify_device_lost("the host's callback fired");
    assert_lost(Tensor::zeros(&gpu, &[8]), "after notice");
}

#[test]
fn an_adopted_device_keeps_working_for_its_host_after_iterinv_fails() {
    let (device, queue, info) = host_device();
    let gpu = Gpu::from_device(
        device.clone(),
        queue.clone(),
        Some(info),
        GpuOptions::default(),
    );
    gpu.set_memory_budget(Some(1 << 16));
    assert!(matches!(
        Tensor::zeros(&gpu, &[1 << 16]),
        Err(Error::OutOfMemory { .. })
    ));
    // The host's own work on its device.
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host"),
        size: 256,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    queue.write_buffer(&buffer, 0, &[7u8; 256]);
    queue.submit(None);
    buffer
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    assert_eq!(buffer.slice(..).get_mapped_range().unwrap()[255], 7);
    // And iterinv's, within the budget.
    let t = Tensor::full(&gpu, &[16], 3.0).unwrap();
    assert_eq!(t.to_vec().unwrap(), vec![3.0; 16]);
}

/// `Gpu::from_adapter` adopts a host's device with its adapter's facts: the adapter's name, and
/// the cooperative-matrix choice made from the features the host enabled (none here: lavapipe
/// has no cooperative matrices, so `Required` is an error naming them and `Emulated` runs the
/// emulated kernels), reading no environment variable.
#[test]
fn an_adopted_device_with_its_adapter_follows_the_hosts_features() {
    use iterinv_engine::precision::CoopKernels;
    use iterinv_engine::{Cooperative, Precision};
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&Default::default())).expect("an adapter");
    let adopt = |options: GpuOptions| {
        let (device, queue) =
            pollster::block_on(adapter.request_device(&Default::default())).expect("a device");
        Gpu::from_adapter(&adapter, device, queue, options)
    };
    let gpu = adopt(GpuOptions::default()).unwrap();
    assert_eq!(gpu.info().adapter.name, adapter.get_info().name);
    assert!(gpu.info().adopted);
    assert_eq!(gpu.caps().precision, Precision::F32);
    let has_coop = adapter
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    // The host asked for no feature: no tensor cores, whatever the adapter has.
    assert_eq!(gpu.coop(), None);
    let required = adopt(GpuOptions {
        cooperative: Some(Cooperative::Required),
        ..Default::default()
    });
    let err = required.unwrap_err().to_string();
    assert!(
        err.contains("cooperative"),
        "{err} (adapter has them: {has_coop})"
    );
    let emulated = adopt(GpuOptions {
        cooperative: Some(Cooperative::Emulated),
        precision: Some(Precision::F16),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(emulated.coop().map(|c| c.0), Some(CoopKernels::Emulated));
    let x = Tensor::from_f32(&emulated, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(
        x.matmul(&x).unwrap().to_vec().unwrap(),
        [7.0, 10.0, 15.0, 22.0]
    );
}
