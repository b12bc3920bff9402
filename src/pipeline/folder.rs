//! A diffusers pipeline folder (`model_index.json` and one subfolder per component), as IF and
//! Stable Diffusion ship them: `IFPipeline` (stage I: unet/, scheduler/, text_encoder/,
//! tokenizer/), `IFSuperResolutionPipeline` (stage II: unet/, scheduler/,
//! image_noising_scheduler/) and `StableDiffusionUpscalePipeline` (the x4 upscaler: unet/, vae/,
//! text_encoder/, tokenizer/, scheduler/, low_res_scheduler/).

use std::path::{Path, PathBuf};

use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind};
use iterinv_models::{Error, Result};

/// Which cascade stage a folder is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    One,
    Two,
    /// The Stable Diffusion x4 upscaler (a latent super-resolution stage).
    Upscaler,
}

impl Stage {
    /// The diffusers pipeline class of this stage.
    pub fn class_name(self) -> &'static str {
        match self {
            Stage::One => "IFPipeline",
            Stage::Two => "IFSuperResolutionPipeline",
            Stage::Upscaler => "StableDiffusionUpscalePipeline",
        }
    }

    /// The prefix of this stage's noise names (`stage1_initial`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Stage::One => "stage1",
            Stage::Two => "stage2",
            Stage::Upscaler => "upscaler",
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
        if !dir.is_dir() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
                holds: format!(
                    "give the {} folder (a diffusers {} folder)",
                    stage.name(),
                    stage.class_name()
                ),
            });
        }
        let index = dir.join("model_index.json");
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
                path: index.clone(),
                source,
            })?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::ConfigParse {
                    path: index.clone(),
                    detail: e.to_string(),
                })?;
            let class = value["_class_name"].as_str().unwrap_or("");
            let accepted: &[&str] = match stage {
                Stage::One => &["IFPipeline", "IFImg2ImgPipeline", "IFInpaintingPipeline"],
                Stage::Two => &[
                    "IFSuperResolutionPipeline",
                    "IFImg2ImgSuperResolutionPipeline",
                    "IFInpaintingSuperResolutionPipeline",
                ],
                Stage::Upscaler => &["StableDiffusionUpscalePipeline"],
            };
            if !accepted.contains(&class) {
                return Err(Error::Input {
                    what: format!("{} folder {}", stage.name(), dir.display()),
                    detail: format!(
                        "is a {class:?} pipeline (model_index.json); {} needs a diffusers {} folder",
                        stage.name(),
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
                    self.stage.name(),
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
