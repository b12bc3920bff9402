//! Pipeline folders of the real checkpoints' shapes without their weights: each safetensors file
//! has the real header (every key and shape of tests/fixtures/checkpoints/*.json, f16) and a
//! sparse data section (a hole the size of the weights: no disk used, zeros if read). A planning
//! device ([`iterinv::Gpu::planner`]) loads them as the real checkpoints: it reads only headers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::fixtures;

fn spec(name: &str) -> Value {
    let path = fixtures().join("checkpoints").join(name);
    serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap()
}

/// A safetensors file at `path` with `spec`'s keys and shapes as f16 and no data written.
fn sparse_safetensors(path: &Path, spec: &Value) {
    let mut header = Map::new();
    let mut offset = 0u64;
    let mut keys: Vec<(&String, &Value)> = spec["keys"].as_object().unwrap().iter().collect();
    keys.sort_by_key(|(k, _)| k.as_str());
    for (key, shape) in keys {
        let n: u64 = shape
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        let end = offset + 2 * n;
        header.insert(
            key.clone(),
            json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_string(&Value::Object(header)).unwrap();
    while !(text.len() + 8).is_multiple_of(8) {
        text.push(' ');
    }
    let mut f = fs::File::create(path).unwrap();
    f.write_all(&(text.len() as u64).to_le_bytes()).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.set_len(8 + text.len() as u64 + offset).unwrap();
}

/// `component/` of a pipeline folder: `config` as config.json and the weights of `spec_name`.
fn component(dir: &Path, component: &str, spec_name: &str, file: &str, extra: Value) {
    let s = spec(spec_name);
    let out = dir.join(component);
    fs::create_dir_all(&out).unwrap();
    let mut config = s["config"].as_object().unwrap().clone();
    for (k, v) in extra.as_object().unwrap() {
        config.insert(k.clone(), v.clone());
    }
    fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    sparse_safetensors(&out.join(file), &s);
}

/// Copies `names` (files or folders) from the trained tiny `stage` into `dir`.
fn copy_from_tiny(stage: &str, dir: &Path, names: &[&str]) {
    let from = fixtures().join("trained_cascade").join(stage);
    for name in names {
        let src = from.join(name);
        if src.is_dir() {
            fs::create_dir_all(dir.join(name)).unwrap();
            for e in fs::read_dir(&src).unwrap() {
                let p = e.unwrap().path();
                fs::copy(&p, dir.join(name).join(p.file_name().unwrap())).unwrap();
            }
        } else {
            fs::copy(&src, dir.join(name)).unwrap();
        }
    }
}

const UNET_FILE: &str = "diffusion_pytorch_model.safetensors";

/// IF-I-XL (with T5-v1.1-XXL), IF-II-L and the SD x4 upscaler as pipeline folders under `root`:
/// the real networks' configs and shapes; the schedulers and tokenizers of the tiny trained
/// cascade (the same classes and settings; a tokenizer's ids only need to be in range).
pub fn real_cascade(root: &Path) -> [PathBuf; 3] {
    let s1 = root.join("IF-I-XL-v1.0");
    fs::create_dir_all(&s1).unwrap();
    copy_from_tiny(
        "stage1",
        &s1,
        &["model_index.json", "scheduler", "tokenizer"],
    );
    component(&s1, "unet", "IF-I-XL-v1.0.unet.json", UNET_FILE, json!({}));
    component(
        &s1,
        "text_encoder",
        "t5-v1_1-xxl.encoder.json",
        "model.safetensors",
        json!({"architectures": ["T5EncoderModel"], "model_type": "t5"}),
    );
    let s2 = root.join("IF-II-L-v1.0");
    fs::create_dir_all(&s2).unwrap();
    copy_from_tiny(
        "stage2",
        &s2,
        &["model_index.json", "scheduler", "image_noising_scheduler"],
    );
    component(&s2, "unet", "IF-II-L-v1.0.unet.json", UNET_FILE, json!({}));
    let s3 = root.join("stable-diffusion-x4-upscaler");
    fs::create_dir_all(&s3).unwrap();
    copy_from_tiny(
        "stage3",
        &s3,
        &[
            "model_index.json",
            "scheduler",
            "low_res_scheduler",
            "tokenizer",
        ],
    );
    component(
        &s3,
        "unet",
        "stable-diffusion-x4-upscaler.unet.json",
        UNET_FILE,
        json!({}),
    );
    component(
        &s3,
        "vae",
        "stable-diffusion-x4-upscaler.vae.json",
        UNET_FILE,
        json!({}),
    );
    component(
        &s3,
        "text_encoder",
        "stable-diffusion-x4-upscaler.text_encoder.json",
        "model.safetensors",
        json!({"architectures": ["CLIPTextModel"], "model_type": "clip_text_model"}),
    );
    [s1, s2, s3]
}
