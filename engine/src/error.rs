//! The engine's error type: every failure names what failed and what was expected.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    #[error("could not create the GPU device: {0}")]
    Device(String),
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op}: {detail}")]
    DType { op: &'static str, detail: String },
    #[error("{what} needs {bytes} bytes, over the device's limit of {limit} bytes ({hint})")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        hint: &'static str,
    },
    #[error("out of GPU memory allocating {bytes} bytes")]
    OutOfMemory { bytes: u64 },
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
    #[error("invalid argument to {op}: {detail}")]
    Invalid { op: &'static str, detail: String },
    /// A configuration value (e.g. a scheduler_config.json field) that is malformed or unsupported.
    #[error("config field `{field}` = {value}: {detail}")]
    Config {
        field: String,
        value: String,
        detail: String,
    },
    /// A long computation stopped because its caller asked it to (e.g. Ctrl-C in the CLI).
    #[error("interrupted: {0}")]
    Interrupted(String),
    #[error("internal error in kernel {kernel}: {detail}")]
    Kernel {
        kernel: &'static str,
        detail: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn shape_err<T>(op: &'static str, detail: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        detail: detail.into(),
    })
}

pub(crate) fn invalid<T>(op: &'static str, detail: impl Into<String>) -> Result<T> {
    Err(Error::Invalid {
        op,
        detail: detail.into(),
    })
}
