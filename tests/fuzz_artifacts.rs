//! Fuzzing the inversion artifacts reader (src/pipeline/inversion/artifacts.rs): a complete
//! three-stage record (stage I, IF stage II, an upscaler) with its sidecar JSON edited (fields removed, mistyped, absurd) or mutated,
//! or its safetensors file mutated or its header edited. Each must load or fail with an error
//! naming inversion.json or inversion.safetensors; what loads must be safe for replay to size
//! its work by (every tensor non-empty and as long as its shape says, the guidance finite, the
//! per-step null embeddings no more than the data holds).

mod fuzz_support;

use std::collections::BTreeMap;
use std::path::Path;

use fuzz_support::{assert_names_file, budget, guarded, json, mutate};
use iterinv::pipeline::inversion::artifacts::{META_FILE, TENSORS_FILE};
use iterinv::pipeline::inversion::{Artifacts, ArtifactsMeta, HostTensor};
use iterinv::pipeline::Stage;
use proptest::prelude::*;
use serde_json::Value;

/// A record as `invert` writes it: stage I by NTI (3 steps, 4 tokens of width 8), IF stage II,
/// an upscaler stage.
fn sample() -> Artifacts {
    let mut meta = ArtifactsMeta::new("photo.png".into(), "crop-center", "a cat", false);
    meta.stage1.method = "nti".into();
    meta.stage1.steps = 3;
    meta.stage1.size = 4;
    meta.stage1.fingerprint = "0123456789abcdef".into();
    let mut s2 = meta.stage1.clone();
    s2.method = "iterinv".into();
    s2.size = 8;
    s2.noise_level = Some(250);
    s2.kind = Stage::Two;
    let mut s3 = s2.clone();
    s3.kind = Stage::Upscaler;
    s3.size = 32;
    s3.noise_level = Some(100);
    meta.super_resolution = vec![s2, s3];
    let t = |shape: &[usize]| HostTensor {
        shape: shape.to_vec(),
        data: (0..shape.iter().product::<usize>())
            .map(|i| i as f32 * 0.01)
            .collect(),
    };
    let tensors = BTreeMap::from([
        ("text.cond".to_string(), t(&[1, 4, 8])),
        ("text.uncond".to_string(), t(&[1, 4, 8])),
        ("stage1.x_t".to_string(), t(&[1, 3, 4, 4])),
        ("stage1.nulls".to_string(), t(&[3, 4, 8])),
        ("stage2.x_t".to_string(), t(&[1, 3, 8, 8])),
        ("stage2.condition_noise".to_string(), t(&[1, 3, 8, 8])),
        ("stage3.x_t".to_string(), t(&[1, 4, 8, 8])),
        ("stage3.condition_noise".to_string(), t(&[1, 3, 8, 8])),
        ("stage3.text.cond".to_string(), t(&[1, 4, 8])),
    ]);
    Artifacts { meta, tensors }
}

/// The sample's two files. The sidecar's hash of the tensors file is dropped (as in files
/// written before it existed), so that mutated tensors reach the safetensors parser instead of
/// stopping at the hash check.
fn seeds() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    sample().save(dir.path()).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(META_FILE)).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("tensors_fnv1a");
    (
        serde_json::to_vec_pretty(&meta).unwrap(),
        std::fs::read(dir.path().join(TENSORS_FILE)).unwrap(),
    )
}

fn frame(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// (sidecar, tensors): one of them tampered with.
fn strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let (meta, tensors) = seeds();
    let n = u64::from_le_bytes(tensors[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&tensors[8..8 + n]).unwrap();
    let data = tensors[8 + n..].to_vec();
    let meta_value: Value = serde_json::from_slice(&meta).unwrap();
    let (m1, m2, m3, t1) = (meta.clone(), meta.clone(), meta, tensors.clone());
    prop_oneof![
        json::edited(meta_value).prop_map(move |m| (m, t1.clone())),
        mutate::mutated(m1).prop_map({
            let t = tensors.clone();
            move |m| (m, t.clone())
        }),
        mutate::mutated(tensors).prop_map(move |t| (m2.clone(), t)),
        json::edited(header).prop_map(move |h| (m3.clone(), frame(&h, &data))),
    ]
}

/// What replay relies on in a loaded record.
fn assert_replayable(a: &Artifacts) {
    assert_eq!(a.meta.stage1.kind, Stage::One);
    for stage in std::iter::once(&a.meta.stage1).chain(&a.meta.super_resolution) {
        assert!(stage.guidance.is_finite());
    }
    for (name, t) in &a.tensors {
        assert!(!t.shape.contains(&0), "{name}: empty tensor loaded");
        assert_eq!(t.shape.iter().product::<usize>(), t.data.len(), "{name}");
    }
    // Replay splits the nulls into `steps` pieces: only after this lookup succeeds.
    let steps = a.meta.stage1.steps;
    if let Ok(nulls) = a.tensor("stage1.nulls", &[Some(steps), None, None]) {
        assert!(
            steps <= nulls.data.len(),
            "{steps} steps from {} values",
            nulls.data.len()
        );
    }
}

fn load(dir: &Path, meta: &[u8], tensors: &[u8]) -> Result<(), String> {
    std::fs::write(dir.join(META_FILE), meta).unwrap();
    std::fs::write(dir.join(TENSORS_FILE), tensors).unwrap();
    let d = dir.to_path_buf();
    let len = meta.len() + tensors.len();
    let result = guarded("artifacts", budget(len, 64), move || {
        Artifacts::load(&d)
            .map(|a| assert_replayable(&a))
            .map_err(|e| e.to_string())
    });
    if let Err(msg) = &result {
        let named = [META_FILE, TENSORS_FILE].iter().any(|f| msg.contains(f));
        assert!(named, "the error names neither artifacts file: {msg}");
        assert_names_file(msg, dir);
    }
    result
}

proptest! {
    #![proptest_config(fuzz_support::config(2000))]

    #[test]
    fn tampered_artifacts_load_or_name_the_file((meta, tensors) in strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let _ = load(dir.path(), &meta, &tensors);
    }
}

#[test]
fn the_untampered_sample_loads() {
    let (meta, tensors) = seeds();
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &meta, &tensors).unwrap();
}

#[test]
fn an_empty_tensor_with_a_huge_step_count_is_refused() {
    // `stage1.nulls` of shape [10¹², 0, 8] is 0 bytes; replay would have split it into 10¹²
    // pieces (a 8 TB list) for a record that says `steps: 10¹²`.
    let mut a = sample();
    a.meta.stage1.steps = 1_000_000_000_000;
    a.tensors.insert(
        "stage1.nulls".into(),
        HostTensor {
            shape: vec![1_000_000_000_000, 0, 8],
            data: vec![],
        },
    );
    let dir = tempfile::tempdir().unwrap();
    a.save(dir.path()).unwrap();
    let msg = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(TENSORS_FILE) && msg.contains("stage1.nulls"),
        "{msg}"
    );
}

#[test]
fn an_infinite_guidance_is_refused() {
    let (meta, tensors) = seeds();
    let mut v: Value = serde_json::from_slice(&meta).unwrap();
    v["stage1"]["guidance"] = 1e300.into();
    let dir = tempfile::tempdir().unwrap();
    let msg = load(dir.path(), &serde_json::to_vec(&v).unwrap(), &tensors).unwrap_err();
    assert!(msg.contains("guidance"), "{msg}");
}
