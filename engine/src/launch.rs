//! Launching a kernel: pick (or build) its pipeline, bind tensors, pack its parameters, record the
//! dispatch. Every op goes through [`Gpu::launch`].

use std::sync::Arc;

use iterinv_kernels::{Kernel, StorageType};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::pool::PooledBuffer;
use crate::profile::{Tag, Work};
use crate::recorder::PARAMS_SLOT;
use crate::tensor::{DType, Tensor};

impl Gpu {
    /// The variant of a row-reduction kernel (norms, softmax) this device runs: on subgroup
    /// operations where it has them ([`Caps::subgroups`](crate::Caps::subgroups)), else with
    /// workgroup-memory trees.
    pub(crate) fn rows_kernel(
        &self,
        tree: &'static Kernel,
        subgroup: &'static Kernel,
    ) -> &'static Kernel {
        if self.caps().subgroups {
            subgroup
        } else {
            tree
        }
    }
}

/// A buffer range bound to one kernel slot.
#[derive(Clone)]
pub(crate) struct Binding {
    pub buffer: Arc<PooledBuffer>,
    pub offset: u64,
    pub size: u64,
    pub ty: StorageType,
}

impl Tensor {
    /// The whole tensor as one binding; an error for chunked tensors, naming `op`.
    pub(crate) fn bind(&self, op: &'static str) -> Result<Binding> {
        if self.is_chunked() {
            return Err(Error::TooLarge {
                what: format!(
                    "{op} on a tensor of shape {:?} stored in {} chunks",
                    self.shape(),
                    self.chunk_count()
                ),
                bytes: (self.numel() * self.dtype().size()) as u64,
                limit: self.gpu().caps().max_binding_size,
                hint:
                    "only matmul weights and embedding tables may exceed the storage binding limit",
            });
        }
        Ok(self.bind_chunk(0))
    }

    pub(crate) fn bind_chunk(&self, i: usize) -> Binding {
        let buffer = self.storage.chunks[i].clone();
        let size = buffer.capacity.min(self.gpu().caps().max_binding_size);
        Binding {
            buffer,
            offset: 0,
            size,
            ty: self.dtype().storage(),
        }
    }
}

/// Parameters of one dispatch, packed as the kernel's `Params` uniform struct: 4-byte scalars in
/// declaration order; `align16` before arrays of vec4.
#[derive(Default, Clone)]
pub(crate) struct Params(Vec<u8>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }
    pub fn u32(mut self, v: u32) -> Params {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f32(mut self, v: f32) -> Params {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn align16(mut self) -> Params {
        while !self.0.len().is_multiple_of(16) {
            self.0.push(0);
        }
        self
    }
    /// `array<vec4<u32>, n/4>` holding `values`, zero-padded to `n` entries.
    pub fn u32_array(mut self, values: &[u32], n: usize) -> Params {
        self = self.align16();
        for i in 0..n {
            self = self.u32(values.get(i).copied().unwrap_or(0));
        }
        self
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One dispatch: the kernel, its specialising constants, its bindings, params and grid, and what
/// the profiler shows of it.
pub(crate) struct Launch {
    pub kernel: &'static Kernel,
    pub constants: Vec<(&'static str, String)>,
    pub inputs: Vec<Binding>,
    pub outputs: Vec<Binding>,
    pub params: Params,
    pub groups: [u32; 3],
    /// The constants whose values name the variant in a profile (the tile shape, not the
    /// activation code).
    pub profile_constants: &'static [&'static str],
    /// FLOPs and bytes of the dispatch, where the launch site knows them.
    pub work: Option<Work>,
}

impl Launch {
    pub fn new(kernel: &'static Kernel) -> Launch {
        Launch {
            kernel,
            constants: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Params::new(),
            groups: [1, 1, 1],
            profile_constants: &[],
            work: None,
        }
    }
    pub fn constant(mut self, name: &'static str, value: impl ToString) -> Launch {
        self.constants.push((name, value.to_string()));
        self
    }
    pub fn input(mut self, b: Binding) -> Launch {
        self.inputs.push(b);
        self
    }
    pub fn output(mut self, b: Binding) -> Launch {
        self.outputs.push(b);
        self
    }
    pub fn params(mut self, p: Params) -> Launch {
        self.params = p;
        self
    }
    pub fn groups(mut self, g: [u32; 3]) -> Launch {
        self.groups = g;
        self
    }
    /// Name the variant in a profile by these constants' values.
    pub fn profile_as(mut self, constants: &'static [&'static str]) -> Launch {
        self.profile_constants = constants;
        self
    }
    /// State the dispatch's work, for the profile's GFLOP/s and GB/s.
    pub fn work(mut self, flops: u64, bytes: u64) -> Launch {
        self.work = Some(Work { flops, bytes });
        self
    }

    /// What the profiler records: `kernel[NAME=value,...]` over [`Launch::profile_constants`],
    /// integer suffixes dropped.
    fn profile_tag(&self) -> Tag {
        let mut name = self.kernel.name.to_string();
        let values: Vec<String> = self
            .profile_constants
            .iter()
            .filter_map(|c| {
                let (_, v) = self.constants.iter().find(|(n, _)| n == c)?;
                let v = v
                    .strip_suffix('u')
                    .filter(|d| d.parse::<u64>().is_ok())
                    .unwrap_or(v);
                Some(format!("{c}={v}"))
            })
            .collect();
        if !values.is_empty() {
            name += &format!("[{}]", values.join(","));
        }
        Tag {
            name,
            work: self.work,
        }
    }
}

impl Gpu {
    /// A pooled buffer of at least `bytes` for `what` (named in an out-of-memory error).
    pub(crate) fn acquire(
        &self,
        bytes: u64,
        what: impl FnOnce() -> String,
    ) -> Result<Arc<PooledBuffer>> {
        if let Some(e) = crate::fault::lost(&self.0.fault) {
            return Err(e);
        }
        let result = self.0.pool.lock().unwrap().acquire(self.device(), bytes);
        result.map_err(|e| match e {
            Error::OutOfMemory {
                bytes,
                in_use,
                budget,
                ..
            } => Error::OutOfMemory {
                what: what(),
                bytes,
                in_use,
                budget,
            },
            other => other,
        })
    }

    /// A small buffer bound where an optional input is absent (its `HAS_*` constant is false).
    /// Never handed out by the pool, so it cannot alias an output.
    pub(crate) fn dummy(&self) -> Binding {
        Binding {
            buffer: self.0.dummy.clone(),
            offset: 0,
            size: 16,
            ty: StorageType::F32,
        }
    }

    /// A grid of `n` workgroups laid over x then y, within the per-dimension limit.
    pub(crate) fn grid(&self, n: u64) -> Result<[u32; 3]> {
        let max = self.caps().max_workgroups_per_dim as u64;
        let n = n.max(1);
        let x = n.min(max);
        let y = n.div_ceil(x);
        if y > max {
            return Err(Error::TooLarge {
                what: format!("a dispatch of {n} workgroups"),
                bytes: n,
                limit: max * max,
                hint: "the tensor has too many elements for one dispatch",
            });
        }
        Ok([x as u32, y as u32, 1])
    }

    pub(crate) fn launch(&self, mut l: Launch) -> Result<()> {
        // Precision belongs to the device (or this thread), not to an op: every kernel that can
        // round its products' operands (constant ROUND_F16) is told here, so no launch site can
        // leave a product at f32 under f16.
        if l.kernel
            .constants
            .iter()
            .any(|(name, _)| *name == "ROUND_F16")
        {
            debug_assert!(
                l.constants.iter().all(|(name, _)| *name != "ROUND_F16"),
                "{}: ROUND_F16 is set by Gpu::launch",
                l.kernel.name
            );
            let round = self.precision().rounds_to_f16();
            l.constants.push(("ROUND_F16", round.to_string()));
        }
        debug_assert!(
            l.params.bytes().len() as u64 <= PARAMS_SLOT,
            "{} params too large",
            l.kernel.name
        );
        debug_assert_eq!(
            l.inputs.len(),
            l.kernel.inputs.len(),
            "{} inputs",
            l.kernel.name
        );
        debug_assert_eq!(
            l.outputs.len(),
            l.kernel.outputs.len(),
            "{} outputs",
            l.kernel.name
        );
        if self.0.planning {
            self.0.recorder.lock().unwrap().count(l.kernel.name);
            return Ok(());
        }
        let types: Vec<StorageType> = l.inputs.iter().map(|b| b.ty).collect();
        let pipeline = self.0.pipelines.lock().unwrap().pipeline(
            self.device(),
            l.kernel,
            &types,
            &l.constants,
        )?;
        let mut rec = self.0.recorder.lock().unwrap();
        let profile = rec.profiler.is_some().then(|| l.profile_tag());
        let bufs: Vec<_> = l
            .inputs
            .iter()
            .chain(l.outputs.iter())
            .map(|b| (&b.buffer.buffer, (b.buffer.id, b.offset, b.size)))
            .collect();
        let bg = self.0.pipelines.lock().unwrap().bind_group(
            self.device(),
            pipeline.layout_key,
            &rec.arena,
            &bufs,
        )?;
        rec.dispatch(
            l.kernel.name,
            self.device(),
            self.queue(),
            &pipeline.pipeline,
            &bg,
            l.params.bytes(),
            l.groups,
            profile,
        );
        Ok(())
    }
}

/// Check that `t` holds floats, naming the op and operand otherwise.
pub(crate) fn expect_float(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype() == DType::I32 {
        return Err(Error::DType {
            op,
            detail: format!("{what} must be a float tensor, got i32"),
        });
    }
    Ok(())
}

/// u32 for a kernel parameter, or an error naming the op when the value does not fit.
pub(crate) fn to_u32(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Invalid {
        op,
        detail: format!("size {v} exceeds the 32-bit index range"),
    })
}
