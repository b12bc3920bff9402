//! Replaying an inversion: each stage's image regenerated from the artifacts alone, on the
//! models whose fingerprints the artifacts record.

use std::path::PathBuf;

use iterinv_models::{Error, Result, UNet};

use super::artifacts::{self, Artifacts, StageMeta};
use super::{
    inversion_scheduler, latent, open_stages, parse_method, stage1, stage2, Event, Progress,
    Stage1Method,
};
use crate::pipeline::folder::{PipelineFolder, Stage};
use crate::{Gpu, Tensor};

/// Pipeline folders that replace the ones recorded in the artifacts (e.g. after a move); each
/// must hold the same model (its fingerprint is checked).
#[derive(Clone, Debug, Default)]
pub struct FolderOverrides {
    pub stage1: Option<PathBuf>,
    pub stage2: Option<PathBuf>,
    pub stage3: Option<PathBuf>,
}

/// Regenerate each stage's image from the artifacts alone.
pub fn reconstruct(
    gpu: &Gpu,
    artifacts: &Artifacts,
    folders: &FolderOverrides,
    progress: Progress,
) -> Result<Vec<Tensor>> {
    let meta = &artifacts.meta;
    let dir1 = folders
        .stage1
        .clone()
        .unwrap_or_else(|| meta.stage1.folder.clone());
    let dir2 = meta
        .stage2
        .as_ref()
        .map(|m| folders.stage2.clone().unwrap_or_else(|| m.folder.clone()));
    let (folder1, folder2) = open_stages(&dir1, dir2.as_deref())?;
    check_fingerprint(&folder1, &meta.stage1)?;
    let variant = meta.variant.as_deref();
    let method1 = parse_method(&Stage1Method::ALL, &meta.stage1.method, Stage1Method::name)?;
    let cond = artifacts
        .tensor("text.cond", &[Some(1), None, None])?
        .upload(gpu)?;
    let uncond = artifacts
        .tensor(
            "text.uncond",
            cond.shape()
                .iter()
                .map(|&d| Some(d))
                .collect::<Vec<_>>()
                .as_slice(),
        )?
        .upload(gpu)?;

    let unet1 = UNet::load(gpu, &folder1.component("unet")?, variant)?;
    let s = meta.stage1.size;
    let sched1 = inversion_scheduler(&folder1, meta.stage1.steps, meta.stage1.thresholding)?;
    let x_t = artifacts
        .tensor("stage1.x_t", &[Some(1), Some(3), Some(s), Some(s)])?
        .upload(gpu)?;
    let nulls = match method1 {
        Stage1Method::Nti | Stage1Method::NtiP2p => {
            let (l, d) = (cond.dim(1), cond.dim(2));
            let all = artifacts
                .tensor("stage1.nulls", &[Some(meta.stage1.steps), Some(l), Some(d)])?
                .upload(gpu)?;
            Some(all.split(0, &vec![1; meta.stage1.steps])?)
        }
        _ => None,
    };
    (progress)(&Event {
        stage: Stage::One,
        ..Event::phase("reconstruction", 0)
    })?;
    let latents = stage1::Stage1Latents { x_t, nulls };
    let rec1 = stage1::reconstruct(
        &unet1,
        &sched1,
        &latents,
        &cond,
        &uncond,
        method1,
        meta.stage1.guidance,
    )?;
    drop((unet1, latents));
    gpu.trim_pool();
    let mut images = vec![rec1.clone()];

    if let (Some(folder2), Some(m2)) = (&folder2, &meta.stage2) {
        check_fingerprint(folder2, m2)?;
        let model = stage2::Stage2Model::load(gpu, folder2, m2.steps, m2.thresholding, variant)?;
        let s = m2.size;
        let shape = [Some(1), Some(3), Some(s), Some(s)];
        let x_t = artifacts.tensor("stage2.x_t", &shape)?.upload(gpu)?;
        let noise = artifacts
            .tensor("stage2.condition_noise", &shape)?
            .upload(gpu)?;
        let level = m2.noise_level.unwrap_or(250);
        (progress)(&Event {
            stage: Stage::Two,
            ..Event::phase("reconstruction", 0)
        })?;
        let condition = model.condition(&rec1, &noise, level)?;
        images.push(stage2::reconstruct(
            model.denoising(),
            &condition,
            &x_t,
            &cond,
        )?);
        drop(model);
        gpu.trim_pool();
    }

    if let Some(m3) = &meta.stage3 {
        let dir3 = folders.stage3.clone().unwrap_or_else(|| m3.folder.clone());
        let folder3 = PipelineFolder::open(&dir3, Stage::Upscaler)?;
        check_fingerprint(&folder3, m3)?;
        let model = latent::LatentModel::load(gpu, &folder3, m3.steps, variant)?;
        let low_res = images.last().expect("stage I ran").clone();
        let (h, w) = (low_res.dim(2), low_res.dim(3));
        let c = model.vae.config().latent_channels;
        let x_t = artifacts
            .tensor("stage3.x_t", &[Some(1), Some(c), Some(h), Some(w)])?
            .upload(gpu)?;
        let noise = artifacts
            .tensor(
                "stage3.condition_noise",
                &[Some(1), Some(3), Some(h), Some(w)],
            )?
            .upload(gpu)?;
        let text = artifacts
            .tensor("stage3.text.cond", &[Some(1), None, None])?
            .upload(gpu)?;
        (progress)(&Event {
            stage: Stage::Upscaler,
            ..Event::phase("reconstruction", 0)
        })?;
        let condition = model.condition(&low_res, &noise, m3.noise_level.unwrap_or(100))?;
        let regenerated = stage2::reconstruct(model.denoising(), &condition, &x_t, &text)?;
        images.push(model.decode(&regenerated)?);
        drop(model);
        gpu.trim_pool();
    }
    Ok(images)
}

fn check_fingerprint(folder: &PipelineFolder, recorded: &StageMeta) -> Result<()> {
    let found = artifacts::fingerprint(folder)?;
    if found != recorded.fingerprint {
        return Err(Error::Input {
            what: format!("pipeline folder {}", folder.dir().display()),
            detail: format!(
                "holds another model than the one these artifacts were made with ({}: fingerprint {}, found {found}); \
                 give the folder the inversion used (--stage1 / --stage2)",
                recorded.folder.display(),
                recorded.fingerprint
            ),
        });
    }
    Ok(())
}
