//! CLIPProcessor's image preprocessing and the whole CLIP score path against transformers 5 and
//! torchmetrics (tools/reference/make_clip_score_fixtures.py): the repository's photos (192×128,
//! 128×128 grey) and a 20×27 crop (upscaled), through the fixture folder's 30-pixel processor.
//!
//! Tolerances: torch resizes uint8 with fixed-point weights, we with f64 weights, each pass rounded
//! to 8 bits, so a few pixels land one level apart (measured and bounded: at most one level, at
//! most 1% of the values (0.1–0.6% seen); one level is 1/(255·std) ≈ 0.015 after normalization). Everything else
//! matches to f32 rounding (1e-5). The scores from PNG files, through our pixels, differ from the
//! golden's by what those levels move: bounded at 0.1 points of 100 (0.015 seen).

use std::path::{Path, PathBuf};

use iterinv::clip_image::ClipImageProcessor;
use iterinv::image_io::load_rgb;
use iterinv::models::clip_model::clip_score;
use iterinv::models::text::ClipTokenizer;
use iterinv::models::ClipModel;
use iterinv::{Gpu, Tensor};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).to_path_buf()
}

fn golden() -> Vec<(String, Vec<f64>)> {
    let bytes = std::fs::read(fixtures().join("clip_score/io.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let data = match v.dtype() {
                safetensors::Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                safetensors::Dtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                _ => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
            };
            (k, data)
        })
        .collect()
}

fn get<'a>(g: &'a [(String, Vec<f64>)], key: &str) -> &'a [f64] {
    &g.iter().find(|(k, _)| k == key).unwrap().1
}

const IMAGES: [&str; 4] = [
    "photos/chelsea.png",
    "photos/coffee.png",
    "photos/camera.png",
    "clip_score/coffee_crop.png",
];

#[test]
fn pixel_values_tokens_and_scores_match_transformers() {
    let g = golden();
    let dir = fixtures().join("clip_score/model");
    let processor = ClipImageProcessor::load(&dir).unwrap();
    assert_eq!(processor.shortest_edge, Some(30));
    assert_eq!(processor.crop, Some((30, 30)));
    let gpu = Gpu::with_options(iterinv::GpuOptions {
        poison: true,
        ..Default::default()
    })
    .unwrap();
    let model = ClipModel::load(&gpu, &dir).unwrap();
    let tokenizer = ClipTokenizer::load(&dir).unwrap();
    let prompts = [
        "a photo of a cat",
        "a cup of coffee on a table, seen from above!",
    ];
    let mut texts = Vec::new();
    for (j, p) in prompts.iter().enumerate() {
        let ids = tokenizer.encode_unpadded(p).unwrap();
        let want: Vec<u32> = get(&g, &format!("input_ids{j}"))
            .iter()
            .map(|&x| x as u32)
            .collect();
        assert_eq!(ids, want, "tokens of {p:?}");
        texts.push(model.text_embeds(&[ids]).unwrap().to_vec().unwrap());
    }
    for (k, name) in IMAGES.iter().enumerate() {
        let img = load_rgb(&fixtures().join(name)).unwrap();
        let (pixels, h, w) = processor.preprocess(&img);
        assert_eq!((h, w), (30, 30));
        let want = get(&g, &format!("pixel_values{k}"));
        let level = 1.0 / (255.0 * 0.26);
        let (mut off, mut worst) = (0usize, 0f64);
        for (&p, &q) in pixels.iter().zip(want) {
            let d = (p as f64 - q).abs();
            worst = worst.max(d);
            if d > 1e-5 {
                off += 1;
            }
        }
        eprintln!(
            "{name}: {off} of {} values off (worst {:.2} levels)",
            want.len(),
            worst / level
        );
        // Each of the resize's two passes rounds to 8 bits from f64 weights where torch's are
        // fixed-point, so each can land one level apart and a value two (seen on the upscaled
        // crop: one value of 2,700); past two levels the resize itself would differ.
        assert!(worst <= 2.05 * level, "{name}: a value is {worst} off");
        assert!(off * 100 <= want.len(), "{name}: {off} values off");
        let t = Tensor::from_f32(&gpu, &[1, 3, 30, 30], &pixels).unwrap();
        let image = model.image_embeds(&t).unwrap().to_vec().unwrap();
        for (j, text) in texts.iter().enumerate() {
            let got = clip_score(&image, text);
            let w = get(&g, "score")[k * 2 + j];
            eprintln!("{name} / prompt {j}: {got:.4} vs {w:.4}");
            assert!((got - w).abs() < 0.1, "{name} / prompt {j}: {got} vs {w}");
        }
    }
}

#[test]
fn processor_configs_that_cannot_be_used_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = ClipImageProcessor::load(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("preprocessor_config.json"), "{e}");
    // openai's layout: plain numbers for size and crop_size.
    std::fs::write(
        tmp.path().join("preprocessor_config.json"),
        r#"{"size": 224, "crop_size": 224, "resample": 3}"#,
    )
    .unwrap();
    let p = ClipImageProcessor::load(tmp.path()).unwrap();
    assert_eq!((p.shortest_edge, p.crop), (Some(224), Some((224, 224))));
    for bad in [
        r#"{"size": 224, "resample": 2}"#,
        r#"{"size": 0}"#,
        r#"{"size": 224, "image_std": [0.2, 0.0, 0.3]}"#,
        r#"{"size": "big"}"#,
    ] {
        std::fs::write(tmp.path().join("preprocessor_config.json"), bad).unwrap();
        let e = ClipImageProcessor::load(tmp.path()).unwrap_err();
        assert!(
            e.to_string().contains("preprocessor_config.json"),
            "{bad}: {e}"
        );
    }
}
