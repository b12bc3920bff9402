//! The buffer pool: storage buffers are rounded up to size classes and reused when their tensor is
//! dropped, so a repeated computation allocates no new GPU memory after its first round.
//!
//! Reuse is safe without waiting for the GPU: every use of a buffer is recorded on the one queue in
//! order, and wgpu orders the accesses of successive dispatches to the same buffer.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Statistics of the pool, in buffers and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// GPU buffers ever created by the pool.
    pub buffers_created: u64,
    /// Bytes currently held by the pool (in use and free).
    pub bytes_held: u64,
    /// Bytes currently handed out to tensors.
    pub bytes_in_use: u64,
    /// The largest `bytes_in_use` seen.
    pub peak_bytes_in_use: u64,
}

/// A pooled GPU buffer. `id` is unique for the device's lifetime (keys the bind-group cache).
#[derive(Debug)]
pub struct PooledBuffer {
    pub buffer: wgpu::Buffer,
    pub id: u64,
    pub capacity: u64,
}

#[derive(Default)]
pub struct BufferPool {
    free: HashMap<u64, Vec<Arc<PooledBuffer>>>,
    stats: PoolStats,
    next_id: u64,
    /// Most bytes the pool may hold; a request past it frees the idle buffers, then fails.
    pub budget: Option<u64>,
    /// On a planning device: the one small buffer every pooled buffer stands on. Nothing is
    /// allocated, but sizes, reuse and statistics are exactly as on a real device.
    pub planning: Option<wgpu::Buffer>,
}

/// The size class a request of `bytes` is served from: multiples of 256 B up to 4 KiB, then eight
/// classes per power of two (at most 12.5 % waste).
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(16);
    if bytes <= 4096 {
        return bytes.div_ceil(256) * 256;
    }
    let octave = 63 - bytes.leading_zeros() as u64; // 2^octave <= bytes
    let step = 1u64 << (octave - 3);
    bytes.div_ceil(step) * step
}

impl BufferPool {
    /// A pool holding at most `budget` bytes, on a planning device's `stand_in` buffer or on
    /// real buffers.
    pub fn new(budget: Option<u64>, stand_in: Option<wgpu::Buffer>) -> BufferPool {
        BufferPool {
            budget,
            planning: stand_in,
            ..BufferPool::default()
        }
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// A buffer of at least `bytes`, reused if one of its class is free. The error's `what` is
    /// left for the caller, who knows what the buffer is for.
    pub fn acquire(&mut self, device: &wgpu::Device, bytes: u64) -> Result<Arc<PooledBuffer>> {
        let class = size_class(bytes);
        let buf = match self.free.get_mut(&class).and_then(|v| v.pop()) {
            Some(b) => b,
            None => {
                self.make_room(class)?;
                let buffer = match &self.planning {
                    Some(stand_in) => stand_in.clone(),
                    None => self.create(device, class)?,
                };
                self.next_id += 1;
                self.stats.buffers_created += 1;
                self.stats.bytes_held += class;
                Arc::new(PooledBuffer {
                    buffer,
                    id: self.next_id,
                    capacity: class,
                })
            }
        };
        self.stats.bytes_in_use += class;
        self.stats.peak_bytes_in_use = self.stats.peak_bytes_in_use.max(self.stats.bytes_in_use);
        Ok(buf)
    }

    fn out_of_memory(&self, class: u64) -> Error {
        Error::OutOfMemory {
            what: String::new(),
            bytes: class,
            in_use: self.stats.bytes_in_use,
            budget: self.budget,
        }
    }

    /// Keep a new buffer of `class` bytes within the budget: free the idle buffers if that is
    /// needed, and fail if even that is not enough.
    fn make_room(&mut self, class: u64) -> Result<()> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        if self.stats.bytes_held + class <= budget {
            return Ok(());
        }
        self.trim();
        if self.stats.bytes_held + class > budget {
            return Err(self.out_of_memory(class));
        }
        Ok(())
    }

    fn create(&self, device: &wgpu::Device, class: u64) -> Result<wgpu::Buffer> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("iterinv pooled"),
            size: class,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(crate::fault::classify("allocating a buffer", &e).to_error());
        }
        if pollster::block_on(scope.pop()).is_some() {
            return Err(self.out_of_memory(class));
        }
        Ok(buffer)
    }

    pub fn release(&mut self, buf: Arc<PooledBuffer>) {
        self.stats.bytes_in_use -= buf.capacity;
        self.free.entry(buf.capacity).or_default().push(buf);
    }

    /// Destroy every free buffer.
    pub fn trim(&mut self) {
        for (_, bufs) in self.free.drain() {
            for b in bufs {
                self.stats.bytes_held -= b.capacity;
            }
        }
    }

    /// Reset the peak to the current use (to measure one phase).
    pub fn reset_peak(&mut self) {
        self.stats.peak_bytes_in_use = self.stats.bytes_in_use;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_bounded_waste() {
        for bytes in [
            1u64,
            16,
            255,
            256,
            257,
            4095,
            4096,
            4097,
            65_537,
            1 << 20,
            (1 << 20) + 1,
            263_000_000,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c.is_multiple_of(4));
            assert!(
                (c - bytes) as f64 <= 0.125 * bytes as f64 + 256.0,
                "{bytes} -> {c}"
            );
        }
    }
}
