//! iterinv's GPU runtime: a [`Gpu`] (our own wgpu device or one adopted from a host application),
//! [`Tensor`]s in pooled buffers, and the forward ops that launch the WGSL kernels of
//! `iterinv-kernels`. Everything here returns [`Result`]; nothing panics on caller input.

mod error;
mod fault;
mod gpu;
mod launch;
mod pipelines;
mod pool;
mod profile;
mod recorder;
mod tensor;

pub mod grad;
pub mod invert;
pub mod ops;
pub mod optim;
pub mod precision;
pub mod random;
pub mod sched;

pub use error::{mib, Error, Result};
pub use gpu::{Caps, Gpu, GpuInfo, GpuOptions};
pub use ops::Activation;
pub use pool::PoolStats;
pub use precision::{Cooperative, Precision};
pub use profile::{ProfileReport, ProfileRow};
pub use tensor::{DType, Tensor, POISON_BITS};
