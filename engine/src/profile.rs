//! The kernel profiler: per-kernel GPU times from timestamp queries, and the table that reports them.
//!
//! Profiling is on when [`GpuOptions::profile`](crate::GpuOptions::profile) says so, or, when that is
//! `None`, when the environment variable `ITERINV_PROFILE` is set to anything but `0` or nothing,
//! read once at device creation. Then the recorder gives every dispatch its own compute pass whose
//! `timestamp_writes` mark its start and end (pass-granularity timestamps, the portable way with
//! wgpu), resolves the query set at each submission and reads the timestamps back right after it.
//! That makes every submission wait for the device: the design's rule of no readback inside a step
//! is suspended in profile mode, and only there. Without profiling nothing of this exists — no query
//! set, no extra passes, no readback.
//!
//! Where the device lacks `TIMESTAMP_QUERY` the profiler says so once on stderr and counts dispatches
//! only: the report's times, shares and rates are then absent.

use std::collections::HashMap;
use std::sync::Once;

/// Work one dispatch does, where its launch site knows it: floating-point operations, and the bytes
/// it must move at least (each operand read once, the output written once; read again where it
/// accumulates). Turns times into GFLOP/s and GB/s in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Work {
    pub flops: u64,
    pub bytes: u64,
}

/// What the profiler records about one dispatch.
pub(crate) struct Tag {
    /// The kernel's name and the constants that tell its variants apart, e.g. `conv2d_direct[MB=8,NB=16]`.
    pub name: String,
    pub work: Option<Work>,
}

/// Queries for this many dispatches per submission: the recorder submits before its parameter arena
/// overflows, so no submission holds more dispatches than the arena has slots.
const QUERY_DISPATCHES: u64 = crate::recorder::ARENA_SLOTS;

/// The query set and buffers that carry one submission's timestamps to the host.
struct Timer {
    device: wgpu::Device,
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period: f64,
}

#[derive(Default)]
struct Stat {
    calls: u64,
    nanos: f64,
    /// Work summed over the calls; `None` once any call of the kernel came without it.
    work: Option<Work>,
}

pub(crate) struct Profiler {
    timer: Option<Timer>,
    /// Dispatches recorded since the last submission, in order: dispatch `i` wrote queries 2i, 2i+1.
    pending: Vec<Tag>,
    stats: HashMap<String, Stat>,
    /// Whether dispatches were collected since the last report (printed at drop if so).
    unreported: bool,
}

/// Whether `ITERINV_PROFILE` asks for profiling.
pub(crate) fn requested_by_env() -> bool {
    std::env::var("ITERINV_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl Profiler {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Profiler {
        let timer = if device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            let bytes = 2 * QUERY_DISPATCHES * wgpu::QUERY_SIZE as u64;
            let buffer = |label, usage| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                })
            };
            Some(Timer {
                device: device.clone(),
                queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("iterinv profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * QUERY_DISPATCHES as u32,
                }),
                resolve: buffer(
                    "iterinv profile resolve",
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                ),
                readback: buffer(
                    "iterinv profile readback",
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                ),
                period: queue.get_timestamp_period() as f64,
            })
        } else {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "iterinv: profiling asked for, but the device lacks TIMESTAMP_QUERY: \
                     the profile counts dispatches per kernel, without times"
                )
            });
            None
        };
        Profiler {
            timer,
            pending: Vec::new(),
            stats: HashMap::new(),
            unreported: false,
        }
    }

    /// Note a dispatch about to be recorded; the timestamp writes of the pass that must hold it
    /// alone, or `None` when there are no timestamps.
    pub fn begin(&mut self, tag: Tag) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let i = self.pending.len() as u32;
        debug_assert!(
            (i as u64) < QUERY_DISPATCHES,
            "a submission outgrew the query set"
        );
        self.pending.push(tag);
        self.timer
            .as_ref()
            .map(|t| wgpu::ComputePassTimestampWrites {
                query_set: &t.queries,
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            })
    }

    /// Before submitting `encoder`: copy its timestamps to the readback buffer.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = 2 * self.pending.len() as u32;
        if let (Some(t), true) = (&self.timer, n > 0) {
            encoder.resolve_query_set(&t.queries, 0..n, &t.resolve, 0);
            let bytes = n as u64 * wgpu::QUERY_SIZE as u64;
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, bytes);
        }
    }

    /// After the submission: wait for it, read its timestamps and add each dispatch to its kernel.
    pub fn collect(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let nanos = match &self.timer {
            Some(t) => match t.read(self.pending.len()) {
                Ok(n) => Some(n),
                Err(e) => {
                    // Keep counting calls; a report with holes in its times would mislead.
                    eprintln!("iterinv: reading profile timestamps failed ({e}); times are off from now on");
                    self.timer = None;
                    None
                }
            },
            None => None,
        };
        for (i, tag) in self.pending.drain(..).enumerate() {
            let s = self.stats.entry(tag.name).or_insert_with(|| Stat {
                work: Some(Work::default()),
                ..Default::default()
            });
            s.calls += 1;
            s.nanos += nanos.as_ref().map_or(0.0, |n| n[i]);
            s.work = match (s.work, tag.work) {
                (Some(a), Some(b)) => Some(Work {
                    flops: a.flops + b.flops,
                    bytes: a.bytes + b.bytes,
                }),
                _ => None,
            };
        }
        self.unreported = true;
    }

    /// Forget everything collected so far.
    pub fn reset(&mut self) {
        self.stats.clear();
        self.unreported = false;
    }

    /// Everything collected since the device was created or the profile last reset.
    pub fn report(&mut self) -> ProfileReport {
        self.unreported = false;
        let timed = self.timer.is_some();
        let total_nanos: f64 = self.stats.values().map(|s| s.nanos).sum();
        let mut rows: Vec<ProfileRow> = self
            .stats
            .iter()
            .map(|(name, s)| {
                let ms = timed.then_some(s.nanos / 1e6);
                let rate = |amount: u64| {
                    // Per nanosecond is giga per second.
                    (timed && s.nanos > 0.0).then(|| amount as f64 / s.nanos)
                };
                ProfileRow {
                    kernel: name.clone(),
                    calls: s.calls,
                    total_ms: ms,
                    share: (timed && total_nanos > 0.0).then(|| 100.0 * s.nanos / total_nanos),
                    gflops: s.work.and_then(|w| rate(w.flops)),
                    gbps: s.work.and_then(|w| rate(w.bytes)),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            let key = |r: &ProfileRow| r.total_ms.unwrap_or(0.0);
            key(b)
                .total_cmp(&key(a))
                .then(b.calls.cmp(&a.calls))
                .then(a.kernel.cmp(&b.kernel))
        });
        ProfileReport {
            timed,
            total_ms: timed.then_some(total_nanos / 1e6),
            rows,
        }
    }
}

impl Drop for Profiler {
    /// A program that never asked for the report still gets it, at the device's end.
    fn drop(&mut self) {
        if self.unreported {
            eprintln!("{}", self.report());
        }
    }
}

impl Timer {
    /// Nanoseconds of each of the last submission's `n` dispatches; waits for the device.
    fn read(&self, n: usize) -> Result<Vec<f64>, String> {
        let slice = self
            .readback
            .slice(..2 * n as u64 * wgpu::QUERY_SIZE as u64);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| e.to_string())?;
        rx.recv()
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let ticks: Vec<u64> = {
            let range = slice.get_mapped_range().map_err(|e| e.to_string())?;
            bytemuck::pod_collect_to_vec(&range)
        };
        self.readback.unmap();
        // A driver may report an end before its start for an empty pass: count that as zero.
        Ok(ticks
            .chunks_exact(2)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * self.period)
            .collect())
    }
}

/// One kernel variant's line of the profile.
#[derive(Clone, Debug)]
pub struct ProfileRow {
    /// Kernel name with the constants that tell its variants apart, e.g. `matmul_direct[TM=16,WX=8]`.
    pub kernel: String,
    pub calls: u64,
    /// GPU time summed over the calls; `None` without timestamps.
    pub total_ms: Option<f64>,
    /// Percent of the profile's total time.
    pub share: Option<f64>,
    /// Achieved rates, where every launch of the kernel stated its FLOPs and bytes.
    pub gflops: Option<f64>,
    pub gbps: Option<f64>,
}

/// Per-kernel GPU times since the device was created, sorted by total time (most first).
#[derive(Clone, Debug)]
pub struct ProfileReport {
    /// Whether the times come from GPU timestamps; `false`: calls only (no `TIMESTAMP_QUERY`).
    pub timed: bool,
    /// Sum of the rows' times.
    pub total_ms: Option<f64>,
    pub rows: Vec<ProfileRow>,
}

impl std::fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<f64>, digits: usize| match v {
            Some(v) => format!("{v:.digits$}"),
            None => "—".to_string(),
        };
        match self.total_ms {
            Some(ms) => writeln!(
                f,
                "GPU kernel profile (timestamp queries, one pass per dispatch): {ms:.3} ms in all"
            )?,
            None => writeln!(
                f,
                "GPU kernel profile: calls only (the device lacks TIMESTAMP_QUERY)"
            )?,
        }
        writeln!(
            f,
            "| kernel | calls | total ms | share % | GFLOP/s | GB/s |"
        )?;
        write!(f, "|---|---:|---:|---:|---:|---:|")?;
        for r in &self.rows {
            write!(
                f,
                "\n| {} | {} | {} | {} | {} | {} |",
                r.kernel,
                r.calls,
                opt(r.total_ms, 3),
                opt(r.share, 1),
                opt(r.gflops, 2),
                opt(r.gbps, 2)
            )?;
        }
        Ok(())
    }
}
