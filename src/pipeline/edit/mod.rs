//! Editing a real photo through its inversion: DiffEdit at stage I (`diffedit.rs`), then every
//! super-resolution stage regenerated from its saved inverted x_T, conditioned on the edited
//! image below it and the edit prompt (the IterInv paper's `end2end_diffedit.py`: its IF stage II
//! takes the edit prompt's T5 embedding, its upscaler the edit prompt, both at guidance 1 with
//! the inversion's condition noise).

pub mod diffedit;

use std::path::{Path, PathBuf};

use iterinv_models::{Error, Result, UNet};
use serde::Serialize;

pub use diffedit::{diffedit, DiffEditOutput, DiffEditSettings, EditTexts};

use super::cascade::encode_texts;
use super::folder::Stage;
use super::inversion::{
    inversion_scheduler, open_folders, replay_super_resolution, Artifacts, Event, FolderOverrides,
    Progress,
};
use super::noise::SeededNoise;
use crate::image_io::{load_for_stage, resize_for_stage, Fit};
use crate::{Gpu, Tensor};

/// What an edit needs besides the inversion.
#[derive(Clone, Debug, Serialize)]
pub struct EditOptions {
    /// The text of the edited photo ("a photo of a dog"); the inversion's prompt is the source.
    pub edit_prompt: String,
    pub settings: DiffEditSettings,
    /// Seed of the mask's noise maps (`diffedit_mask_{k}` draws).
    pub seed: u64,
    /// The photo, if not where the inversion found it ([`edit_texture`] takes it from a texture).
    pub image: Option<PathBuf>,
    /// Pipeline folders, if not where the inversion found them.
    #[serde(skip)]
    pub folders: FolderOverrides,
}

impl EditOptions {
    pub fn new(edit_prompt: &str) -> EditOptions {
        EditOptions {
            edit_prompt: edit_prompt.into(),
            settings: DiffEditSettings::default(),
            seed: 0,
            image: None,
            folders: FolderOverrides::default(),
        }
    }
}

/// An edit's results.
pub struct EditOutput {
    /// DiffEdit's mask at stage I's size, `[1, 1, S, S]` (1: edited).
    pub mask: Tensor,
    pub mask_map: Tensor,
    /// The photo as stage I sees it.
    pub input: Tensor,
    /// The edited image of every stage, stage I first.
    pub images: Vec<Tensor>,
}

/// Edit the photo of `artifacts` (an inversion) into `opts.edit_prompt`.
pub fn edit(
    gpu: &Gpu,
    artifacts: &Artifacts,
    opts: &EditOptions,
    progress: Progress,
) -> Result<EditOutput> {
    let path = opts
        .image
        .clone()
        .unwrap_or_else(|| artifacts.meta.image.clone());
    edit_photo(gpu, artifacts, EditPhoto::File(&path), opts, progress)
}

/// [`edit`] of the photo in a texture of the host application (`opts.image` is not read), on
/// the device `gpu` shares with it: rgba8unorm, rgba8unorm-srgb, rgba16float or rgba32float with
/// COPY_SRC usage, resized to stage I on the GPU as a file is (see [`crate::texture`]). The
/// edited images go back to textures with [`crate::texture::write_texture`].
pub fn edit_texture(
    gpu: &Gpu,
    artifacts: &Artifacts,
    texture: &wgpu::Texture,
    opts: &EditOptions,
    progress: Progress,
) -> Result<EditOutput> {
    edit_photo(gpu, artifacts, EditPhoto::Texture(texture), opts, progress)
}

/// Where an edit's photo is.
enum EditPhoto<'a> {
    File(&'a Path),
    Texture(&'a wgpu::Texture),
}

fn edit_photo(
    gpu: &Gpu,
    artifacts: &Artifacts,
    photo: EditPhoto,
    opts: &EditOptions,
    progress: Progress,
) -> Result<EditOutput> {
    opts.settings.check()?;
    if opts.edit_prompt.trim().is_empty() {
        return Err(Error::Input {
            what: "edit prompt".into(),
            detail: "is empty; say what the photo should become".into(),
        });
    }
    let meta = &artifacts.meta;
    artifacts.check_precision(gpu)?;
    let (folder1, upper) = open_folders(artifacts, &opts.folders)?;
    let fit = match meta.fit.as_str() {
        "stretch" => Fit::Stretch,
        _ => Fit::CropCenter,
    };
    let input = match photo {
        EditPhoto::File(path) => load_for_stage(gpu, path, meta.stage1.size, fit)?,
        EditPhoto::Texture(t) => resize_for_stage(
            &crate::texture::texture_to_rows(gpu, t)?,
            "in the texture",
            meta.stage1.size,
            fit,
        )?,
    };
    let variant = meta.variant.as_deref();
    let t5 = encode_texts(
        gpu,
        &folder1,
        &[&meta.prompt, &opts.edit_prompt, ""],
        meta.clean_caption,
        variant,
    )?;
    let texts = EditTexts {
        source: &t5[0],
        edit: &t5[1],
        negative: &t5[2],
    };

    (progress)(&Event::phase("DiffEdit", 0))?;
    let unet = UNet::load(gpu, &folder1.component("unet")?, variant)?;
    // The stage's own DDIM with IF's thresholding, as the paper's DiffEdit pipeline samples.
    let scheduler = inversion_scheduler(&folder1, opts.settings.steps, true)?;
    let mut noise = SeededNoise::new(gpu, opts.seed);
    let out = diffedit(
        gpu,
        &unet,
        &scheduler,
        &input,
        &texts,
        &opts.settings,
        &mut noise,
    )?;
    drop(unet);
    gpu.trim_pool();

    // IF stage II takes the edit prompt's T5 embedding; an upscaler, its own CLIP encoding.
    let mut clip = Vec::new();
    for folder in &upper {
        clip.push(match folder.stage() {
            Stage::Upscaler => Some(
                super::upscaler::encode_text(gpu, folder, &opts.edit_prompt, "", variant)?.cond,
            ),
            _ => None,
        });
    }
    let mut stage_text = |number: usize, _: Stage| -> Result<Tensor> {
        Ok(clip[number - 2]
            .clone()
            .unwrap_or_else(|| texts.edit.clone()))
    };
    let upper_images = replay_super_resolution(
        gpu,
        artifacts,
        &upper,
        &out.edited,
        &mut stage_text,
        progress,
    )?;
    Ok(EditOutput {
        mask: out.mask,
        mask_map: out.mask_map,
        input,
        images: std::iter::once(out.edited).chain(upper_images).collect(),
    })
}
