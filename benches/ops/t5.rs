//! T5 workloads: the tiny encoder of the test fixtures encoding 2 prompts padded to 77 tokens,
//! and with `ITERINV_BENCH_T5_XXL=1` T5-v1.1-XXL's shapes (4.76 B random f16 weights, ~9.5 GB:
//! a real GPU only) encoding the same.

use std::path::Path;

use iterinv::models::config::T5Config;
use iterinv::models::weights::Weights;
use iterinv::models::T5Encoder;
use iterinv::Gpu;

use crate::random_weights::RandomF16;
use crate::{BenchResult, Workload};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Two prompts of 12 and 30 tokens, padded to 77.
fn tokens(vocab: usize) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let row = |n: usize, seed: u32| -> (Vec<u32>, Vec<u32>) {
        let ids = (0..77)
            .map(|i| {
                if i < n {
                    (i as u32 * 7919 + seed) % vocab as u32
                } else {
                    0
                }
            })
            .collect();
        (ids, (0..77).map(|i| u32::from(i < n)).collect())
    };
    let (a, ma) = row(12, 3);
    let (b, mb) = row(30, 11);
    (vec![a, b], vec![ma, mb])
}

fn workload(name: &'static str, encoder: T5Encoder) -> Workload {
    let (ids, mask) = tokens(encoder.config().vocab_size);
    Workload {
        name,
        flops: 0.0,
        run: Box::new(move || Ok(encoder.encode(&ids, &mask)?)),
    }
}

pub fn tiny_t5(gpu: &Gpu) -> BenchResult<Workload> {
    let dir = Path::new(FIXTURES).join("t5/text_encoder");
    Ok(workload("t5_tiny_b2_77", T5Encoder::load(gpu, &dir, None)?))
}

pub fn t5_xxl(gpu: &Gpu) -> BenchResult<Workload> {
    let path = Path::new(FIXTURES).join("checkpoints/t5-v1_1-xxl.encoder.json");
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let config: T5Config = serde_json::from_value(spec["config"].clone())?;
    let source = RandomF16 { gpu };
    let encoder = T5Encoder::from_weights(gpu, config, &Weights::new(&source))?;
    Ok(workload("t5_xxl_b2_77", encoder))
}
