//! The command recorder: dispatches go into one open compute pass of one command encoder, their
//! parameters into one uniform arena, until a readback, an upload or a full arena submits them.
//! A step of a network is therefore a handful of submissions, not one per op. In profile mode
//! (`crate::profile`) each dispatch gets a compute pass of its own, timed by timestamp queries that
//! are read back after each submission.

use crate::fault::{self, FaultSlot, Scopes};
use crate::profile::{Profiler, Tag};

/// Bytes reserved for one dispatch's parameters; `Params` structs must fit. 256 is the largest
/// uniform-offset alignment any device may require, so every slot is aligned.
pub const PARAMS_SLOT: u64 = 256;
/// Dispatches per submission at most (the arena's capacity).
pub(crate) const ARENA_SLOTS: u64 = 1024;

pub struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    pub(crate) arena: wgpu::Buffer,
    arena_bytes: Vec<u8>,
    /// Dispatches recorded since the device was created.
    pub dispatches: u64,
    /// Submissions made since the device was created.
    pub submissions: u64,
    /// Dispatches per kernel name (pruning tests count these).
    pub per_kernel: std::collections::HashMap<&'static str, u64>,
    /// Present in profile mode only.
    pub(crate) profiler: Option<Profiler>,
    device: wgpu::Device,
    /// Where a submission's error is kept for the next readback.
    fault: FaultSlot,
}

impl Recorder {
    pub fn new(
        device: &wgpu::Device,
        uniform_align: u32,
        profiler: Option<Profiler>,
        fault: FaultSlot,
    ) -> Recorder {
        debug_assert!(PARAMS_SLOT.is_multiple_of(uniform_align as u64));
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("iterinv params arena"),
            size: PARAMS_SLOT * ARENA_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Recorder {
            encoder: None,
            pass: None,
            arena,
            arena_bytes: Vec::new(),
            dispatches: 0,
            submissions: 0,
            per_kernel: Default::default(),
            profiler,
            device: device.clone(),
            fault,
        }
    }

    /// Count a dispatch that a planning device does not record.
    pub fn count(&mut self, kernel: &'static str) {
        self.dispatches += 1;
        *self.per_kernel.entry(kernel).or_default() += 1;
    }

    /// Record one dispatch with `params` (at most [`PARAMS_SLOT`] bytes); `profile` describes it to
    /// the profiler, and is `None` outside profile mode.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &mut self,
        kernel: &'static str,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        params: &[u8],
        groups: [u32; 3],
        profile: Option<Tag>,
    ) {
        debug_assert!(params.len() as u64 <= PARAMS_SLOT);
        if self.arena_bytes.len() as u64 + PARAMS_SLOT > PARAMS_SLOT * ARENA_SLOTS {
            self.flush(queue);
        }
        let offset = self.arena_bytes.len() as u32;
        self.arena_bytes.extend_from_slice(params);
        self.arena_bytes
            .resize(offset as usize + PARAMS_SLOT as usize, 0);
        // Timestamps mark a pass's start and end, so a timed dispatch has its pass to itself.
        let timestamp_writes = match (&mut self.profiler, profile) {
            (Some(p), Some(tag)) => p.begin(tag),
            _ => None,
        };
        let timed = timestamp_writes.is_some();
        if timed {
            self.pass = None;
        }
        if self.pass.is_none() {
            let encoder = self.encoder.get_or_insert_with(|| {
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("iterinv"),
                })
            });
            let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes,
            });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("pass opened above");
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[offset]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        if timed {
            self.pass = None;
        }
        self.count(kernel);
    }

    /// The encoder, with no compute pass open, for copies that must stay in order with dispatches.
    pub fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("iterinv"),
            })
        })
    }

    /// Submit what was recorded. The arena's bytes are written by the queue before this submission
    /// runs and after every earlier one, so each submission sees its own parameters. In profile
    /// mode this waits for the submission and reads its timestamps back. An error in the
    /// submission is kept as the device's fault.
    pub fn flush(&mut self, queue: &wgpu::Queue) {
        self.pass = None;
        if let Some(mut encoder) = self.encoder.take() {
            let scopes = Scopes::push(&self.device);
            if let Some(p) = &self.profiler {
                p.resolve(&mut encoder);
            }
            if !self.arena_bytes.is_empty() {
                queue.write_buffer(&self.arena, 0, &self.arena_bytes);
                self.arena_bytes.clear();
            }
            queue.submit(Some(encoder.finish()));
            if let Some(f) = scopes.pop("submitting work") {
                fault::record(&self.fault, f);
            }
            self.submissions += 1;
            if let Some(p) = &mut self.profiler {
                p.collect();
            }
        }
    }
}
