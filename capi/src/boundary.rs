//! Crossing the C boundary: status codes, the thread's last error message, the guard that turns
//! every error and panic into a status (nothing unwinds into C), and the checks of the pointers
//! and strings C passes in.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use iterinv::engine::Error as EngineError;
use iterinv::models::Error as ModelError;

/// What a call of the C API returned. Every call that can fail returns one; on anything but
/// `ITERINV_STATUS_OK`, `iterinv_last_error()` says what failed and what to do.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IterinvStatus {
    /// Success.
    Ok = 0,
    /// A NULL pointer, a string that is not UTF-8, an image buffer that does not hold what it
    /// claims, an option out of range, an empty prompt, a photo smaller than the cascade.
    InvalidArgument = 1,
    /// A file or folder could not be read or written.
    Io = 2,
    /// A pipeline folder, checkpoint, config, tokenizer or saved inversion that cannot be used.
    Model = 3,
    /// No GPU device, out of GPU memory (or a stage planned over the context's memory budget),
    /// or another failure of the device.
    Gpu = 4,
    /// The progress callback returned nonzero: the call stopped and made nothing.
    Cancelled = 5,
    /// An internal error (a bug in iterinv; please report it with the message).
    Internal = 6,
}

/// A failed call: its status and its message.
#[derive(Debug)]
pub struct Failure {
    pub status: IterinvStatus,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: IterinvStatus::InvalidArgument,
            message: message.into(),
        }
    }
}

fn engine_status(e: &EngineError) -> IterinvStatus {
    match e {
        EngineError::Interrupted(_) => IterinvStatus::Cancelled,
        EngineError::Config { .. } => IterinvStatus::Model,
        EngineError::Shape { .. } | EngineError::DType { .. } | EngineError::Invalid { .. } => {
            IterinvStatus::InvalidArgument
        }
        _ => IterinvStatus::Gpu,
    }
}

impl From<ModelError> for Failure {
    fn from(e: ModelError) -> Failure {
        let mut inner = &e;
        while let ModelError::InFile { source, .. } = inner {
            inner = source;
        }
        let status = match inner {
            ModelError::Engine(e) => engine_status(e),
            ModelError::Upload { source, .. } => engine_status(source),
            ModelError::Io { .. } => IterinvStatus::Io,
            ModelError::Input { .. } => IterinvStatus::InvalidArgument,
            ModelError::OverBudget(_) => IterinvStatus::Gpu,
            _ => IterinvStatus::Model,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        Failure {
            status: engine_status(&e),
            message: e.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds NUL, but if it did it would be cut there rather than lost.
    let text = message.split('\0').next().unwrap_or_default();
    let text = CString::new(text).expect("no NUL left");
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// The message of the last call on this thread that did not return `ITERINV_STATUS_OK`
/// (UTF-8, never NULL; empty if no call failed yet). It stays valid until the next failing call
/// on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn iterinv_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Run one call of the C API: its error becomes a status and the thread's last error, and a
/// panic inside it (a bug) becomes `Internal` instead of unwinding into C.
pub fn guard(call: impl FnOnce() -> Result<(), Failure>) -> IterinvStatus {
    let failure = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(())) => return IterinvStatus::Ok,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Failure {
                status: IterinvStatus::Internal,
                message: format!("internal error in iterinv (please report it): {what}"),
            }
        }
    };
    set_last_error(&failure.message);
    failure.status
}

/// `ptr` as a reference, or an error naming the parameter if it is NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that nothing mutates during the call.
pub unsafe fn arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("`{name}` is NULL")))
}

/// `ptr` as a mutable reference, or an error naming the parameter if it is NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that nothing else uses during the call.
pub unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("`{name}` is NULL")))
}

/// The NUL-terminated UTF-8 string at `ptr`, or an error naming the parameter if it is NULL or
/// not UTF-8.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that lives through the call.
pub unsafe fn utf8<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|e| Failure::invalid(format!("`{name}` is not UTF-8: {e}")))
}

/// Like [`utf8`], with NULL meaning "not given".
///
/// # Safety
/// As [`utf8`].
pub unsafe fn optional_utf8<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    unsafe { utf8(ptr, name) }.map(Some)
}

/// The caller's storage for a new handle, set to NULL first: a failed call leaves NULL there.
///
/// # Safety
/// A non-NULL `out` must point to writable storage for a pointer.
pub unsafe fn out_handle<'a, T>(out: *mut *mut T) -> Result<&'a mut *mut T, Failure> {
    let out = unsafe { arg_mut(out, "out") }?;
    *out = std::ptr::null_mut();
    Ok(out)
}

/// Move `value` to the heap and hand C the pointer.
pub fn give<T>(out: &mut *mut T, value: T) {
    *out = Box::into_raw(Box::new(value));
}

/// Take back and drop what [`give`] handed out; NULL is ignored, and a panic while dropping (a
/// bug) is caught: the free functions return nothing to report it with.
///
/// # Safety
/// `ptr` must be NULL or come from [`give`] with the same `T`, and not be used afterwards.
pub unsafe fn take_back<T>(ptr: *mut T) {
    if !ptr.is_null() {
        let value = unsafe { Box::from_raw(ptr) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
}
