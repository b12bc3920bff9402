//! Attention in blocks of queries through matmul and softmax (head dims past the flash
//! kernels'), against attention.rs's f64 reference.

use iterinv_engine::ops::attention_blocked::{attention_by_query_blocks, queries_per_block};
use iterinv_engine::Gpu;

use crate::attention::{data, reference, round_f16, run, upload, Case, Data, BASE};
use crate::common::{assert_close, gpu_variant, Rng};

/// Head dims past the flash kernels' 128 (the VAE's mid attention is one head of 512) run in
/// blocks of queries: through `attention` (one block at these sizes) and with a bound small
/// enough to force several blocks, the last one partial, on both matmul variants.
///
/// Tolerance: as ATOL, but the scores are D-term f32 dot products from the matmul kernels (D up
/// to 512: rounding ≲ √512·6e-8·|s| ≈ 3e-6 relative at |s| ~ 2) and the second product sums Lk
/// weighted values; 2e-5 leaves room for both. lavapipe's worst is printed by assert_close.
#[test]
fn wide_heads_run_in_query_blocks() {
    const WIDE_ATOL: f64 = 2e-5;
    for (i, (b, h, d)) in [(1usize, 1usize, 512usize), (2, 2, 200)]
        .into_iter()
        .enumerate()
    {
        let c = Case {
            b,
            lq: 150,
            h,
            d,
            lk1: 77,
            ..BASE
        };
        let mut rng = Rng::new(60 + i as u64);
        let x = data(c, &mut rng);
        let expected = reference(&x, None);
        for cpu in [true, false] {
            let g = gpu_variant(cpu);
            let what = format!("attention B{b} H{h} D{d} (cpu kernels {cpu})");
            assert_close(&what, &run(g, &x, false), &expected, WIDE_ATOL, 0.0);
            let q = upload(g, &[b, c.lq, h, d], &x.q, false);
            let k = upload(g, &[b, c.lk1, h, d], &x.k, true);
            let v = upload(g, &[b, c.lk1, h, d], &x.v, true);
            // 64 queries per block: 150 = 64 + 64 + 22.
            let bound = 64 * b * h * c.lk1 * 4;
            assert_eq!(queries_per_block(b * h, c.lk1, bound), 64);
            let out = attention_by_query_blocks(&q, &k, &v, x.scale, bound).unwrap();
            assert!(out.guards_intact().unwrap());
            // k and v went up as f16: the reference takes the same rounded values.
            let rounded = Data {
                k: round_f16(x.k.clone()),
                v: round_f16(x.v.clone()),
                ..x.clone()
            };
            let expected16 = reference(&rounded, None);
            assert_close(
                &format!("{what} in blocks of 64, f16 k/v"),
                &out,
                &expected16,
                WIDE_ATOL,
                0.0,
            );
        }
    }
}

/// The bound holds: 4096 queries × 4096 keys at D 136 would be a 64 MiB score matrix; with 2 MiB
/// blocks the pool's peak stays far below it (inputs, output and two blocks' scores). Sampled
/// rows are checked against the f64 reference.
#[test]
fn query_blocks_never_hold_the_whole_score_matrix() {
    let g = Gpu::new().unwrap();
    let (n, d) = (4096usize, 136usize);
    let c = Case {
        b: 1,
        lq: n,
        h: 1,
        d,
        lk1: n,
        ..BASE
    };
    let x = data(c, &mut Rng::new(70));
    let q = upload(&g, &[1, n, 1, d], &x.q, false);
    let k = upload(&g, &[1, n, 1, d], &x.k, false);
    let v = upload(&g, &[1, n, 1, d], &x.v, false);
    g.synchronize().unwrap();
    g.reset_peak();
    let bound = 2 << 20;
    let out = attention_by_query_blocks(&q, &k, &v, x.scale, bound).unwrap();
    let got = out.to_vec().unwrap();
    let peak = g.pool_stats().peak_bytes_in_use;
    let full = (n * n * 4) as u64;
    eprintln!("query blocks: peak {peak} bytes in use; the whole score matrix is {full}");
    assert!(peak < full / 2, "peak {peak} bytes, score matrix {full}");
    let rows: Vec<usize> = (0..32).map(|r| (r * 4099 / 32 + r % 5) % n).collect();
    let expected = reference(&x, Some(&rows));
    for (r, &i) in rows.iter().enumerate() {
        for dd in 0..d {
            let (a, e) = (got[i * d + dd] as f64, expected[r * d + dd]);
            assert!(
                (a - e).abs() <= 2e-5,
                "row {i} dim {dd}: {a} but the reference is {e}"
            );
        }
    }
}
