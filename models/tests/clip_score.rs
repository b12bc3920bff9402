//! CLIPModel against transformers (tools/reference/make_clip_score_fixtures.py): a tiny random
//! CLIPModel saved with save_pretrained (vision: 30×30 input, 6×6 patches, width 24, 2 layers;
//! text: width 32, 2 layers; projections to 16). From the processor's own pixel values and token
//! ids (the golden's), the image and text embeddings match float64 goldens, and CLIP score
//! matches 100·max(cos, 0) as torchmetrics computes it.
//!
//! Tolerances: embeddings 1e-4 of their largest magnitude (f32 with f32 accumulation through
//! two layers of width ≤ 40, as the CLIP text encoder's tests); scores 1e-3 absolute (points on
//! the 0–100 scale: cos to 1e-5). A missing class token, position, pre-norm or projection moves
//! the embeddings by 1e-1.

mod common;

use common::golden::{assert_close, load_io, upload, Array};
use common::{fixture, poisoned_gpu};
use iterinv_models::clip_model::clip_score;
use iterinv_models::ClipModel;

/// A `[D]` golden as the `[1, D]` the model returns.
fn row(a: &Array) -> Array {
    Array {
        shape: vec![1, a.data.len()],
        data: a.data.clone(),
    }
}

#[test]
fn clip_model_embeddings_and_score_match_transformers() {
    let gpu = poisoned_gpu();
    let dir = fixture("clip_score");
    let model = ClipModel::load(gpu, &dir.join("model")).unwrap();
    let io = load_io(&dir.join("io.safetensors"));
    let mut texts = Vec::new();
    for j in 0..2 {
        let ids = io[&format!("input_ids{j}")].rows();
        let e = model.text_embeds(&ids).unwrap();
        let want = row(&io[&format!("text_embeds{j}")]);
        texts.push(assert_close(&format!("text {j}"), &e, &want, 1e-4));
    }
    for k in 0..4 {
        let pixels = upload(gpu, &io[&format!("pixel_values{k}")]);
        let e = model.image_embeds(&pixels).unwrap();
        let want = row(&io[&format!("image_embeds{k}")]);
        let image = assert_close(&format!("image {k}"), &e, &want, 1e-4);
        assert!(e.guards_intact().unwrap());
        for (j, text) in texts.iter().enumerate() {
            let got = clip_score(&image, text);
            let w = io["score"].data[k * 2 + j];
            eprintln!("score image {k} / prompt {j}: {got:.6} vs {w:.6}");
            assert!((got - w).abs() < 1e-3, "score {k}/{j}: {got} vs {w}");
        }
    }
}

#[test]
fn clip_score_clamps_negative_cosines_and_bad_inputs_are_errors() {
    assert_eq!(clip_score(&[1.0, 0.0], &[-1.0, 0.5]), 0.0);
    assert!((clip_score(&[1.0, 0.0], &[1.0, 0.0]) - 100.0).abs() < 1e-12);
    assert_eq!(
        clip_score(&[0.0, 0.0], &[1.0, 0.0]),
        0.0,
        "a zero vector has no direction"
    );
    let gpu = poisoned_gpu();
    let model = ClipModel::load(gpu, &fixture("clip_score").join("model")).unwrap();
    let wrong = iterinv_models::engine::Tensor::zeros(gpu, &[1, 3, 32, 32]).unwrap();
    let e = model.image_embeds(&wrong).err().unwrap();
    assert!(e.to_string().contains("[B, 3, 30, 30]"), "{e}");
    // A CLIP text encoder's folder is not a CLIPModel.
    let e = ClipModel::load(gpu, &fixture("clip_text").join("quick_gelu"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("text_config"), "{e}");
}
