//! An inversion: what makes the context's cascade regenerate a photo (iterinv's artifacts), and
//! each stage's image — made by `iterinv_invert`, saved and loaded as a folder, replayed by
//! `iterinv_reconstruct`.

use std::ffi::{c_char, c_void};
use std::path::Path;

use iterinv::engine::sched::MAX_TRAIN_TIMESTEPS;
use iterinv::image_io::{to_rgb8, Rgb8};
use iterinv::pipeline::inversion::{
    self, Artifacts, FolderOverrides, InvertOptions, SrMethod, SrSettings, Stage1Method,
};

use crate::boundary::{
    arg, arg_mut, give, guard, optional_utf8, out_handle, take_back, utf8, Failure,
};
use crate::context::IterinvContext;
use crate::image::{give_image, IterinvImage};
use crate::progress::{Callback, IterinvProgress};
use crate::IterinvStatus;

/// The settings of `iterinv_invert`. Fill one with `iterinv_invert_options_default`, then
/// change what you need; NULL in place of the whole struct means the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IterinvInvertOptions {
    /// DDIM steps of every stage, from 1 to the schedulers' training timesteps (IF's: 1000);
    /// default 50.
    pub steps: u32,
    /// How many of the context's stages to invert, from stage I (0, the default: all).
    pub stages: u32,
    /// Stage I's method: "nti" (null-text inversion, the default), "npi", "ddim" or "nti-p2p";
    /// NULL: the default.
    pub stage1_method: *const c_char,
    /// The super-resolution stages' method: "iterinv" (the default), "iterinv-faithful",
    /// "fixed-point" or "ddim"; NULL: the default.
    pub sr_method: *const c_char,
    /// Stage I's inner steps a timestep (NTI's Adam steps); 0: the method's own (NTI 51).
    pub stage1_inner_steps: u32,
    /// Fixed-point passes a timestep ("fixed-point"), or of IterInv's warm start (default 10).
    pub passes: u32,
    /// Stage I's classifier-free guidance, of the reconstruction and NTI (default 3).
    pub guidance: f32,
    /// Seed of the super-resolution stages' condition noise (default 0).
    pub seed: u64,
}

impl Default for IterinvInvertOptions {
    /// The library's defaults: the CLI's `iterinv invert` without flags.
    fn default() -> Self {
        let opts = InvertOptions::default();
        IterinvInvertOptions {
            steps: opts.steps as u32,
            stages: 0,
            stage1_method: std::ptr::null(),
            sr_method: std::ptr::null(),
            stage1_inner_steps: 0,
            passes: SrSettings::default().passes as u32,
            guidance: opts.stage1_settings.guidance,
            seed: opts.seed,
        }
    }
}

/// Fill `options` with the defaults (those of the CLI's `iterinv invert`: NTI at stage I,
/// IterInv at the super-resolution stages, 50 steps). NULL is ignored.
///
/// # Safety
/// `options` must be NULL or point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn iterinv_invert_options_default(options: *mut IterinvInvertOptions) {
    if let Some(o) = unsafe { options.as_mut() } {
        *o = IterinvInvertOptions::default();
    }
}

impl IterinvInvertOptions {
    /// The library's options for `prompt` on `context`'s cascade.
    ///
    /// # Safety
    /// The method strings must be NULL or NUL-terminated.
    unsafe fn library(
        &self,
        context: &IterinvContext,
        prompt: &str,
    ) -> Result<InvertOptions, Failure> {
        if !(1..=MAX_TRAIN_TIMESTEPS).contains(&(self.steps as usize)) {
            return Err(Failure::invalid(format!(
                "`steps` is {}; it must be between 1 and {MAX_TRAIN_TIMESTEPS}",
                self.steps
            )));
        }
        if !self.guidance.is_finite() {
            return Err(Failure::invalid(format!(
                "`guidance` is {}; it must be a finite number",
                self.guidance
            )));
        }
        let available = 1 + context.upper.len();
        let stages = match self.stages as usize {
            0 => available,
            n if n <= available => n,
            n => {
                return Err(Failure::invalid(format!(
                    "`stages` is {n}; the context's cascade has {available}"
                )))
            }
        };
        let mut opts = InvertOptions {
            prompt: prompt.to_string(),
            stage1: context.stage1.clone(),
            super_resolution: context.upper[..stages - 1].to_vec(),
            variant: context.variant.clone(),
            steps: self.steps as usize,
            seed: self.seed,
            ..InvertOptions::default()
        };
        let s1 = &mut opts.stage1_settings;
        if let Some(name) = unsafe { optional_utf8(self.stage1_method, "stage1_method") }? {
            s1.method = Stage1Method::from_name(name)?;
        }
        s1.guidance = self.guidance;
        s1.inner_steps = Some(self.stage1_inner_steps as usize).filter(|&k| k > 0);
        let sr = unsafe { optional_utf8(self.sr_method, "sr_method") }?
            .map(SrMethod::from_name)
            .transpose()?;
        for stage in &mut opts.super_resolution {
            stage.settings.method = sr.unwrap_or(stage.settings.method);
            stage.settings.passes = self.passes as usize;
        }
        Ok(opts)
    }
}

/// An inversion (opaque): the artifacts that regenerate the photo through the cascade, and the
/// images of its stages once made. Made by `iterinv_invert` or `iterinv_inversion_load`, freed
/// by `iterinv_inversion_free`; use it from one thread at a time.
pub struct IterinvInversion {
    artifacts: Artifacts,
    /// Each stage's image: `iterinv_invert`'s reconstructions, or `iterinv_reconstruct`'s;
    /// empty after a load.
    images: Vec<Rgb8>,
}

fn images(tensors: &[&iterinv::Tensor]) -> Result<Vec<Rgb8>, Failure> {
    Ok(tensors
        .iter()
        .map(|t| to_rgb8(t, 0))
        .collect::<Result<_, _>>()?)
}

/// Invert `photo` (pixels in host memory, any size at least the cascade's largest stage on its
/// shorter side; centre-cropped to a square) described by `prompt` (UTF-8) through the
/// context's cascade. `options` may be NULL (the defaults); `progress` may be NULL. On success
/// `*out` is the inversion, holding each stage's reconstruction; on failure it is NULL.
///
/// # Safety
/// `context` and `photo` must be NULL or live; `photo`'s pixels must hold what it claims;
/// `prompt` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn iterinv_invert(
    context: *const IterinvContext,
    photo: *const IterinvImage,
    prompt: *const c_char,
    options: *const IterinvInvertOptions,
    progress: IterinvProgress,
    user: *mut c_void,
    out: *mut *mut IterinvInversion,
) -> IterinvStatus {
    guard(|| {
        let out = unsafe { out_handle(out) }?;
        let context = unsafe { arg(context, "context") }?;
        let rgb = unsafe { crate::image::photo(arg(photo, "photo")?, "photo") }?;
        let prompt = unsafe { utf8(prompt, "prompt") }?;
        let options = unsafe { options.as_ref() }.copied().unwrap_or_default();
        let opts = unsafe { options.library(context, prompt) }?;
        let callback = Callback {
            function: progress,
            user,
        };
        let origin = Path::new("<memory>");
        let result = inversion::invert_rgb(&context.gpu, &rgb, origin, &opts, &mut |e| {
            callback.report(e)
        })?;
        let stages: Vec<_> = result.stages.iter().map(|s| &s.reconstruction).collect();
        give(
            out,
            IterinvInversion {
                images: images(&stages)?,
                artifacts: result.artifacts,
            },
        );
        Ok(())
    })
}

/// Regenerate every stage's image of `inversion` from its artifacts alone, on the context's
/// models (their fingerprints must be the inversion's), replacing the images it holds; read
/// them with `iterinv_inversion_image`. The images equal `iterinv_invert`'s on the same device,
/// bit for bit. `progress` may be NULL.
///
/// # Safety
/// `context` and `inversion` must be NULL or live, and `inversion` not in use by another
/// thread.
#[no_mangle]
pub unsafe extern "C" fn iterinv_reconstruct(
    context: *const IterinvContext,
    inversion: *mut IterinvInversion,
    progress: IterinvProgress,
    user: *mut c_void,
) -> IterinvStatus {
    guard(|| {
        let context = unsafe { arg(context, "context") }?;
        let inversion = unsafe { arg_mut(inversion, "inversion") }?;
        let upper = inversion.artifacts.meta.super_resolution.len();
        // The context's folders, wherever the inversion was made; stages past the context's
        // keep the recorded ones.
        let folders = FolderOverrides {
            stage1: Some(context.stage1.clone()),
            super_resolution: context
                .upper
                .iter()
                .take(upper)
                .map(|s| Some(s.folder.clone()))
                .collect(),
        };
        let callback = Callback {
            function: progress,
            user,
        };
        let tensors =
            inversion::reconstruct(&context.gpu, &inversion.artifacts, &folders, &mut |e| {
                callback.report(e)
            })?;
        inversion.images = images(&tensors.iter().collect::<Vec<_>>())?;
        Ok(())
    })
}

/// The number of stages `inversion` holds (stage I and the super-resolution stages inverted);
/// 0 if it is NULL.
///
/// # Safety
/// `inversion` must be NULL or live.
#[no_mangle]
pub unsafe extern "C" fn iterinv_inversion_stages(inversion: *const IterinvInversion) -> usize {
    unsafe { inversion.as_ref() }.map_or(0, |i| 1 + i.artifacts.meta.super_resolution.len())
}

/// Copy stage `stage`'s image (from 1; the last stage is the largest) into `*out`, in `format`
/// (an `IterinvPixelFormat`) with rows packed; free it with `iterinv_image_free`. An inversion
/// just loaded holds no images until `iterinv_reconstruct`. On failure `*out` has no pixels.
///
/// # Safety
/// `inversion` must be NULL or live; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn iterinv_inversion_image(
    inversion: *const IterinvInversion,
    stage: usize,
    format: u32,
    out: *mut IterinvImage,
) -> IterinvStatus {
    guard(|| {
        let out = unsafe { arg_mut(out, "out") }?;
        *out = crate::image::empty();
        let inversion = unsafe { arg(inversion, "inversion") }?;
        let format = crate::image::format(format)?;
        if inversion.images.is_empty() {
            return Err(Failure::invalid(
                "the inversion holds no images yet (it was loaded): call iterinv_reconstruct first",
            ));
        }
        let n = inversion.images.len();
        let image = stage
            .checked_sub(1)
            .and_then(|i| inversion.images.get(i))
            .ok_or_else(|| {
                Failure::invalid(format!(
                    "`stage` is {stage}; the inversion has stages 1 to {n}"
                ))
            })?;
        give_image(image, format, out);
        Ok(())
    })
}

/// Save `inversion` into the folder `dir` (UTF-8; created): `inversion.safetensors` and
/// `inversion.json`, the files the CLI's `iterinv invert` writes (its `iterinv reconstruct DIR`
/// replays them). Each is written under a temporary name and renamed.
///
/// # Safety
/// `inversion` must be NULL or live; `dir` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn iterinv_inversion_save(
    inversion: *const IterinvInversion,
    dir: *const c_char,
) -> IterinvStatus {
    guard(|| {
        let inversion = unsafe { arg(inversion, "inversion") }?;
        let dir = unsafe { utf8(dir, "dir") }?;
        inversion.artifacts.save(Path::new(dir))?;
        Ok(())
    })
}

/// Load the inversion saved in the folder `dir` (UTF-8) by `iterinv_inversion_save` or the
/// CLI's `iterinv invert --out`. It holds no images until `iterinv_reconstruct`. On success
/// `*out` is the inversion; on failure it is NULL.
///
/// # Safety
/// `dir` must be NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn iterinv_inversion_load(
    dir: *const c_char,
    out: *mut *mut IterinvInversion,
) -> IterinvStatus {
    guard(|| {
        let out = unsafe { out_handle(out) }?;
        let dir = unsafe { utf8(dir, "dir") }?;
        let artifacts = Artifacts::load(Path::new(dir))?;
        give(
            out,
            IterinvInversion {
                artifacts,
                images: Vec::new(),
            },
        );
        Ok(())
    })
}

/// Free an inversion. NULL is ignored.
///
/// # Safety
/// `inversion` must be NULL or live, not in use by another thread, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn iterinv_inversion_free(inversion: *mut IterinvInversion) {
    unsafe { take_back(inversion) }
}
