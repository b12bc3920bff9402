//! A diffusers pipeline folder (`model_index.json` and one subfolder per component), as IF and
//! Stable Diffusion ship them: `IFPipeline` (stage I: unet/, scheduler/, text_encoder/,
//! tokenizer/), `IFSuperResolutionPipeline` (stage II: unet/, scheduler/,
//! image_noising_scheduler/) and `StableDiffusionUpscalePipeline` (the x4 upscaler: unet/, vae/,
//! text_encoder/, tokenizer/, scheduler/, low_res_scheduler/).

use std::path::{Path, PathBuf};

use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind};
use iterinv_models::{Error, Result};
use serde::{Deserialize, Serialize};

/// What kind of cascade stage a folder holds. A cascade is stage I followed by any number of
/// super-resolution stages of either kind (IF-I → IF-II → x4 upscaler, as DeepFloyd-IF chains
/// them, or IF-I → x4 upscaler → x4 upscaler, as the IterInv paper does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// IF stage I: text to a small image.
    #[serde(rename = "if-stage1")]
    One,
    /// IF stage II: a pixel-level super-resolution stage.
    #[serde(rename = "if-super-resolution")]
    Two,
    /// The Stable Diffusion x4 upscaler: a latent super-resolution stage.
    #[serde(rename = "latent-upscaler")]
    Upscaler,
}

/// The pipeline classes a folder of each stage kind may hold.
const IF_STAGE1_CLASSES: &[&str] = &["IFPipeline", "IFImg2ImgPipeline", "IFInpaintingPipeline"];
const IF_SR_CLASSES: &[&str] = &[
    "IFSuperResolutionPipeline",
    "IFImg2ImgSuperResolutionPipeline",
    "IFInpaintingSuperResolutionPipeline",
];
const UPSCALER_CLASSES: &[&str] = &["StableDiffusionUpscalePipeline"];

impl Stage {
    /// The diffusers pipeline class of this stage.
    pub fn class_name(self) -> &'static str {
        match self {
            Stage::One => "IFPipeline",
            Stage::Two => "IFSuperResolutionPipeline",
            Stage::Upscaler => "StableDiffusionUpscalePipeline",
        }
    }

    /// The kind's short name: the fixtures' folder name, and the prefix of its random draws'
    /// names when run on its own (in a cascade they are named by position: `stage3_initial`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::One => "stage1",
            Stage::Two => "stage2",
            Stage::Upscaler => "upscaler",
        }
    }

    /// How errors name this kind of stage.
    pub fn description(self) -> &'static str {
        match self {
            Stage::One => "IF stage I",
            Stage::Two => "IF super-resolution stage",
            Stage::Upscaler => "x4 upscaler stage",
        }
    }

    fn classes(self) -> &'static [&'static str] {
        match self {
            Stage::One => IF_STAGE1_CLASSES,
            Stage::Two => IF_SR_CLASSES,
            Stage::Upscaler => UPSCALER_CLASSES,
        }
    }
}

pub struct PipelineFolder {
    dir: PathBuf,
    stage: Stage,
}

impl PipelineFolder {
    /// Open `dir` as the folder of `stage`. When it has a `model_index.json`, its `_class_name`
    /// must be the stage's pipeline (a stage-II folder given as stage I is an error).
    pub fn open(dir: &Path, stage: Stage) -> Result<PipelineFolder> {
        if let Some(class) = pipeline_class(dir, stage.class_name())? {
            if !stage.classes().contains(&class.as_str()) {
                return Err(Error::Input {
                    what: format!("{} folder {}", stage.description(), dir.display()),
                    detail: format!(
                        "is a {class:?} pipeline (model_index.json); the {} needs a diffusers {} \
                         folder",
                        stage.description(),
                        stage.class_name()
                    ),
                });
            }
        }
        Ok(PipelineFolder {
            dir: dir.to_path_buf(),
            stage,
        })
    }

    /// Open `dir` as a super-resolution stage of either kind: IF stage II or the x4 upscaler,
    /// told apart by `model_index.json` (without one: a folder with `vae/` and
    /// `low_res_scheduler/` is an upscaler).
    pub fn open_super_resolution(dir: &Path) -> Result<PipelineFolder> {
        let wanted = "IFSuperResolutionPipeline or StableDiffusionUpscalePipeline";
        let stage = match pipeline_class(dir, wanted)? {
            Some(class) if IF_SR_CLASSES.contains(&class.as_str()) => Stage::Two,
            Some(class) if UPSCALER_CLASSES.contains(&class.as_str()) => Stage::Upscaler,
            Some(class) => {
                return Err(Error::Input {
                    what: format!("super-resolution folder {}", dir.display()),
                    detail: format!(
                        "is a {class:?} pipeline (model_index.json); a super-resolution stage \
                         needs a diffusers {wanted} folder"
                    ),
                })
            }
            None if dir.join("vae").is_dir() && dir.join("low_res_scheduler").is_dir() => {
                Stage::Upscaler
            }
            None => Stage::Two,
        };
        Ok(PipelineFolder {
            dir: dir.to_path_buf(),
            stage,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The component subfolder `name` (`unet`, `text_encoder`, ...), which must exist.
    pub fn component(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(Error::NotFound {
                path,
                holds: format!(
                    "the {} pipeline folder {} has no `{name}/` component (it holds: {})",
                    self.stage.description(),
                    self.dir.display(),
                    iterinv_models::weights::list_folder(&self.dir)
                ),
            })
        }
    }

    /// The scheduler in the component `name` (`scheduler`, `image_noising_scheduler`,
    /// `low_res_scheduler`): its
    /// config, and its kind from the config's `_class_name` unless `kind` overrides it.
    pub fn scheduler(&self, name: &str, kind: Option<SchedulerKind>) -> Result<Scheduler> {
        let path = self.component(name)?.join("scheduler_config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let in_file = |e: Error| Error::InFile {
            path: path.clone(),
            source: Box::new(e),
        };
        let config = SchedulerConfig::from_json_str(&text).map_err(|e| in_file(e.into()))?;
        let kind = match kind {
            Some(k) => k,
            None => {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                match value["_class_name"].as_str() {
                    Some("DDPMScheduler") | None => SchedulerKind::Ddpm,
                    Some("DDIMScheduler") => SchedulerKind::Ddim,
                    Some(other) => {
                        return Err(in_file(Error::Config {
                            field: "_class_name".into(),
                            value: format!("{other:?}"),
                            detail: "iterinv runs DDPMScheduler and DDIMScheduler".into(),
                        }))
                    }
                }
            }
        };
        Scheduler::new(kind, config).map_err(|e| in_file(e.into()))
    }
}

/// The `_class_name` of `dir`'s `model_index.json`, if it has one; `dir` must be a folder
/// (`wanted` names what it should hold, for the error).
fn pipeline_class(dir: &Path, wanted: &str) -> Result<Option<String>> {
    if !dir.is_dir() {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
            holds: format!("give a diffusers {wanted} folder"),
        });
    }
    let index = dir.join("model_index.json");
    if !index.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
        path: index.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::ConfigParse {
        path: index.clone(),
        detail: e.to_string(),
    })?;
    Ok(Some(
        value["_class_name"].as_str().unwrap_or("").to_string(),
    ))
}
