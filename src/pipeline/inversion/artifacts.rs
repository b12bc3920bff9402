//! What an inversion leaves behind: one safetensors file with every tensor that reconstruction
//! (and later editing) needs, and a JSON sidecar with the models, the prompt and every setting.
//!
//! Tensors (f32): `text.cond` / `text.uncond` `[1, L, D]` (so reconstruction needs no T5),
//! `stage1.x_t` `[1, 3, S, S]`, `stage1.nulls` `[N, L, D]` (NTI's per-step null embeddings), and
//! for super-resolution stage k (k ≥ 2): `stage{k}.x_t` (`[1, 3, S, S]` on pixels, `[1, 4, h, w]`
//! on the upscaler's latent), `stage{k}.condition_noise` (the previous image's shape), and for
//! an upscaler `stage{k}.text.cond` (its CLIP text).
//!
//! Format version 2 lists the super-resolution stages; version 1 (`stage2`: IF stage II,
//! `stage3`: the upscaler) is read too, converted on load.
//!
//! Both files are written under a temporary name and renamed, the sidecar last, so an
//! interrupted run leaves either the previous artifacts or the new ones, never half of either.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use iterinv_models::{Error, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::super::folder::{PipelineFolder, Stage};
use crate::{Gpu, Precision, Tensor};

pub const TENSORS_FILE: &str = "inversion.safetensors";
pub const META_FILE: &str = "inversion.json";
const FORMAT: &str = "iterinv-inversion";
const FORMAT_VERSION: u32 = 2;
/// The sidecar's record of the tensors file it was written with (FNV-1a of its bytes).
const TENSORS_HASH: &str = "tensors_fnv1a";

/// One stage's record: which model, and how it was inverted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageMeta {
    /// What the folder holds: IF stage I, IF stage II, or the x4 upscaler.
    pub kind: Stage,
    /// The pipeline folder as given to `invert`.
    pub folder: PathBuf,
    /// [`fingerprint`] of that folder's UNet and schedulers.
    pub fingerprint: String,
    /// The stage's resolution (the UNet's `sample_size`; the latent stage: its image's side).
    pub size: usize,
    /// `nti`, `npi`, `ddim`, `nti-p2p` (stage I); `iterinv`, `iterinv-faithful`, `fixed-point`,
    /// `ddim` (the super-resolution stages).
    pub method: String,
    pub steps: usize,
    /// Classifier-free guidance of the reconstruction.
    pub guidance: f32,
    /// Whether the DDIM steps threshold/clip x₀ as the scheduler config says (else neither).
    pub thresholding: bool,
    /// The super-resolution stages: the noise level of the low-resolution condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_level: Option<usize>,
    /// The method's own settings (inner steps, learning rate, tolerance, ...), for the record.
    pub settings: serde_json::Value,
}

/// The sidecar.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArtifactsMeta {
    pub format: String,
    pub format_version: u32,
    pub iterinv_version: String,
    /// The input image as given, and how it was made square (`crop-center` or `stretch`).
    pub image: PathBuf,
    pub fit: String,
    pub prompt: String,
    pub clean_caption: bool,
    /// Weight file variant of every component (`fp16`), if any.
    pub variant: Option<String>,
    pub seed: u64,
    /// The precision of the networks' matrix products (`f32`, `f16`): a replay is exact only at
    /// the same. Sidecars written before the setting existed read as `f32`, what they ran.
    #[serde(default = "f32_name")]
    pub precision: String,
    pub stage1: StageMeta,
    /// The stages after stage I, in order (the first is stage 2).
    pub super_resolution: Vec<StageMeta>,
}

impl ArtifactsMeta {
    pub fn new(image: PathBuf, fit: &str, prompt: &str, clean_caption: bool) -> ArtifactsMeta {
        ArtifactsMeta {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            iterinv_version: crate::VERSION.into(),
            image,
            fit: fit.into(),
            prompt: prompt.into(),
            clean_caption,
            variant: None,
            seed: 0,
            precision: Precision::F32.name().into(),
            stage1: StageMeta::placeholder(),
            super_resolution: Vec::new(),
        }
    }
}

fn f32_name() -> String {
    Precision::F32.name().into()
}

impl Artifacts {
    /// The precision the inversion was made at.
    pub fn precision(&self) -> Result<Precision> {
        Precision::parse(&self.meta.precision).ok_or_else(|| Error::Input {
            what: "inversion record".into(),
            detail: format!(
                "`precision` is {:?}; expected \"f32\" or \"f16\"",
                self.meta.precision
            ),
        })
    }

    /// Refuse to replay on `gpu` at another precision than the inversion's: the replay would
    /// run, but not reproduce the photo.
    pub fn check_precision(&self, gpu: &Gpu) -> Result<()> {
        let (made, now) = (self.precision()?, gpu.precision());
        if made == now {
            return Ok(());
        }
        Err(Error::Input {
            what: "precision".into(),
            detail: format!(
                "the inversion was made with {} matrix products and this device runs {} ones: \
                 an exact replay needs the same (--precision {}, or GpuOptions::precision)",
                made.name(),
                now.name(),
                made.name()
            ),
        })
    }
}

impl StageMeta {
    fn placeholder() -> StageMeta {
        StageMeta {
            kind: Stage::One,
            folder: PathBuf::new(),
            fingerprint: String::new(),
            size: 0,
            method: String::new(),
            steps: 0,
            guidance: 1.0,
            thresholding: true,
            noise_level: None,
            settings: serde_json::Value::Null,
        }
    }
}

/// A tensor kept on the CPU: what the file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn read(t: &Tensor) -> Result<HostTensor> {
        Ok(HostTensor {
            shape: t.shape().to_vec(),
            data: t.to_vec()?,
        })
    }

    pub fn upload(&self, gpu: &Gpu) -> Result<Tensor> {
        Ok(Tensor::from_f32(gpu, &self.shape, &self.data)?)
    }
}

/// The sidecar and the tensors.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub meta: ArtifactsMeta,
    pub tensors: BTreeMap<String, HostTensor>,
}

impl Artifacts {
    /// The tensor `name`, with the shape the caller expects (`None` entries match any size).
    pub fn tensor(&self, name: &str, shape: &[Option<usize>]) -> Result<&HostTensor> {
        let t = self.tensors.get(name).ok_or_else(|| Error::Input {
            what: format!("artifacts file {TENSORS_FILE}"),
            detail: format!("has no tensor `{name}`; was it written by another iterinv version?"),
        })?;
        let fits = t.shape.len() == shape.len()
            && t.shape
                .iter()
                .zip(shape)
                .all(|(&a, b)| b.is_none_or(|b| a == b));
        if !fits {
            return Err(Error::Input {
                what: format!("artifacts tensor `{name}`"),
                detail: format!("has shape {:?}; expected {shape:?} (None: any)", t.shape),
            });
        }
        Ok(t)
    }

    /// Write both files into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), bytemuck_f32(&t.data), t.shape.clone()))
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b, s)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| Error::Input {
                        what: format!("artifacts tensor `{k}`"),
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let file = safetensors::serialize(views, None).map_err(|e| Error::Input {
            what: "artifacts".into(),
            detail: e.to_string(),
        })?;
        // The sidecar names the tensors file it belongs to by a hash of its bytes: should the
        // run stop between the two renames, the old sidecar beside the new tensors is refused
        // at load rather than replayed with them.
        let mut sidecar = serde_json::to_value(&self.meta).expect("the sidecar always serializes");
        sidecar[TENSORS_HASH] = fnv_hex(&file).into();
        let json = serde_json::to_vec_pretty(&sidecar).expect("JSON values serialize");
        write_atomic(&dir.join(TENSORS_FILE), &file)?;
        write_atomic(&dir.join(META_FILE), &json)
    }

    /// Read the artifacts `invert` wrote into `dir`.
    pub fn load(dir: &Path) -> Result<Artifacts> {
        let meta_path = dir.join(META_FILE);
        if !meta_path.is_file() {
            return Err(Error::NotFound {
                path: meta_path,
                holds: "an inversion's settings; give the folder `iterinv invert --out` wrote"
                    .into(),
            });
        }
        let text = fs::read(&meta_path).map_err(|e| io_err(&meta_path, e))?;
        let mut probe: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::ConfigParse {
                path: meta_path.clone(),
                detail: e.to_string(),
            })?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(Error::ConfigParse {
                path: meta_path,
                detail: format!("not an iterinv inversion record (no \"format\": \"{FORMAT}\")"),
            });
        }
        let version = probe.get("format_version").and_then(|v| v.as_u64());
        let mut renamed_stage3 = false;
        match version {
            Some(1) => renamed_stage3 = upgrade_version1(&mut probe),
            Some(v) if v == FORMAT_VERSION as u64 => {}
            _ => {
                return Err(Error::ConfigParse {
                    path: meta_path,
                    detail: format!(
                        "format version {version:?}; this iterinv reads versions 1 and \
                         {FORMAT_VERSION}"
                    ),
                })
            }
        }
        let tensors_hash = probe
            .get(TENSORS_HASH)
            .and_then(|h| h.as_str())
            .map(str::to_string);
        let meta: ArtifactsMeta =
            serde_json::from_value(probe).map_err(|e| Error::ConfigParse {
                path: meta_path.clone(),
                detail: e.to_string(),
            })?;
        if Precision::parse(&meta.precision).is_none() {
            return Err(Error::ConfigParse {
                path: meta_path,
                detail: format!(
                    "`precision` is {:?}; expected \"f32\" or \"f16\"",
                    meta.precision
                ),
            });
        }
        // JSON has no NaN, but 1e308 reads as an infinite f32 guidance.
        for (k, stage) in std::iter::once(&meta.stage1)
            .chain(&meta.super_resolution)
            .enumerate()
        {
            let g = stage.guidance;
            if !g.is_finite() {
                return Err(Error::ConfigParse {
                    path: meta_path,
                    detail: format!(
                        "stage {}'s `guidance` is {g}; it must be a finite number",
                        k + 1
                    ),
                });
            }
        }
        if meta.stage1.kind != Stage::One
            || meta.super_resolution.iter().any(|s| s.kind == Stage::One)
        {
            return Err(Error::ConfigParse {
                path: meta_path,
                detail: "the first stage must be of kind \"if-stage1\", and only the first".into(),
            });
        }
        let path = dir.join(TENSORS_FILE);
        let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
        // Absent from files written before 2026-12-07.
        if let Some(want) = tensors_hash {
            if want != fnv_hex(&bytes) {
                return Err(Error::Corrupt {
                    path,
                    detail: format!(
                        "it is not the file {META_FILE} was written with (the two are from \
                         different runs, or one was interrupted or edited); rerun `iterinv invert`"
                    ),
                });
            }
        }
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(Error::Corrupt {
                    path,
                    detail: format!("tensor `{name}` is {:?}; artifacts are F32", view.dtype()),
                });
            }
            // Every tensor iterinv writes has data. An empty one could carry any count in its
            // other dimensions (`[10¹², 0, 8]` is 0 bytes), which replay would allocate for.
            if view.shape().contains(&0) {
                return Err(Error::Corrupt {
                    path,
                    detail: format!(
                        "tensor `{name}` has shape {:?}; artifacts hold no empty tensors",
                        view.shape()
                    ),
                });
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let shape = view.shape().to_vec();
            // Version 1 named an upscaler's tensors `stage3.` even right after stage I.
            let name = match name.strip_prefix("stage3.") {
                Some(rest) if renamed_stage3 => format!("stage2.{rest}"),
                _ => name,
            };
            tensors.insert(name, HostTensor { shape, data });
        }
        Ok(Artifacts { meta, tensors })
    }
}

/// Rewrite a version-1 sidecar (`stage2`: IF stage II, `stage3`: the upscaler; no `kind`) as
/// version 2. Returns whether the upscaler's tensors must be renamed from `stage3.` to `stage2.`
/// (version 1 named them `stage3.` even when no IF stage II ran before it).
fn upgrade_version1(meta: &mut serde_json::Value) -> bool {
    let Some(object) = meta.as_object_mut() else {
        return false;
    };
    let kinded = |value: Option<serde_json::Value>, kind: &str| {
        value.filter(|v| !v.is_null()).map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.insert("kind".into(), kind.into());
            }
            v
        })
    };
    let stage1 = kinded(object.remove("stage1"), "if-stage1");
    let stage2 = kinded(object.remove("stage2"), "if-super-resolution");
    let stage3 = kinded(object.remove("stage3"), "latent-upscaler");
    let renamed = stage2.is_none() && stage3.is_some();
    if let Some(s) = stage1 {
        object.insert("stage1".into(), s);
    }
    let list: Vec<serde_json::Value> = stage2.into_iter().chain(stage3).collect();
    object.insert("super_resolution".into(), list.into());
    object.insert("format_version".into(), FORMAT_VERSION.into());
    renamed
}

fn bytemuck_f32(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [`write_atomic`] with the writing done by `write` into the temporary file. A failure (a full
/// disk, an interrupted writer) leaves no temporary file and the previous file at `path`
/// untouched.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    // A stale temporary entry (a run killed mid-write, or anything else at that name) is
    // replaced, never written through: it could be a link to somewhere else.
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_file(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    let written = fs::File::create(&tmp)
        .and_then(|mut file| {
            write(&mut file)?;
            file.sync_all()
        })
        .map_err(|e| io_err(&tmp, e))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| io_err(path, e)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// How much of each weight file the fingerprint reads: the safetensors header (names, shapes,
/// offsets) and the first weights. Hashing whole multi-GB checkpoints would take longer than a
/// reconstruction; this still tells different configs, layouts and trainings apart.
const FINGERPRINT_BYTES: u64 = 1 << 20;

/// A 64-bit FNV-1a hash of a stage's UNet and scheduler files (names, sizes and their first
/// MiB), as 16 hex digits: reconstruction checks it so that artifacts are never replayed on
/// another model.
pub fn fingerprint(folder: &PipelineFolder) -> Result<String> {
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    let components: &[&str] = match folder.stage() {
        Stage::One => &["unet", "scheduler"],
        Stage::Two => &["unet", "scheduler", "image_noising_scheduler"],
        Stage::Upscaler => &[
            "unet",
            "vae",
            "text_encoder",
            "scheduler",
            "low_res_scheduler",
        ],
    };
    for component in components {
        let dir = folder.component(component)?;
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| io_err(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            hash.feed(component.as_bytes());
            hash.feed(name.as_bytes());
            let f = fs::File::open(&file).map_err(|e| io_err(&file, e))?;
            let len = f.metadata().map_err(|e| io_err(&file, e))?.len();
            hash.feed(&len.to_le_bytes());
            let mut head = Vec::new();
            f.take(FINGERPRINT_BYTES)
                .read_to_end(&mut head)
                .map_err(|e| io_err(&file, e))?;
            hash.feed(&head);
        }
    }
    Ok(format!("{:016x}", hash.0))
}

/// FNV-1a of `bytes`, as 16 hex digits.
fn fnv_hex(bytes: &[u8]) -> String {
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    hash.feed(bytes);
    format!("{:016x}", hash.0)
}

struct Fnv(u64);

impl Fnv {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
