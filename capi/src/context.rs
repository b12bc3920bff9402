//! The context: a GPU device of iterinv's own and the cascade's pipeline folders, checked once
//! when it is made.

use std::ffi::{c_char, CString};
use std::path::PathBuf;

use iterinv::pipeline::inversion::SrStage;
use iterinv::pipeline::{PipelineFolder, Stage};
use iterinv::{Gpu, GpuOptions};

use crate::boundary::{give, guard, optional_utf8, out_handle, take_back, utf8, Failure};
use crate::IterinvStatus;

/// A GPU device and a cascade (stage I, then its super-resolution stages). Made by
/// `iterinv_context_new` or `iterinv_context_new_builtin`, freed by `iterinv_context_free`. Its
/// functions may be called from several threads at once; each call runs on its caller's
/// thread, and the models are loaded for each call and freed when it returns.
pub struct IterinvContext {
    pub(crate) gpu: Gpu,
    pub(crate) stage1: PathBuf,
    /// The super-resolution stages, in order, each with its kind's default settings.
    pub(crate) upper: Vec<SrStage>,
    pub(crate) variant: Option<String>,
    device: CString,
}

impl IterinvContext {
    fn open(
        stage1: PathBuf,
        upper: &[PathBuf],
        variant: Option<String>,
    ) -> Result<IterinvContext, Failure> {
        // Check every folder before the device opens: a wrong path fails fast.
        PipelineFolder::open(&stage1, Stage::One)?;
        let upper = upper
            .iter()
            .map(|dir| SrStage::with_defaults(dir))
            .collect::<Result<Vec<_>, _>>()?;
        let gpu = Gpu::with_options(GpuOptions::default())?;
        let device = CString::new(iterinv::device_name(&gpu)).unwrap_or_default();
        Ok(IterinvContext {
            gpu,
            stage1,
            upper,
            variant,
            device,
        })
    }
}

/// Make a context for the cascade in diffusers pipeline folders: `stage1` (DeepFloyd-IF stage
/// I), then `upper_count` super-resolution stages in order (`upper`: IF stage II folders or the
/// SD x4 upscaler's, told apart by their model_index.json; may be NULL when `upper_count` is 0).
/// `variant` names the weight files' variant ("fp16"), or is NULL. The device is chosen as the
/// CLI chooses it (WGPU_BACKEND, WGPU_ADAPTER_NAME, WGPU_POWER_PREF), and its matrix products'
/// precision and tensor cores follow ITERINV_PRECISION and ITERINV_COOP (README, "Precision and
/// tensor cores"). On success `*out` is the context; on failure it is NULL.
///
/// # Safety
/// `out` must point to writable storage; the strings must be NUL-terminated, and `upper` must
/// hold `upper_count` of them.
#[no_mangle]
pub unsafe extern "C" fn iterinv_context_new(
    stage1: *const c_char,
    upper: *const *const c_char,
    upper_count: usize,
    variant: *const c_char,
    out: *mut *mut IterinvContext,
) -> IterinvStatus {
    guard(|| {
        let out = unsafe { out_handle(out) }?;
        let stage1 = PathBuf::from(unsafe { utf8(stage1, "stage1") }?);
        let dirs: &[*const c_char] = match upper_count {
            0 => &[],
            n if upper.is_null() => {
                return Err(Failure::invalid(format!(
                    "`upper` is NULL but `upper_count` is {n}"
                )))
            }
            n => unsafe { std::slice::from_raw_parts(upper, n) },
        };
        let dirs = dirs
            .iter()
            .enumerate()
            .map(|(i, &d)| unsafe { utf8(d, &format!("upper[{i}]")) }.map(PathBuf::from))
            .collect::<Result<Vec<_>, _>>()?;
        let variant = unsafe { optional_utf8(variant, "variant") }?.map(str::to_string);
        give(out, IterinvContext::open(stage1, &dirs, variant)?);
        Ok(())
    })
}

/// Make a context for the tiny cascade built into the library (16 px IF stage I, 16 → 32 px IF
/// stage II, a 32 → 128 px latent stage like the SD x4 upscaler; trained for a few CPU minutes
/// on six photos): the whole flow without downloaded weights. Its files are written to
/// `$XDG_CACHE_HOME/iterinv` (or `~/.cache/iterinv`) on first use. On success `*out` is the
/// context; on failure it is NULL.
///
/// # Safety
/// `out` must point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn iterinv_context_new_builtin(
    out: *mut *mut IterinvContext,
) -> IterinvStatus {
    guard(|| {
        let out = unsafe { out_handle(out) }?;
        let (stage1, upper) = iterinv::embedded::stages()?;
        give(out, IterinvContext::open(stage1, &upper, None)?);
        Ok(())
    })
}

/// The context's device in words: the adapter's name and backend, e.g. "llvmpipe (LLVM 15.0.6,
/// 256 bits) (Vulkan)". Valid as long as the context; NULL if `context` is NULL.
///
/// # Safety
/// `context` must be NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn iterinv_context_device(context: *const IterinvContext) -> *const c_char {
    match unsafe { context.as_ref() } {
        Some(c) => c.device.as_ptr(),
        None => std::ptr::null(),
    }
}

/// The number of stages of the context's cascade (stage I and its super-resolution stages); 0
/// if `context` is NULL.
///
/// # Safety
/// `context` must be NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn iterinv_context_stages(context: *const IterinvContext) -> usize {
    unsafe { context.as_ref() }.map_or(0, |c| 1 + c.upper.len())
}

/// Cap the GPU memory the context's calls may hold, weights and activations together, at
/// `bytes` (0: no cap, the device's own limit). An inversion is then planned before it runs
/// and refused with `ITERINV_STATUS_GPU` when a stage would need more, the message saying what
/// would fit; any allocation past the cap fails the same way instead of reaching the driver.
///
/// # Safety
/// `context` must be NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn iterinv_context_set_memory_budget(
    context: *mut IterinvContext,
    bytes: u64,
) -> IterinvStatus {
    guard(|| {
        let context =
            unsafe { context.as_ref() }.ok_or_else(|| Failure::invalid("context is NULL"))?;
        context.gpu.set_memory_budget((bytes > 0).then_some(bytes));
        Ok(())
    })
}

/// Free a context (its device and everything iterinv holds on it). NULL is ignored.
///
/// # Safety
/// `context` must be NULL or a live context, not in use by another thread, and not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn iterinv_context_free(context: *mut IterinvContext) {
    unsafe { take_back(context) }
}
