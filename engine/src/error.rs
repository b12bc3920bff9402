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
    /// An allocation the device refused, or that would pass the memory budget
    /// ([`GpuOptions::memory_budget`](crate::GpuOptions::memory_budget)).
    #[error(
        "out of GPU memory: {what} needs {} more with {} in use{}",
        mib(*bytes),
        mib(*in_use),
        budget.map(|b| format!(" (the budget is {})", mib(b))).unwrap_or_else(|| " (the device refused it)".into())
    )]
    OutOfMemory {
        /// What was being allocated (e.g. "the output of conv2d (shape [2, 64, 256, 256])").
        what: String,
        bytes: u64,
        /// Bytes the pool had handed out to tensors at the time.
        in_use: u64,
        budget: Option<u64>,
    },
    /// The device was lost (driver reset, removed, or destroyed): nothing more runs on it. Make
    /// a new [`Gpu`](crate::Gpu) to go on.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// A wgpu error caught in an error scope while iterinv worked (a validation or internal
    /// error: a bug or a driver failure); the device still works.
    #[error("GPU error while {what}: {detail}")]
    Gpu { what: &'static str, detail: String },
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

/// Bytes as MiB with two decimals (GiB from 1 GiB), for messages.
pub fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1u64 << 20) as f64;
    if m >= 1024.0 {
        format!("{:.2} GiB", m / 1024.0)
    } else {
        format!("{m:.2} MiB")
    }
}

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
