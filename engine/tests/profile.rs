//! The kernel profiler: which kernels it names and how often, that its table adds up, that it
//! changes no result, and that without it no query set exists. Timings are never asserted: they
//! are only required to be finite and not negative.

mod common;

use common::tensor;
use iterinv_engine::ops::conv::Conv2dOptions;
use iterinv_engine::{Gpu, GpuOptions, ProfileReport, Tensor};

/// A device whose kernel names do not depend on the adapter: the row reductions on workgroup
/// trees (the `*_subgroup` variants elsewhere where the adapter has subgroups).
fn device(profile: bool, cpu_kernels: Option<bool>) -> Gpu {
    Gpu::with_options(GpuOptions {
        profile: Some(profile),
        cpu_kernels,
        subgroups: Some(false),
        ..Default::default()
    })
    .expect("a GPU adapter (lavapipe in CI)")
}

/// Two matmuls, one convolution with bias, three softmaxes (sizes that divide no tile); the outputs.
fn workload(gpu: &Gpu) -> Vec<Tensor> {
    let a = tensor(gpu, &[37, 29], 1);
    let b = tensor(gpu, &[29, 23], 2);
    let x = tensor(gpu, &[2, 3, 11, 13], 3);
    let w = tensor(gpu, &[5, 3, 3, 3], 4);
    let bias = tensor(gpu, &[5], 5);
    let s = tensor(gpu, &[6, 50], 6);
    let opts = Conv2dOptions {
        padding: 1,
        ..Default::default()
    };
    vec![
        a.matmul(&b).unwrap(),
        a.matmul(&b).unwrap().softmax().unwrap(),
        x.conv2d(&w, Some(&bias), opts).unwrap(),
        s.softmax().unwrap(),
        s.softmax().unwrap(),
    ]
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Kernel name → calls, in the report's order.
fn calls(r: &ProfileReport) -> Vec<(&str, u64)> {
    r.rows
        .iter()
        .map(|r| (r.kernel.as_str(), r.calls))
        .collect()
}

/// Times finite and ≥ 0, rows summing to the total and shares to 100 %, rows sorted by time.
fn check_table(gpu: &Gpu, r: &ProfileReport) {
    let has_timestamps = gpu
        .info()
        .features
        .contains(wgpu::Features::TIMESTAMP_QUERY);
    assert_eq!(r.timed, has_timestamps);
    let Some(total) = r.total_ms else {
        assert!(r
            .rows
            .iter()
            .all(|x| x.total_ms.is_none() && x.share.is_none()));
        return;
    };
    let ms: Vec<f64> = r.rows.iter().map(|x| x.total_ms.unwrap()).collect();
    assert!(ms.iter().all(|m| m.is_finite() && *m >= 0.0), "{ms:?}");
    assert!(
        ms.windows(2).all(|p| p[0] >= p[1]),
        "not sorted by time: {ms:?}"
    );
    let sum: f64 = ms.iter().sum();
    assert!(
        (sum - total).abs() <= 1e-9 * total.max(1.0),
        "{sum} vs {total}"
    );
    if total > 0.0 {
        let shares: f64 = r.rows.iter().map(|x| x.share.unwrap()).sum();
        assert!((shares - 100.0).abs() < 1e-6, "shares sum to {shares}");
        for (row, m) in r.rows.iter().zip(&ms) {
            assert!((row.share.unwrap() - 100.0 * m / total).abs() < 1e-9);
        }
    }
}

#[test]
fn report_names_each_kernel_variant_with_its_calls() {
    // The GPU variants, whose names do not depend on the host's core count.
    let gpu = device(true, Some(false));
    let out = workload(&gpu);
    drop(out);
    let r = gpu.profile_report().expect("profiling is on");
    let mut got = calls(&r);
    got.sort();
    assert_eq!(
        got,
        [
            ("conv2d_tiled[CHECK_BOUNDS=true,TR=4]", 1),
            ("matmul_tiled[CHECK_BOUNDS=true,TR=4]", 2),
            ("softmax", 3),
        ]
    );
    check_table(&gpu, &r);
    // Rates where the launch states its work (matmul, conv), none elsewhere.
    for row in &r.rows {
        let stated = !row.kernel.starts_with("softmax");
        if row.total_ms.is_some_and(|m| m > 0.0) {
            assert_eq!(row.gflops.is_some(), stated, "{}", row.kernel);
            assert_eq!(row.gbps.is_some(), stated, "{}", row.kernel);
        } else {
            assert!(row.gflops.is_none() && row.gbps.is_none());
        }
    }
    let table = r.to_string();
    for (name, _) in calls(&r) {
        assert!(table.contains(name), "{table}");
    }
    let softmax_line = table.lines().find(|l| l.contains("| softmax |")).unwrap();
    assert!(softmax_line.ends_with("| — | — |"), "{softmax_line}");

    // The report is cumulative: more work adds calls to the same rows.
    workload(&gpu);
    let again = gpu.profile_report().unwrap();
    assert!(again
        .rows
        .iter()
        .any(|x| x.kernel == "softmax" && x.calls == 6));
    check_table(&gpu, &again);

    // After a reset it covers only what follows.
    gpu.profile_reset();
    assert!(gpu.profile_report().unwrap().rows.is_empty());
    tensor(&gpu, &[3, 7], 12).softmax().unwrap();
    assert_eq!(calls(&gpu.profile_report().unwrap()), [("softmax", 1)]);
}

#[test]
fn cpu_variants_are_named_by_their_blocks() {
    let gpu = device(true, Some(true));
    workload(&gpu);
    let r = gpu.profile_report().unwrap();
    let got = calls(&r);
    let family = |prefix: &str| -> u64 {
        got.iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, c)| c)
            .sum()
    };
    assert_eq!(family("matmul_direct[TM="), 2, "{got:?}");
    // 5 output channels take blocks of 8, rows of 13 blocks of 16 (ops::conv).
    assert_eq!(family("conv2d_direct[MB=8,NB=16]"), 1, "{got:?}");
    assert_eq!(family("softmax"), 3);
    assert_eq!(got.len(), 3, "{got:?}");
    check_table(&gpu, &r);
}

#[test]
fn attention_is_profiled_with_its_work() {
    let gpu = device(true, None);
    let q = tensor(&gpu, &[2, 9, 2, 8], 7);
    let k = tensor(&gpu, &[2, 13, 2, 8], 8);
    let v = tensor(&gpu, &[2, 13, 2, 8], 9);
    q.attention(&k, &v, 0.35).unwrap();
    let r = gpu.profile_report().unwrap();
    assert_eq!(r.rows.len(), 1, "{r}");
    let row = &r.rows[0];
    assert!(
        row.kernel.starts_with("attention_") && row.kernel.contains("D=8"),
        "{r}"
    );
    assert_eq!(row.calls, 1);
    if row.total_ms.is_some_and(|m| m > 0.0) {
        assert!(row.gflops.is_some_and(f64::is_finite) && row.gbps.is_some_and(f64::is_finite));
    }
    check_table(&gpu, &r);
}

#[test]
fn results_are_bit_identical_with_profiling_on_and_off() {
    let on = device(true, None);
    let off = device(false, None);
    assert!(off.profile_report().is_none());
    let (a, b) = (workload(&on), workload(&off));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(bits(x), bits(y));
    }
    let attention = |gpu: &Gpu| {
        let q = tensor(gpu, &[1, 17, 3, 16], 10);
        let k = tensor(gpu, &[1, 21, 3, 16], 11);
        bits(&q.attention(&k, &k, 0.25).unwrap())
    };
    assert_eq!(attention(&on), attention(&off));
    // Profiling changes the passes, not the number of dispatches.
    assert_eq!(on.dispatch_count(), off.dispatch_count());
}

#[test]
fn without_profiling_no_query_set_is_created() {
    // Our own instance, so that wgpu's registry report counts exactly this device's query sets.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let timestamps = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: timestamps,
        ..Default::default()
    }))
    .unwrap();
    let query_sets = || {
        instance
            .generate_report()
            .expect("wgpu-core backend")
            .hub_report()
            .query_sets
            .num_allocated
    };
    let adopt = |profile| {
        Gpu::from_device(
            device.clone(),
            queue.clone(),
            Some(adapter.get_info()),
            GpuOptions {
                profile: Some(profile),
                ..Default::default()
            },
        )
    };

    let off = adopt(false);
    workload(&off);
    off.synchronize().unwrap();
    assert_eq!(query_sets(), 0);
    assert!(off.profile_report().is_none());

    // The count is live: a profiling device on the same wgpu device makes one, where it can.
    let on = adopt(true);
    workload(&on);
    assert_eq!(query_sets(), usize::from(!timestamps.is_empty()));
    assert!(on.profile_report().is_some());
}
