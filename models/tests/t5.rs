//! The T5 v1.1 encoder against transformers: `last_hidden_state` of the tiny random encoder of
//! tools/reference/make_t5_fixtures.py (inner dim 96 ≠ d_model 64, 3 layers, gated-gelu), float64
//! golden, on 4 prompts padded to 77 tokens (short, spaces, accents, truncated).
//!
//! Tolerance 1e-3 of the largest magnitude, as for the UNet: f32 with f32 accumulation; the
//! observed error is printed.

mod common;

use common::{fixture, poisoned_gpu};
use iterinv_models::engine::{Gpu, GpuOptions, Precision};
use iterinv_models::weights::TRANSFORMERS_STEM;
use iterinv_models::{Checkpoint, Error, T5Encoder};
use safetensors::{Dtype, SafeTensors};

struct Golden {
    ids: Vec<Vec<u32>>,
    mask: Vec<Vec<u32>>,
    hidden: Vec<f64>,
    shape: Vec<usize>,
}

fn golden() -> Golden {
    let bytes = std::fs::read(fixture("t5").join("encoder_io.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let rows = |name: &str| -> Vec<Vec<u32>> {
        let v = st.tensor(name).unwrap();
        assert_eq!(v.dtype(), Dtype::I64);
        let l = v.shape()[1];
        let flat: Vec<u32> = v
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect();
        flat.chunks(l).map(<[u32]>::to_vec).collect()
    };
    let h = st.tensor("last_hidden_state").unwrap();
    Golden {
        ids: rows("input_ids"),
        mask: rows("attention_mask"),
        hidden: h
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        shape: h.shape().to_vec(),
    }
}

fn check_against_golden(encoder: &T5Encoder) {
    let g = golden();
    let out = encoder.encode(&g.ids, &g.mask).unwrap();
    assert_eq!(out.shape(), &g.shape[..]);
    let got = out.to_vec().unwrap();
    let scale = g.hidden.iter().fold(0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&g.hidden)
        .map(|(&a, &b)| {
            assert!(a.is_finite());
            (a as f64 - b).abs()
        })
        .fold(0f64, f64::max);
    eprintln!("last_hidden_state: max error {err:.3e} (scale {scale:.3})");
    assert!(
        err <= 1e-3 * scale,
        "error {err:.3e} exceeds 1e-3 × {scale:.3}"
    );
    assert!(out.guards_intact().unwrap());
}

#[test]
fn encoder_matches_transformers() {
    let gpu = poisoned_gpu();
    check_against_golden(&T5Encoder::load(gpu, &fixture("t5").join("text_encoder"), None).unwrap());
}

#[test]
fn sharded_encoder_matches_transformers() {
    let gpu = poisoned_gpu();
    let dir = fixture("t5").join("text_encoder_sharded");
    check_against_golden(&T5Encoder::load(gpu, &dir, None).unwrap());
}

/// T5 runs its products at f32 on a device whose matrix products are f16 (its activations
/// overflow f16): the same bits as on an f32 device.
#[test]
fn encoder_stays_f32_on_an_f16_device() {
    let f16 = Gpu::with_options(GpuOptions {
        precision: Some(Precision::F16),
        poison: true,
        ..Default::default()
    })
    .unwrap();
    let dir = fixture("t5").join("text_encoder");
    let g = golden();
    let on_f16 = T5Encoder::load(&f16, &dir, None).unwrap();
    let on_f32 = T5Encoder::load(poisoned_gpu(), &dir, None).unwrap();
    let a = on_f16.encode(&g.ids, &g.mask).unwrap().to_vec().unwrap();
    let b = on_f32.encode(&g.ids, &g.mask).unwrap().to_vec().unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    // The device does round elsewhere: a product outside T5 differs.
    let x = iterinv_models::engine::Tensor::from_f32(&f16, &[1, 1], &[1.0 + 1.0 / 4096.0]).unwrap();
    assert_eq!(x.matmul(&x).unwrap().to_vec().unwrap()[0], 1.0);
}

#[test]
fn a_pipeline_folder_is_found_through_text_encoder() {
    let encoder = T5Encoder::load(poisoned_gpu(), &fixture("t5"), None).unwrap();
    assert_eq!(encoder.config().d_model, 64);
}

/// An embedding table larger than the device's storage-binding limit is split in chunks; the
/// encoder gives the same result as on a device without the limit.
#[test]
fn an_embedding_larger_than_a_binding_works() {
    let limited = Gpu::with_options(GpuOptions {
        max_binding_size: Some(64 << 10),
        poison: true,
        ..Default::default()
    })
    .unwrap();
    let dir = fixture("t5").join("text_encoder");
    let checkpoint = Checkpoint::open(&dir, None, None, TRANSFORMERS_STEM).unwrap();
    let table = checkpoint
        .tensor(&limited, "shared.weight", &[500, 64])
        .unwrap();
    assert!(
        table.is_chunked(),
        "the test needs a table split over bindings"
    );
    let small = T5Encoder::load(&limited, &dir, None).unwrap();
    let full = T5Encoder::load(poisoned_gpu(), &dir, None).unwrap();
    // 500 × 64 f32 = 128,000 bytes: two chunks. 20 tokens keep every activation under 64 KiB.
    let ids: Vec<Vec<u32>> = vec![(0..20).map(|i| (i * 37 + 5) % 500).collect()];
    let mask = vec![vec![1; 20]];
    let a = small.encode(&ids, &mask).unwrap().to_vec().unwrap();
    let b = full.encode(&ids, &mask).unwrap().to_vec().unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff <= 1e-5,
        "chunked and plain embeddings differ by {diff}"
    );
}

#[test]
fn bad_tokens_are_refused() {
    let encoder =
        T5Encoder::load(poisoned_gpu(), &fixture("t5").join("text_encoder"), None).unwrap();
    type Rows = Vec<Vec<u32>>;
    let cases: [(Rows, Rows, &str); 4] = [
        (
            vec![vec![5, 500]],
            vec![vec![1, 1]],
            "outside the vocabulary of 500",
        ),
        (vec![vec![5, 6]], vec![vec![0, 0]], "masks every token"),
        (
            vec![vec![5, 6], vec![7]],
            vec![vec![1, 1], vec![1]],
            "every row needs 2",
        ),
        (vec![], vec![], "non-empty"),
    ];
    for (ids, mask, expected) in cases {
        let e = encoder.encode(&ids, &mask).unwrap_err();
        assert!(
            matches!(e, Error::Input { .. }) && e.to_string().contains(expected),
            "{e}"
        );
    }
}
