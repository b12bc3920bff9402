//! Tensors: a shape, a storage dtype and pooled GPU buffers. Always contiguous, row-major.
//!
//! A tensor larger than the device's storage-binding limit is stored as several buffers ("chunks"),
//! each holding whole rows along dimension 0. Ops that can consume such a tensor (matmul weights,
//! embedding tables) loop over the chunks; the rest report [`Error::TooLarge`].

use std::sync::Arc;

use half::{bf16, f16};
use iterinv_kernels::StorageType;

use crate::error::{shape_err, Error, Result};
use crate::gpu::{Gpu, Inner};
use crate::pool::PooledBuffer;

/// Storage types of tensor elements. Math is always f32; 16-bit floats are widened when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    I32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    pub fn is_float(self) -> bool {
        self != DType::I32
    }

    pub(crate) fn storage(self) -> StorageType {
        match self {
            DType::F32 => StorageType::F32,
            DType::F16 => StorageType::F16,
            DType::BF16 => StorageType::Bf16,
            DType::I32 => StorageType::I32,
        }
    }
}

/// The bit pattern test-mode poison fills fresh buffers with (a quiet NaN).
pub const POISON_BITS: u32 = 0x7fc0_beef;
/// Guard bytes kept after every buffer in poison mode, to catch out-of-bounds writes.
const GUARD_BYTES: u64 = 64;

pub(crate) struct Storage {
    gpu: Arc<Inner>,
    pub chunks: Vec<Arc<PooledBuffer>>,
    /// Rows along dimension 0 per chunk (the last chunk may hold fewer).
    pub rows_per_chunk: usize,
    /// Filled with poison and followed by guard words (poison mode, op outputs only).
    pub guarded: bool,
}

impl Drop for Storage {
    fn drop(&mut self) {
        let mut pool = self.gpu.pool.lock().unwrap();
        for c in self.chunks.drain(..) {
            pool.release(c);
        }
    }
}

/// An n-dimensional array on the GPU. Cloning shares the storage.
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    shape: Vec<usize>,
    dtype: DType,
    pub(crate) storage: Arc<Storage>,
    /// The autodiff node that produced this tensor, if it is tracked (see `grad`).
    pub(crate) node: Option<Arc<crate::grad::Node>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn padded_bytes(n: usize, dtype: DType) -> u64 {
    ((n * dtype.size()) as u64).div_ceil(4) * 4
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Size of dimension `d`; negative counts from the end.
    pub fn dim(&self, d: isize) -> usize {
        let r = self.rank() as isize;
        let i = if d < 0 { r + d } else { d };
        self.shape[i as usize]
    }

    /// True when the tensor is split over several buffers (see the module docs).
    pub fn is_chunked(&self) -> bool {
        self.storage.chunks.len() > 1
    }

    pub(crate) fn chunk_count(&self) -> usize {
        self.storage.chunks.len()
    }

    /// Rows (along dim 0) held by chunk `i`.
    pub(crate) fn chunk_rows(&self, i: usize) -> std::ops::Range<usize> {
        let dim0 = self.shape.first().copied().unwrap_or(1);
        if self.storage.chunks.len() == 1 {
            // One buffer holds everything, whatever shape a reshape gave the tensor since.
            return 0..dim0;
        }
        let r = self.storage.rows_per_chunk;
        let start = i * r;
        start..((i + 1) * r).min(self.shape.first().copied().unwrap_or(1))
    }

    /// Same storage, new shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return shape_err(
                "reshape",
                format!("cannot reshape {:?} to {:?}", self.shape, shape),
            );
        }
        if self.is_chunked() && shape.first() != self.shape.first() {
            return shape_err("reshape", "a chunked tensor keeps its first dimension");
        }
        let from = self.shape.clone();
        let out = Tensor {
            gpu: self.gpu.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            storage: self.storage.clone(),
            node: None,
        };
        Ok(crate::grad::record("reshape", out, &[self], move |g, _| {
            Ok(vec![Some(g.reshape(&from)?)])
        }))
    }

    /// Upload raw little-endian bytes of `dtype` elements.
    pub fn from_bytes(gpu: &Gpu, shape: &[usize], dtype: DType, bytes: &[u8]) -> Result<Tensor> {
        let n = numel(shape);
        if bytes.len() != n * dtype.size() {
            return shape_err(
                "upload",
                format!(
                    "{} bytes given for shape {:?} of {:?} ({} expected)",
                    bytes.len(),
                    shape,
                    dtype,
                    n * dtype.size()
                ),
            );
        }
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let row_bytes = (n / rows.max(1)) * dtype.size();
        let limit = gpu.caps().max_binding_size;
        let total = padded_bytes(n, dtype);
        let rows_per_chunk = if total <= limit || row_bytes == 0 {
            rows
        } else {
            let r = (limit / row_bytes as u64) as usize;
            if r == 0 {
                return Err(Error::TooLarge {
                    what: format!(
                        "one row ({} bytes) of a tensor of shape {:?}",
                        row_bytes, shape
                    ),
                    bytes: row_bytes as u64,
                    limit,
                    hint: "a tensor is split along its first dimension only",
                });
            }
            r
        };
        // Take the buffers first, then submit what is pending: a pending encoder (this thread's or
        // another's) may still read a pooled buffer we were just handed, and queue writes land
        // before the next submission's commands. Flushing before taking the buffers would leave
        // a window in which another thread records a read of a buffer, frees it, and we
        // overwrite it ahead of that read.
        let mut chunks = Vec::new();
        let mut parts = Vec::new();
        for start in (0..rows).step_by(rows_per_chunk) {
            let end = (start + rows_per_chunk).min(rows);
            let data = &bytes[start * row_bytes..end * row_bytes];
            chunks.push(gpu.acquire((data.len() as u64).div_ceil(4) * 4, || {
                format!("a tensor of shape {shape:?} ({dtype:?})")
            })?);
            parts.push(data);
        }
        gpu.flush();
        for (buf, data) in chunks.iter().zip(parts) {
            if gpu.0.planning {
                break;
            }
            let mut padded;
            let data = if !data.len().is_multiple_of(4) {
                padded = data.to_vec();
                padded.resize(data.len().div_ceil(4) * 4, 0);
                &padded[..]
            } else {
                data
            };
            if !data.is_empty() {
                gpu.queue().write_buffer(&buf.buffer, 0, data);
            }
        }
        if chunks.is_empty() {
            chunks.push(gpu.acquire(4, || "an empty tensor".into())?);
        }
        let storage = Arc::new(Storage {
            gpu: gpu.0.clone(),
            chunks,
            rows_per_chunk,
            guarded: false,
        });
        Ok(Tensor {
            gpu: gpu.clone(),
            shape: shape.to_vec(),
            dtype,
            storage,
            node: None,
        })
    }

    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        Tensor::from_bytes(gpu, shape, DType::F32, bytemuck::cast_slice(data))
    }

    pub fn from_f16(gpu: &Gpu, shape: &[usize], data: &[f16]) -> Result<Tensor> {
        Tensor::from_bytes(gpu, shape, DType::F16, bytemuck::cast_slice(data))
    }

    pub fn from_bf16(gpu: &Gpu, shape: &[usize], data: &[bf16]) -> Result<Tensor> {
        Tensor::from_bytes(gpu, shape, DType::BF16, bytemuck::cast_slice(data))
    }

    pub fn from_i32(gpu: &Gpu, shape: &[usize], data: &[i32]) -> Result<Tensor> {
        Tensor::from_bytes(gpu, shape, DType::I32, bytemuck::cast_slice(data))
    }

    /// A scalar-filled f32 tensor.
    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Tensor::uninit(gpu, shape, "full")?;
        crate::ops::elementwise::fill_bits(&t, value.to_bits(), t.numel())?;
        Ok(t)
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Tensor::full(gpu, shape, 0.0)
    }

    /// A fresh f32 tensor for an op's output; its contents are undefined (NaN in poison mode).
    pub(crate) fn uninit(gpu: &Gpu, shape: &[usize], op: &'static str) -> Result<Tensor> {
        let n = numel(shape);
        let bytes = padded_bytes(n, DType::F32);
        let limit = gpu.caps().max_binding_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: format!("the output of {op} (shape {shape:?})"),
                bytes,
                limit,
                hint: "use a smaller batch or resolution, or a device with a larger storage binding limit",
            });
        }
        let guard = if gpu.0.poison { GUARD_BYTES } else { 0 };
        let buf = gpu.acquire(bytes.max(4) + guard, || {
            format!("the output of {op} (shape {shape:?})")
        })?;
        let storage = Arc::new(Storage {
            gpu: gpu.0.clone(),
            chunks: vec![buf],
            rows_per_chunk: shape.first().copied().unwrap_or(1),
            guarded: gpu.0.poison,
        });
        let t = Tensor {
            gpu: gpu.clone(),
            shape: shape.to_vec(),
            dtype: DType::F32,
            storage,
            node: None,
        };
        if gpu.0.poison {
            let words = (t.storage.chunks[0].capacity / 4) as usize;
            crate::ops::elementwise::fill_bits(&t, POISON_BITS, words)?;
        }
        Ok(t)
    }

    /// A fresh f32 tensor for an op's output that may be larger than one storage binding: split
    /// along dimension 0 into as few chunks as the limit allows, as an upload of the same shape
    /// is (a photo at full size, one buffer per band of rows). Contents undefined (NaN in poison
    /// mode, every chunk).
    pub(crate) fn uninit_rows(gpu: &Gpu, shape: &[usize], op: &'static str) -> Result<Tensor> {
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let row_bytes = (numel(shape) / rows * DType::F32.size()) as u64;
        let limit = gpu.caps().max_binding_size;
        if padded_bytes(numel(shape), DType::F32) <= limit || row_bytes == 0 {
            return Tensor::uninit(gpu, shape, op);
        }
        if row_bytes > limit {
            return Err(Error::TooLarge {
                what: format!("one row of the output of {op} (shape {shape:?})"),
                bytes: row_bytes,
                limit,
                hint: "a tensor is split along its first dimension only",
            });
        }
        let rows_per_chunk = (limit / row_bytes) as usize;
        let guard = if gpu.0.poison { GUARD_BYTES } else { 0 };
        let mut chunks = Vec::new();
        for start in (0..rows).step_by(rows_per_chunk) {
            let bytes = (rows_per_chunk.min(rows - start)) as u64 * row_bytes;
            chunks.push(gpu.acquire(bytes + guard, || {
                format!("the output of {op} (shape {shape:?})")
            })?);
        }
        let t = Tensor {
            gpu: gpu.clone(),
            shape: shape.to_vec(),
            dtype: DType::F32,
            storage: Arc::new(Storage {
                gpu: gpu.0.clone(),
                chunks,
                rows_per_chunk,
                guarded: gpu.0.poison,
            }),
            node: None,
        };
        if gpu.0.poison {
            for i in 0..t.chunk_count() {
                let b = t.bind_chunk(i);
                let words = (b.size / 4) as usize;
                crate::ops::elementwise::fill_binding(gpu, b, POISON_BITS, words)?;
            }
        }
        Ok(t)
    }

    /// Read back the raw bytes of every chunk, in order (waits for the GPU).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let total = self.numel() * self.dtype.size();
        let row_bytes = if self.shape.is_empty() {
            total
        } else {
            total / self.shape[0].max(1)
        };
        let mut sizes = Vec::new();
        for i in 0..self.chunk_count() {
            let rows = self.chunk_rows(i);
            sizes.push(if self.shape.is_empty() {
                total
            } else {
                rows.len() * row_bytes
            });
        }
        let mut out = Vec::with_capacity(total);
        let words = read_buffers(&self.gpu, &self.storage.chunks, &sizes)?;
        for (data, size) in words.into_iter().zip(sizes) {
            out.extend_from_slice(&data[..size]);
        }
        Ok(out)
    }

    /// The elements as f32 (16-bit floats widened exactly).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.to_bytes()?;
        Ok(match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DType::BF16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DType::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
        })
    }

    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        if self.dtype != DType::I32 {
            return Err(Error::DType {
                op: "to_vec_i32",
                detail: format!("tensor is {:?}", self.dtype),
            });
        }
        Ok(bytemuck::pod_collect_to_vec(&self.to_bytes()?))
    }

    /// In poison mode: true when every word after the tensor's data in its buffers (each chunk's)
    /// still holds the poison, i.e. no kernel wrote out of bounds. Always true outside poison mode.
    pub fn guards_intact(&self) -> Result<bool> {
        if !self.storage.guarded || self.gpu.0.planning {
            return Ok(true);
        }
        let chunks = &self.storage.chunks;
        let caps: Vec<usize> = chunks.iter().map(|c| c.capacity as usize).collect();
        let row_words = self.numel() / self.shape.first().copied().unwrap_or(1).max(1);
        let data = read_buffers(&self.gpu, chunks, &caps)?;
        Ok(data.iter().enumerate().all(|(i, bytes)| {
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(bytes);
            let used = if chunks.len() == 1 {
                self.numel()
            } else {
                self.chunk_rows(i).len() * row_words
            };
            words[used..].iter().all(|&w| w == POISON_BITS)
        }))
    }
}

/// Copy `sizes[i]` bytes (rounded up to words) of each buffer to the host. On a planning device,
/// words of 1.0 (see [`Gpu::planner`]).
fn read_buffers(gpu: &Gpu, bufs: &[Arc<PooledBuffer>], sizes: &[usize]) -> Result<Vec<Vec<u8>>> {
    if gpu.0.planning {
        let one = 1.0f32.to_le_bytes();
        return Ok(sizes
            .iter()
            .map(|&size| {
                one.iter()
                    .copied()
                    .cycle()
                    .take(size.div_ceil(4) * 4)
                    .collect()
            })
            .collect());
    }
    if let Some(e) = crate::fault::lost(&gpu.0.fault) {
        return Err(e);
    }
    let device = gpu.device();
    let mut stagings = Vec::new();
    let scopes = crate::fault::Scopes::push(device);
    {
        let mut rec = gpu.0.recorder.lock().unwrap();
        let encoder = rec.encoder(device);
        for (buf, &size) in bufs.iter().zip(sizes) {
            let size = (size as u64).div_ceil(4).max(1) * 4;
            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("iterinv readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            encoder.copy_buffer_to_buffer(&buf.buffer, 0, &staging, 0, size);
            stagings.push(staging);
        }
        rec.flush(gpu.queue());
    }
    if let Some(f) = scopes.pop("reading back") {
        crate::fault::record(&gpu.0.fault, f);
    }
    // Whatever failed in the work whose results these are is this readback's error.
    gpu.wait()?;
    let mut out = Vec::new();
    for staging in stagings {
        let (tx, rx) = std::sync::mpsc::channel();
        let scopes = crate::fault::Scopes::push(device);
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        if let Some(f) = scopes.pop("reading back") {
            // The staging buffer was made without an error, yet it cannot be mapped: wgpu
            // reports nothing for work on a lost device, and an invalid buffer is what it leaves.
            let lost = crate::fault::Fault::Lost(match f {
                crate::fault::Fault::Error { detail, .. } => {
                    format!("{detail} (a buffer created without error is unusable)")
                }
                lost => return Err(lost.to_error()),
            });
            crate::fault::record(&gpu.0.fault, lost.clone());
            return Err(lost.to_error());
        }
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| Error::Readback(e.to_string()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        out.push(
            staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Readback(e.to_string()))?
                .to_vec(),
        );
        staging.unmap();
    }
    Ok(out)
}
