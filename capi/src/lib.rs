//! The C API of iterinv: invert a photo in host memory through a cascade, save and load the
//! inversion, and regenerate the photo from it — for apps written in C or C++. The header is
//! `include/iterinv.h`, generated from this crate by cbindgen (tests/header.rs keeps it current);
//! link `libiterinv_capi` (shared or static).
//!
//! Conventions of every function:
//! - Handles are opaque and owned by iterinv: `IterinvContext` (a GPU device and a cascade) and
//!   `IterinvInversion`, each freed by its `_free` function (NULL is ignored). Images iterinv
//!   fills are freed by `iterinv_image_free`.
//! - Strings are NUL-terminated UTF-8, in and out.
//! - Every function that can fail returns an `IterinvStatus`; on failure
//!   `iterinv_last_error()` gives the message (per thread), and outputs are NULL or empty.
//! - Nothing unwinds into C: a panic (a bug) is caught and returned as
//!   `ITERINV_STATUS_INTERNAL`.
//! - Long calls take a progress callback that can cancel them.

mod boundary;
mod context;
mod image;
mod inversion;
mod progress;

pub use boundary::{iterinv_last_error, IterinvStatus};
pub use context::{
    iterinv_context_device, iterinv_context_free, iterinv_context_new, iterinv_context_new_builtin,
    iterinv_context_stages, IterinvContext,
};
pub use image::{iterinv_image_free, IterinvImage, IterinvPixelFormat};
pub use inversion::{
    iterinv_inversion_free, iterinv_inversion_image, iterinv_inversion_load,
    iterinv_inversion_save, iterinv_inversion_stages, iterinv_invert,
    iterinv_invert_options_default, iterinv_reconstruct, IterinvInversion, IterinvInvertOptions,
};
pub use progress::IterinvProgress;

use std::ffi::c_char;

/// The library's version, e.g. "0.1.0" (static; never NULL).
#[no_mangle]
pub extern "C" fn iterinv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
