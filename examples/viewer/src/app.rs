//! The viewer's state, apart from its window: a photo, a prompt, at most one running iterinv
//! session stepped once a frame, and the textures the frame shows. The window (main.rs) and the
//! headless test both drive it through [`Viewer::frame`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use iterinv::image_io::{load_rgb, stage_tensor, Fit};
use iterinv::pipeline::edit::{edit, EditOptions, EditOutput};
use iterinv::pipeline::inversion::{
    Artifacts, FolderOverrides, InvertOptions, InvertOutput, SrStage,
};
use iterinv::session::{self, Session, Slice, StepOutcome, StepRequest};
use iterinv::texture::{create_texture, write_texture};
use iterinv::{Gpu, Tensor};

use crate::draw::Draw;

/// The largest side the photo panel's texture is made at (the shader scales it to the panel).
const PHOTO_SIDE: usize = 512;

/// How the viewer inverts.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Stage I's folder and the super-resolution stages' (default: the built-in cascade).
    pub stage1: PathBuf,
    pub super_resolution: Vec<PathBuf>,
    /// DDIM steps of every stage (the reference: 50).
    pub steps: usize,
    /// NTI's Adam steps and IterInv's updates per timestep (None: the methods' own).
    pub inner_steps: Option<usize>,
}

impl Settings {
    /// The built-in cascade with the library's defaults.
    pub fn embedded() -> Result<Settings> {
        let (stage1, super_resolution) = iterinv::embedded::stages()?;
        Ok(Settings {
            stage1,
            super_resolution,
            steps: 50,
            inner_steps: None,
        })
    }

    fn invert_options(&self, prompt: &str) -> Result<InvertOptions> {
        let mut opts = InvertOptions {
            prompt: prompt.into(),
            stage1: self.stage1.clone(),
            steps: self.steps,
            ..InvertOptions::default()
        };
        opts.stage1_settings.inner_steps = self.inner_steps;
        for folder in &self.super_resolution {
            let mut stage = SrStage::with_defaults(folder)?;
            if let Some(k) = self.inner_steps {
                stage.settings.inner_steps = k;
            }
            opts.super_resolution.push(stage);
        }
        Ok(opts)
    }
}

/// The work in flight.
enum Job {
    Invert(Session<InvertOutput>),
    Reconstruct(Session<Vec<Tensor>>),
    Edit(Session<EditOutput>),
}

/// The viewer: see the module docs.
pub struct Viewer {
    gpu: Gpu,
    draw: Draw,
    settings: Settings,
    photo: Option<(PathBuf, wgpu::Texture)>,
    /// What the user types: the inversion's prompt, then an edit's.
    pub prompt: String,
    job: Option<Job>,
    /// The last finished inversion, for reconstruction and editing.
    inversion: Option<Artifacts>,
    /// The image on the right (a preview while a job runs, then its result), and its tensor.
    right: Option<(wgpu::Texture, Tensor)>,
    status: String,
}

impl Viewer {
    /// A viewer on the app's device (iterinv adopts it: both record into `queue`), drawing
    /// into targets of `format`.
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        adapter: Option<wgpu::AdapterInfo>,
        format: wgpu::TextureFormat,
        settings: Settings,
    ) -> Viewer {
        let gpu = Gpu::from_device(device.clone(), queue.clone(), adapter, Default::default());
        Viewer {
            draw: Draw::new(device, format),
            gpu,
            settings,
            photo: None,
            prompt: String::new(),
            job: None,
            inversion: None,
            right: None,
            status: "drop a photo on the window".into(),
        }
    }

    /// Show the photo at `path` (an inversion inverts it).
    pub fn open(&mut self, path: &Path) -> Result<()> {
        self.cancel();
        let rgb = load_rgb(path)?;
        let side = rgb.width.min(rgb.height).min(PHOTO_SIDE);
        let name = path.display().to_string();
        let image = stage_tensor(&self.gpu, &rgb, &name, side, Fit::CropCenter)?;
        let texture = create_texture(
            &image,
            wgpu::TextureFormat::Rgba8Unorm,
            wgpu::TextureUsages::TEXTURE_BINDING,
        )?;
        self.photo = Some((path.to_path_buf(), texture));
        (self.inversion, self.right) = (None, None);
        self.status = format!("{}: type a prompt, Enter inverts", name);
        Ok(())
    }

    /// Invert the photo under the typed prompt.
    pub fn invert(&mut self) -> Result<()> {
        let Some((path, _)) = &self.photo else {
            anyhow::bail!("open a photo first");
        };
        let opts = self.settings.invert_options(&self.prompt)?;
        let rgb = load_rgb(path)?;
        self.job = Some(Job::Invert(session::inversion(
            &self.gpu,
            rgb,
            path.clone(),
            opts,
        )));
        self.status = "inverting".into();
        Ok(())
    }

    /// Regenerate the last inversion's images from its artifacts alone.
    pub fn reconstruct(&mut self) -> Result<()> {
        let artifacts = self.inversion.clone().context("invert a photo first")?;
        self.job = Some(Job::Reconstruct(session::reconstruction(
            &self.gpu,
            artifacts,
            FolderOverrides::default(),
        )));
        self.status = "reconstructing".into();
        Ok(())
    }

    /// Edit the last inversion into the typed prompt (DiffEdit), as a session of the library's
    /// one-call `edit`.
    pub fn edit(&mut self) -> Result<()> {
        let artifacts = self.inversion.clone().context("invert a photo first")?;
        let opts = EditOptions::new(&self.prompt);
        let gpu = self.gpu.clone();
        self.job = Some(Job::Edit(Session::new(&self.gpu, move |progress| {
            edit(&gpu, &artifacts, &opts, progress)
        })));
        self.status = "editing".into();
        Ok(())
    }

    /// Stop the running job, if any; nothing of it is kept.
    pub fn cancel(&mut self) {
        if self.job.take().is_some() {
            self.status = "cancelled".into();
        }
    }

    /// Whether a job runs (the window then redraws continuously).
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Where things stand: the stage, phase, step and loss of a running job, or its outcome.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// The image on the right, as iterinv computed it.
    pub fn shown(&self) -> Option<&Tensor> {
        self.right.as_ref().map(|(_, t)| t)
    }

    /// One frame: step the running job by one event (one UNet pass at most, forward and back)
    /// with a preview, show it, and draw both panels into `target` (`width`×`height`).
    /// An error of the job ends it and shows in the status line.
    pub fn frame(&mut self, target: &wgpu::TextureView, width: u32, height: u32) {
        if let Err(e) = self.step() {
            self.job = None;
            self.status = format!("error: {e:#}");
        }
        let device = self.gpu.device();
        let side = (width / 2).min(height);
        let left = self.photo.as_ref().map(|(_, t)| t);
        let right = self.right.as_ref().map(|(t, _)| t);
        self.draw
            .frame(device, self.gpu.queue(), target, side, left, right);
    }

    fn step(&mut self) -> Result<()> {
        let request = StepRequest {
            slice: Slice::Event,
            preview: true,
        };
        let outcome = match &mut self.job {
            None => return Ok(()),
            Some(Job::Invert(s)) => s.step(request)?,
            Some(Job::Reconstruct(s)) => s.step(request)?,
            Some(Job::Edit(s)) => s.step(request)?,
        };
        match outcome {
            StepOutcome::Paused { event, preview } => {
                let loss = event
                    .loss
                    .map_or(String::new(), |l| format!(", loss {l:.3e}"));
                let inner = event
                    .inner
                    .map_or(String::new(), |k| format!(" (inner {k})"));
                self.status = format!(
                    "stage {} {}: {}/{}{inner}{loss}",
                    event.stage, event.phase, event.step, event.total
                );
                if let Some(p) = preview {
                    self.show(p)?;
                }
            }
            StepOutcome::Finished => self.finish()?,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self.job.take() {
            Some(Job::Invert(s)) => {
                let out = s.finish()?;
                let last = out.stages.last().context("no stage ran")?;
                let psnr: Vec<String> = out
                    .stages
                    .iter()
                    .map(|s| match s.report.psnr {
                        Some(db) => format!("{db:.1} dB"),
                        None => "exact".into(),
                    })
                    .collect();
                self.show(last.reconstruction.clone())?;
                self.inversion = Some(out.artifacts);
                self.status = format!(
                    "inverted: PSNR {}; Ctrl+R reconstructs, type an edit then Ctrl+E",
                    psnr.join(", ")
                );
            }
            Some(Job::Reconstruct(s)) => {
                let images = s.finish()?;
                self.show(images.last().context("no stage ran")?.clone())?;
                self.status = "reconstructed from the artifacts alone".into();
            }
            Some(Job::Edit(s)) => {
                let out = s.finish()?;
                self.show(out.images.last().context("no stage ran")?.clone())?;
                self.status = "edited".into();
            }
            None => {}
        }
        Ok(())
    }

    /// Put `image` (`[1, 3, H, W]` in [−1, 1]) on the right, reusing the texture while the size
    /// stays.
    fn show(&mut self, image: Tensor) -> Result<()> {
        let (h, w) = (image.dim(2) as u32, image.dim(3) as u32);
        match &self.right {
            Some((texture, _)) if (texture.height(), texture.width()) == (h, w) => {
                write_texture(&image, texture)?;
                let texture = texture.clone();
                self.right = Some((texture, image));
            }
            _ => {
                let texture = create_texture(
                    &image,
                    wgpu::TextureFormat::Rgba8Unorm,
                    wgpu::TextureUsages::TEXTURE_BINDING,
                )?;
                self.right = Some((texture, image));
            }
        }
        Ok(())
    }
}
