//! Replaying an inversion: each stage's image regenerated from the artifacts alone, on the
//! models whose fingerprints the artifacts record.

use std::path::PathBuf;

use iterinv_models::{Error, Result, UNet};

use super::artifacts::{self, Artifacts, HostTensor, StageMeta};
use super::{
    inversion_scheduler, latent, stage1, super_resolution, Event, Progress, Stage1Method, StageRun,
};
use crate::pipeline::folder::{PipelineFolder, Stage};
use crate::{Gpu, Tensor};

/// Pipeline folders that replace the ones recorded in the artifacts (e.g. after a move); each
/// must hold the same model (its fingerprint is checked).
#[derive(Clone, Debug, Default)]
pub struct FolderOverrides {
    pub stage1: Option<PathBuf>,
    /// By position: the first entry replaces stage 2's folder, the next stage 3's; `None` keeps
    /// the recorded one.
    pub super_resolution: Vec<Option<PathBuf>>,
}

/// The artifacts' pipeline folders (or their overrides), opened and checked against the
/// recorded fingerprints: stage I's and the super-resolution stages'.
pub fn open_folders(
    artifacts: &Artifacts,
    folders: &FolderOverrides,
) -> Result<(PipelineFolder, Vec<PipelineFolder>)> {
    let meta = &artifacts.meta;
    let given = folders.super_resolution.iter().rposition(Option::is_some);
    if let Some(last) = given.filter(|&i| i >= meta.super_resolution.len()) {
        return Err(Error::Input {
            what: format!("the folder for stage {}", last + 2),
            detail: format!(
                "was given, but the inversion has {} stages",
                meta.super_resolution.len() + 1
            ),
        });
    }
    let dir1 = folders
        .stage1
        .clone()
        .unwrap_or_else(|| meta.stage1.folder.clone());
    let folder1 = PipelineFolder::open(&dir1, Stage::One)?;
    check_fingerprint(&folder1, &meta.stage1)?;
    let mut upper = Vec::new();
    for (i, m) in meta.super_resolution.iter().enumerate() {
        let dir = match folders.super_resolution.get(i) {
            Some(Some(dir)) => dir.clone(),
            _ => m.folder.clone(),
        };
        let folder = PipelineFolder::open(&dir, m.kind)?;
        check_fingerprint(&folder, m)?;
        upper.push(folder);
    }
    Ok((folder1, upper))
}

/// Regenerate each stage's image from the artifacts alone: `[1, 3, H, W]` in [−1, 1] each, stage
/// I first, on the GPU (into a host application's texture with
/// [`crate::texture::write_texture`]).
pub fn reconstruct(
    gpu: &Gpu,
    artifacts: &Artifacts,
    folders: &FolderOverrides,
    progress: Progress,
) -> Result<Vec<Tensor>> {
    let meta = &artifacts.meta;
    artifacts.check_precision(gpu)?;
    // Open and check every folder first: a moved or replaced model fails before any work.
    let (folder1, upper) = open_folders(artifacts, folders)?;
    let variant = meta.variant.as_deref();
    let method1 = Stage1Method::from_name(&meta.stage1.method)?;
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
    let latents = stage1::Stage1Latents { x_t, nulls };
    let mut run = StageRun::new(1, &mut *progress);
    run.event(Event::phase("reconstruction", meta.stage1.steps))?;
    let rec1 = stage1::reconstruct(
        &unet1,
        &sched1,
        &latents,
        &cond,
        &uncond,
        method1,
        meta.stage1.guidance,
        &mut *run.on_step(),
    )?;
    drop(run);
    drop((unet1, latents));
    gpu.trim_pool();
    let mut text = |number: usize, kind: Stage| -> Result<Tensor> {
        match kind {
            // The upscaler's own CLIP text, stored by the inversion.
            Stage::Upscaler => Ok(artifacts
                .tensor(&format!("stage{number}.text.cond"), &[Some(1), None, None])?
                .upload(gpu)?),
            _ => Ok(cond.clone()),
        }
    };
    let upper_images = replay_super_resolution(gpu, artifacts, &upper, &rec1, &mut text, progress)?;
    Ok(std::iter::once(rec1).chain(upper_images).collect())
}

/// The prompt's embedding a super-resolution stage runs with: (stage number, kind) → `[1, L, D]`
/// (IF's T5 for IF stage II, the upscaler's CLIP for the upscaler).
pub type StageText<'a> = &'a mut dyn FnMut(usize, Stage) -> Result<Tensor>;

/// Regenerate every super-resolution stage from its saved x_T and condition noise, each
/// conditioned on the image before it (the first on `first`, stage I's), with `text`'s
/// embeddings, guidance 1 as inverted. Replay gives them stage I's reconstruction and the
/// inversion's texts; an edit, the edited image and the edit prompt's.
pub fn replay_super_resolution(
    gpu: &Gpu,
    artifacts: &Artifacts,
    folders: &[PipelineFolder],
    first: &Tensor,
    text: StageText,
    progress: Progress,
) -> Result<Vec<Tensor>> {
    let meta = &artifacts.meta;
    let variant = meta.variant.as_deref();
    let mut images: Vec<Tensor> = Vec::new();
    for (i, (folder, m)) in folders.iter().zip(&meta.super_resolution).enumerate() {
        let number = i + 2;
        let low_res = images.last().unwrap_or(first).clone();
        let tensor = |field: &str, shape: &[Option<usize>]| -> Result<&HostTensor> {
            artifacts.tensor(&format!("stage{number}.{field}"), shape)
        };
        let mut run = StageRun::new(number, &mut *progress);
        run.event(Event::phase("reconstruction", m.steps))?;
        let Some(level) = m.noise_level else {
            return Err(Error::Input {
                what: format!("artifacts' stage {number}"),
                detail: "has no `noise_level`; every super-resolution stage records one".into(),
            });
        };
        let cond = text(number, m.kind)?;
        let image = match m.kind {
            Stage::Upscaler => {
                let model = latent::LatentModel::load(gpu, folder, m.steps, variant)?;
                let (h, w) = (low_res.dim(2), low_res.dim(3));
                let c = model.vae.config().latent_channels;
                let x_t = tensor("x_t", &[Some(1), Some(c), Some(h), Some(w)])?.upload(gpu)?;
                let noise = tensor("condition_noise", &[Some(1), Some(3), Some(h), Some(w)])?
                    .upload(gpu)?;
                let condition = model.condition(&low_res, &noise, level)?;
                run.decode_estimates_with(model.decoder());
                let regenerated = super_resolution::reconstruct(
                    model.denoising(),
                    &condition,
                    &x_t,
                    &cond,
                    &mut *run.on_step(),
                )?;
                model.decode(&regenerated)?
            }
            _ => {
                let model = super_resolution::IfSrModel::load(
                    gpu,
                    folder,
                    m.steps,
                    m.thresholding,
                    variant,
                )?;
                let shape = [Some(1), Some(3), Some(m.size), Some(m.size)];
                let x_t = tensor("x_t", &shape)?.upload(gpu)?;
                let noise = tensor("condition_noise", &shape)?.upload(gpu)?;
                let condition = model.condition(&low_res, &noise, level)?;
                super_resolution::reconstruct(
                    model.denoising(),
                    &condition,
                    &x_t,
                    &cond,
                    &mut *run.on_step(),
                )?
            }
        };
        gpu.trim_pool();
        images.push(image);
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
                 give the folder the inversion used (--stage1, --stage2, ...)",
                recorded.folder.display(),
                recorded.fingerprint
            ),
        });
    }
    Ok(())
}
