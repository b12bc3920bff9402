//! The inversion artifacts on disk: a lossless round trip, atomic writes, clear errors for
//! foreign or damaged files, and model fingerprints that tell models apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iterinv::pipeline::inversion::artifacts::{fingerprint, META_FILE, TENSORS_FILE};
use iterinv::pipeline::inversion::{Artifacts, ArtifactsMeta, HostTensor};
use iterinv::pipeline::{PipelineFolder, Stage};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn sample() -> Artifacts {
    let mut meta = ArtifactsMeta::new("photo.png".into(), "crop-center", "a cat", false);
    meta.seed = 7;
    meta.stage1.method = "nti".into();
    meta.stage1.steps = 3;
    let mut tensors = BTreeMap::new();
    // Values that a lossy or reordering writer would change: signed zero, subnormal, extremes.
    let data = vec![1.5, -0.0, f32::MIN_POSITIVE / 4.0, f32::MAX, -3.25, 1e-30];
    tensors.insert(
        "stage1.x_t".to_string(),
        HostTensor {
            shape: vec![1, 2, 3],
            data: data.clone(),
        },
    );
    tensors.insert(
        "text.cond".to_string(),
        HostTensor {
            shape: vec![1, 3, 2],
            data: data.iter().rev().copied().collect(),
        },
    );
    Artifacts { meta, tensors }
}

#[test]
fn artifacts_round_trip_bit_for_bit_and_leave_no_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample();
    a.save(dir.path()).unwrap();
    let b = Artifacts::load(dir.path()).unwrap();
    assert_eq!(a.meta, b.meta);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (k, t) in &a.tensors {
        let u = &b.tensors[k];
        assert_eq!(t.shape, u.shape, "{k}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&t.data), bits(&u.data), "{k}");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [META_FILE, TENSORS_FILE]);
}

#[test]
fn missing_foreign_and_damaged_artifacts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains(META_FILE), "{err}");

    sample().save(dir.path()).unwrap();
    let meta_path = dir.path().join(META_FILE);
    let original = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(&meta_path, r#"{"format": "something else"}"#).unwrap();
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not an iterinv inversion record"), "{err}");
    std::fs::write(
        &meta_path,
        original.replace("\"format_version\": 2", "\"format_version\": 99"),
    )
    .unwrap();
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("format version"), "{err}");
    std::fs::write(&meta_path, &original).unwrap();

    let tensors = dir.path().join(TENSORS_FILE);
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() - 5]).unwrap();
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("truncated or corrupt"), "{err}");

    let a = sample();
    let err = a.tensor("stage2.x_t", &[Some(1)]).unwrap_err().to_string();
    assert!(err.contains("stage2.x_t"), "{err}");
    let err = a
        .tensor("stage1.x_t", &[Some(1), Some(3), None])
        .unwrap_err()
        .to_string();
    assert!(err.contains("[1, 2, 3]"), "{err}");
    assert!(a.tensor("stage1.x_t", &[Some(1), None, Some(3)]).is_ok());
}

#[test]
fn fingerprints_tell_models_apart() {
    let print =
        |dir: &Path, stage| fingerprint(&PipelineFolder::open(dir, stage).unwrap()).unwrap();
    let trained = fixture("trained_cascade/stage1");
    let a = print(&trained, Stage::One);
    assert_eq!(a, print(&trained, Stage::One), "deterministic");
    assert_ne!(a, print(&fixture("cascade/stage1"), Stage::One));
    assert_ne!(
        print(&fixture("trained_cascade/stage2"), Stage::Two),
        print(&fixture("cascade/stage2"), Stage::Two)
    );

    // The same files with one weight changed: another model.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&trained, copy.path());
    let weights = copy.path().join("unet/diffusion_pytorch_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n.min(1 << 20) - 1] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    assert_ne!(a, print(copy.path(), Stage::One));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// A three-stage record: stage I, IF stage II, an upscaler.
fn three_stages() -> Artifacts {
    let mut a = sample();
    let mut s2 = a.meta.stage1.clone();
    s2.kind = Stage::Two;
    s2.method = "iterinv".into();
    s2.noise_level = Some(250);
    let mut s3 = s2.clone();
    s3.kind = Stage::Upscaler;
    s3.noise_level = Some(100);
    a.meta.super_resolution = vec![s2, s3];
    let t = a.tensors["stage1.x_t"].clone();
    for name in ["stage2.x_t", "stage3.x_t", "stage3.text.cond"] {
        a.tensors.insert(name.into(), t.clone());
    }
    a
}

/// The sidecar as format version 1 wrote it: `stage2` (IF stage II) and `stage3` (the upscaler)
/// fields, no kinds; `keep` picks which of the two to keep.
fn as_version1(meta: &ArtifactsMeta, keep: [bool; 2]) -> String {
    let mut v = serde_json::to_value(meta).unwrap();
    let o = v.as_object_mut().unwrap();
    let mut upper = o.remove("super_resolution").unwrap();
    for stage in upper.as_array_mut().unwrap() {
        stage.as_object_mut().unwrap().remove("kind");
    }
    o["stage1"].as_object_mut().unwrap().remove("kind");
    for (i, field) in ["stage2", "stage3"].into_iter().enumerate() {
        if keep[i] {
            o.insert(field.into(), upper[i].take());
        }
    }
    o.insert("format_version".into(), 1.into());
    serde_json::to_string_pretty(&v).unwrap()
}

/// Records of format version 1 still load, as the version-2 record they stand for; one whose
/// upscaler ran right after stage I had its tensors named `stage3.`, now `stage2.`.
#[test]
fn version_1_records_load() {
    let dir = tempfile::tempdir().unwrap();
    let a = three_stages();
    a.save(dir.path()).unwrap();
    let meta_path = dir.path().join(META_FILE);
    std::fs::write(&meta_path, as_version1(&a.meta, [true, true])).unwrap();
    let b = Artifacts::load(dir.path()).unwrap();
    assert_eq!(a.meta, b.meta);
    let names = |a: &Artifacts| a.tensors.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));

    // Only the upscaler after stage I: version 1 called it stage3.
    std::fs::write(&meta_path, as_version1(&a.meta, [false, true])).unwrap();
    let c = Artifacts::load(dir.path()).unwrap();
    assert_eq!(c.meta.super_resolution, a.meta.super_resolution[1..]);
    assert!(
        c.tensors.contains_key("stage2.text.cond"),
        "{:?}",
        names(&c)
    );
    assert!(!c.tensors.keys().any(|k| k.starts_with("stage3.")));
    assert_eq!(
        c.tensors["stage2.text.cond"].data,
        a.tensors["stage3.text.cond"].data
    );
}

/// A record whose stage kinds are out of place (a super-resolution stage of kind stage I) is
/// refused at load, before replay could run it as the wrong network.
#[test]
fn misplaced_stage_kinds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = three_stages();
    a.meta.super_resolution[0].kind = Stage::One;
    a.save(dir.path()).unwrap();
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("if-stage1"), "{err}");
}

/// The precision round-trips; a record without one (older than the setting) reads as f32, what
/// it ran; an unknown one is refused at load.
#[test]
fn the_precision_is_recorded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = sample();
    a.meta.precision = "f16".into();
    a.save(dir.path()).unwrap();
    let loaded = Artifacts::load(dir.path()).unwrap();
    assert_eq!(loaded.precision().unwrap(), iterinv::Precision::F16);
    let path = dir.path().join(META_FILE);
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    };
    edit(&|v| {
        v.as_object_mut().unwrap().remove("precision");
    });
    assert_eq!(
        Artifacts::load(dir.path()).unwrap().precision().unwrap(),
        iterinv::Precision::F32
    );
    edit(&|v| v["precision"] = "bf16".into());
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("precision") && err.contains("bf16"), "{err}");
}

/// A write that fails midway (a full disk: ENOSPC injected after half the bytes) leaves the
/// previous file as it was and no temporary file.
#[test]
fn a_failed_write_leaves_the_previous_artifacts() {
    use iterinv::pipeline::inversion::artifacts::write_atomic_with;
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let a = sample();
    a.save(dir.path()).unwrap();
    let before = std::fs::read(dir.path().join(TENSORS_FILE)).unwrap();
    let err = write_atomic_with(&dir.path().join(TENSORS_FILE), |file| {
        file.write_all(&before[..before.len() / 2])?;
        Err(std::io::Error::from_raw_os_error(28))
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains(TENSORS_FILE), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join(TENSORS_FILE)).unwrap(),
        before
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [META_FILE, TENSORS_FILE]);
    assert_eq!(Artifacts::load(dir.path()).unwrap().meta, a.meta);
}

/// A run stopped between the two renames leaves new tensors beside the old sidecar: load refuses
/// the pair (the sidecar records a hash of its tensors file) instead of replaying a mix.
#[test]
fn a_sidecar_from_another_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample();
    a.save(dir.path()).unwrap();
    let old_sidecar = std::fs::read(dir.path().join(META_FILE)).unwrap();
    let mut b = sample();
    b.tensors.get_mut("stage1.x_t").unwrap().data[0] = 2.5;
    b.save(dir.path()).unwrap();
    std::fs::write(dir.path().join(META_FILE), old_sidecar).unwrap();
    let err = Artifacts::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(TENSORS_FILE) && err.contains("different runs"),
        "{err}"
    );
}

/// A stale temporary entry at the temporary name — here a link to a file elsewhere — is
/// replaced, never written through.
#[cfg(unix)]
#[test]
fn a_stale_temporary_link_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join(format!(".{META_FILE}.partial"))).unwrap();
    sample().save(&out).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(Artifacts::load(&out).is_ok());
}
