//! The GPU context: one wgpu device and queue (our own, or adopted from a host application), its
//! real limits and features, and the shared state every op uses (buffer pool, pipeline cache,
//! command recorder, kernel profiler).

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::fault::{self, Fault, FaultSlot};
use crate::pipelines::PipelineCache;
use crate::pool::{BufferPool, PoolStats, PooledBuffer};
use crate::precision::{self, CoopChoice, CoopKernels, Cooperative, Precision};
use crate::profile::{self, ProfileReport, Profiler};
use crate::recorder::Recorder;

mod info;

/// How to create a [`Gpu`]. `Default` honours `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`,
/// `WGPU_POWER_PREF` and `ITERINV_PROFILE`.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Lower the storage-buffer binding limit below the adapter's (to exercise the large-tensor path).
    pub max_binding_size: Option<u64>,
    /// Fill every freshly handed-out output buffer with NaN and keep guard words after it, so a
    /// kernel that leaves an element unwritten or writes out of bounds is caught. For tests.
    pub poison: bool,
    /// Force the kernel variants tuned for CPU adapters (`Some(true)`) or for GPUs (`Some(false)`);
    /// `None` picks by the adapter's device type.
    pub cpu_kernels: Option<bool>,
    /// Impose a per-invocation loop-iteration budget ([`Caps::max_loop_iterations`]) below the
    /// adapter's own, or where it has none, so the paths that split work over dispatches run on
    /// small problems and on any adapter. For tests.
    pub max_loop_iterations: Option<u64>,
    /// Time every kernel dispatch with GPU timestamp queries ([`Gpu::profile_report`]); `None`
    /// follows `ITERINV_PROFILE` (on when set to anything but `0` or nothing). Each submission
    /// then waits for the device, so this is for measuring, not for production runs.
    pub profile: Option<bool>,
    /// Most bytes of GPU memory the buffer pool may hold (weights and activations): an
    /// allocation past it fails with [`Error::OutOfMemory`] instead of reaching the driver.
    /// `None`: the device's own limit.
    pub memory_budget: Option<u64>,
    /// The precision of every matrix product's operands; `None` follows `ITERINV_PRECISION`
    /// (`f32` or `f16`), else f32. An adopted device ([`Gpu::from_device`]) reads no
    /// environment: `None` is f32 there, the host sets anything else.
    pub precision: Option<Precision>,
    /// Whether matrix products may run on cooperative matrices (tensor cores); `None` follows
    /// `ITERINV_COOP` (`auto`, `off`, `on`, `emulated`), else where the adapter offers them.
    /// A device adopted without its adapter ([`Gpu::from_device`]) has none to ask for its
    /// shapes, so only `Emulated` changes anything there; [`Gpu::from_adapter`] asks it.
    pub cooperative: Option<Cooperative>,
    /// Whether the row reductions (norms, softmax) may use subgroup operations; `None`: where
    /// the adapter has `Features::SUBGROUP`. `Some(false)` keeps the workgroup-memory trees
    /// (tests of both variants).
    pub subgroups: Option<bool>,
}

/// What the device offers, read once at creation.
#[derive(Clone, Debug)]
pub struct Caps {
    pub max_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_workgroup_storage: u32,
    pub max_invocations: u32,
    pub max_workgroups_per_dim: u32,
    pub uniform_align: u32,
    pub shader_f16: bool,
    /// The row reductions (norms, softmax) run on subgroup operations (the adapter has
    /// `Features::SUBGROUP` and [`GpuOptions::subgroups`] allows them).
    pub subgroups: bool,
    pub timestamps: bool,
    /// Use the kernel variants that suit a CPU rasteriser (no workgroup-memory tiling).
    pub cpu_kernels: bool,
    /// How many loop iterations one shader invocation may run, counted over all its loops
    /// together, before the driver silently stops looping; `None` where there is no such cap.
    /// Mesa's llvmpipe (lavapipe, Mesa 22.3 in Debian 12, the CI driver) keeps one counter per
    /// invocation shared by every loop and breaks out of all loops once it has counted 65535
    /// (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`): outputs come back half-written or wrong, with
    /// no error. Ops whose per-invocation loops grow with the problem split the work over more
    /// invocations or dispatches to stay well under it. Set on every CPU adapter (device type
    /// `Cpu`, as lavapipe reports itself), whichever kernel variants run there; real GPUs have no
    /// such cap.
    pub max_loop_iterations: Option<u64>,
    /// The device's precision of matrix products ([`Gpu::precision`] may override it for a
    /// thread).
    pub precision: Precision,
    /// The cooperative-matrix kernels matrix products run on at each precision.
    pub coop: CoopChoice,
}

/// Backend, adapter and driver facts for `iterinv info`.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub adapter: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub caps: Caps,
    /// The cooperative-matrix shapes the adapter offers (empty without the feature).
    pub coop_shapes: Vec<wgpu::CooperativeMatrixProperties>,
    pub adopted: bool,
}

pub(crate) struct Inner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: GpuInfo,
    pub poison: bool,
    /// A planning device runs no kernels (see [`Gpu::planner`]).
    pub planning: bool,
    /// A failure caught where no `Result` could carry it (see `fault`).
    pub fault: FaultSlot,
    pub pool: Mutex<BufferPool>,
    pub pipelines: Mutex<PipelineCache>,
    pub recorder: Mutex<Recorder>,
    /// Bound in the slot of an absent optional input.
    pub dummy: Arc<PooledBuffer>,
}

/// A handle to the device every tensor lives on. Cheap to clone; shareable across threads.
#[derive(Clone)]
pub struct Gpu(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.0.info.adapter.name)
    }
}

fn wanted_features(available: wgpu::Features, cooperative: Cooperative) -> wgpu::Features {
    let mut useful =
        wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
    if matches!(cooperative, Cooperative::Auto | Cooperative::Required) {
        useful |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    }
    available & useful
}

/// The cooperative-matrix shapes of `adapter`, where the device has the feature enabled.
fn coop_shapes(
    adapter: &wgpu::Adapter,
    features: wgpu::Features,
) -> Vec<wgpu::CooperativeMatrixProperties> {
    if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        adapter.cooperative_matrix_properties()
    } else {
        Vec::new()
    }
}

impl Gpu {
    /// A device on the adapter chosen by the environment (see [`GpuOptions`]).
    pub fn new() -> Result<Gpu> {
        Gpu::with_options(GpuOptions::default())
    }

    pub fn with_options(mut options: GpuOptions) -> Result<Gpu> {
        let precision = match options.precision {
            Some(p) => p,
            None => Precision::from_env()?,
        };
        let cooperative = match options.cooperative {
            Some(c) => c,
            None => Cooperative::from_env()?,
        };
        options.precision = Some(precision);
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(select_adapter(&instance))?;
        let features = wanted_features(adapter.features(), cooperative);
        let limits = adapter.limits();
        let info = adapter.get_info();
        let coop_shapes = coop_shapes(&adapter, features);
        let coop = precision::for_adapter(cooperative, precision, &info, features, &coop_shapes)?;
        let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: wgpu asks users of experimental features to acknowledge that they may have
            // bugs. The cooperative kernels are checked against the f64 references by the op
            // tests on every GPU that runs them (tools/gpu-check), and are off with
            // ITERINV_COOP=off.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("iterinv"),
            required_features: features,
            required_limits: limits,
            experimental_features: experimental,
            ..Default::default()
        }))
        .map_err(|e| Error::Device(e.to_string()))?;
        Ok(Gpu::build(
            device,
            queue,
            info,
            false,
            options,
            coop,
            coop_shapes,
        ))
    }

    /// Adopt a device and queue that a host application owns; iterinv records into that queue.
    /// `adapter_info` may be `None` when the host does not keep its adapter.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: Option<wgpu::AdapterInfo>,
        options: GpuOptions,
    ) -> Gpu {
        let info = adapter_info.unwrap_or_else(|| wgpu::AdapterInfo {
            name: "adopted device".into(),
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Noop)
        });
        let emulated = Some((CoopKernels::Emulated, precision::EMULATED_SUBGROUP));
        let coop = match options.cooperative {
            Some(Cooperative::Emulated) => CoopChoice {
                f32: emulated,
                f16: emulated,
            },
            _ => CoopChoice::default(),
        };
        Gpu::build(device, queue, info, true, options, coop, Vec::new())
    }

    /// Adopt a host's device as [`Gpu::from_device`] does, given the adapter it came from: the
    /// adapter says which cooperative-matrix shapes the device has, so matrix products run on
    /// tensor cores where the host enabled `EXPERIMENTAL_COOPERATIVE_MATRIX` (with `SHADER_F16`
    /// and `SUBGROUP`) when requesting the device. As for every adopted device, no environment
    /// variable is read: `options.precision` (f32 when `None`) and `options.cooperative` (where
    /// offered when `None`; `Required` makes absence an error) decide.
    pub fn from_adapter(
        adapter: &wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: GpuOptions,
    ) -> Result<Gpu> {
        let info = adapter.get_info();
        let features = device.features();
        let coop_shapes = coop_shapes(adapter, features);
        let wanted = options.cooperative.unwrap_or(Cooperative::Auto);
        let precision = options.precision.unwrap_or_default();
        let coop = precision::for_adapter(wanted, precision, &info, features, &coop_shapes)?;
        Ok(Gpu::build(
            device,
            queue,
            info,
            true,
            options,
            coop,
            coop_shapes,
        ))
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: wgpu::AdapterInfo,
        adopted: bool,
        options: GpuOptions,
        coop: CoopChoice,
        coop_shapes: Vec<wgpu::CooperativeMatrixProperties>,
    ) -> Gpu {
        let limits = device.limits();
        let features = device.features();
        let mut max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if let Some(cap) = options.max_binding_size {
            max_binding = max_binding.min(cap.max(256));
        }
        let caps = Caps {
            max_binding_size: max_binding & !3,
            max_buffer_size: limits.max_buffer_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            uniform_align: limits.min_uniform_buffer_offset_alignment,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP)
                && options.subgroups != Some(false),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            cpu_kernels: options
                .cpu_kernels
                .unwrap_or(adapter.device_type == wgpu::DeviceType::Cpu),
            max_loop_iterations: match (
                (adapter.device_type == wgpu::DeviceType::Cpu).then_some(65_535),
                options.max_loop_iterations,
            ) {
                (Some(a), Some(o)) => Some(a.min(o)),
                (a, o) => a.or(o),
            },
            precision: options.precision.unwrap_or_default(),
            coop,
        };
        let profiler = options
            .profile
            .unwrap_or_else(profile::requested_by_env)
            .then(|| Profiler::new(&device, &queue));
        let fault: FaultSlot = Arc::new(Mutex::new(None));
        let recorder = Recorder::new(&device, caps.uniform_align, profiler, fault.clone());
        let dummy = Arc::new(PooledBuffer {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("iterinv absent input"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            }),
            id: 0,
            capacity: 16,
        });
        let info = GpuInfo {
            adapter,
            limits,
            features,
            caps,
            coop_shapes,
            adopted,
        };
        if !adopted {
            // Our own device: nothing of the host's to keep. Errors no scope caught and the loss
            // of the device become the next readback's error instead of wgpu's default panic.
            let slot = fault.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                fault::record(&slot, fault::classify("running kernels", &e));
            }));
            let slot = fault.clone();
            device.set_device_lost_callback(move |reason, message| {
                fault::record(&slot, Fault::Lost(format!("{reason:?}: {message}")));
            });
        }
        let pool = BufferPool::new(options.memory_budget, None);
        Gpu(Arc::new(Inner {
            device,
            queue,
            info,
            poison: options.poison,
            planning: false,
            fault,
            pool: Mutex::new(pool),
            pipelines: Mutex::new(PipelineCache::default()),
            recorder: Mutex::new(recorder),
            dummy,
        }))
    }

    /// The precision of the matrix products launched now from this thread: the device's
    /// ([`GpuOptions::precision`]) unless [`precision::scoped`] overrides it here.
    pub fn precision(&self) -> Precision {
        precision::current().unwrap_or(self.caps().precision)
    }

    /// The cooperative-matrix kernels the matrix products launched now from this thread run on,
    /// if any.
    pub fn coop(&self) -> Option<(CoopKernels, u32)> {
        self.caps().coop.at(self.precision())
    }

    pub fn info(&self) -> &GpuInfo {
        &self.0.info
    }

    pub fn caps(&self) -> &Caps {
        &self.0.info.caps
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.0.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.0.queue
    }

    /// Buffer-pool statistics: how many GPU buffers were ever created, bytes held, peak.
    pub fn pool_stats(&self) -> PoolStats {
        self.0.pool.lock().unwrap().stats()
    }

    /// Start measuring peak pool use from now.
    pub fn reset_peak(&self) {
        self.0.pool.lock().unwrap().reset_peak();
    }

    /// Compute pipelines built so far (each distinct kernel variant once).
    pub fn pipelines_built(&self) -> u64 {
        self.0.pipelines.lock().unwrap().pipelines_built
    }

    /// Submissions made so far.
    pub fn submission_count(&self) -> u64 {
        self.0.recorder.lock().unwrap().submissions
    }

    /// Submit everything recorded so far. No wait, except with profiling on: then the batch's
    /// timestamps are read back, which waits for the device to finish it.
    pub fn flush(&self) {
        self.0.recorder.lock().unwrap().flush(&self.0.queue);
    }

    /// Submit everything recorded so far and wait for the device to finish it. Returns what went
    /// wrong on the device since the last such call ([`Error::DeviceLost`], [`Error::Gpu`]).
    pub fn synchronize(&self) -> Result<()> {
        self.flush();
        self.wait()
    }

    /// Wait for the submitted work; the device's kept fault, if any.
    pub(crate) fn wait(&self) -> Result<()> {
        self.settle();
        match fault::take(&self.0.fault) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Wait for the submitted work, keeping whatever fails as the device's fault.
    fn settle(&self) {
        if fault::lost(&self.0.fault).is_none() && !self.0.planning {
            let scopes = fault::Scopes::push(&self.0.device);
            let polled = self.0.device.poll(wgpu::PollType::wait_indefinitely());
            if let Some(f) = scopes.pop("waiting for the device") {
                fault::record(&self.0.fault, f);
            }
            if let Err(e) = polled {
                fault::record(&self.0.fault, Fault::Lost(e.to_string()));
            }
        }
    }

    /// Tell iterinv that the device was lost. An application that adopted its device
    /// ([`Gpu::from_device`]) keeps its own device-lost callback and calls this from it; on a
    /// device iterinv created, its own callback does this.
    pub fn notify_device_lost(&self, message: &str) {
        fault::record(&self.0.fault, Fault::Lost(message.to_string()));
    }

    /// The memory budget: most bytes the buffer pool may hold (`None`: the device's limit).
    pub fn memory_budget(&self) -> Option<u64> {
        self.0.pool.lock().unwrap().budget
    }

    /// Set the memory budget ([`GpuOptions::memory_budget`]); idle pooled buffers past it are
    /// freed by the next allocation that needs the room.
    pub fn set_memory_budget(&self, budget: Option<u64>) {
        self.0.pool.lock().unwrap().budget = budget;
    }

    /// A planning device of the same kind as this one: same device, caps and kernel variants,
    /// but no kernel runs, no buffer is allocated and no data moves. Ops check their inputs,
    /// pick their variants and take pooled buffers exactly as here, so [`Gpu::pool_stats`] tells
    /// what a computation would hold (its peak) without running it, at any size. Readbacks give
    /// 1.0 in every f32 word, not zero: a loss that reads zero would look converged and skip the
    /// backward passes whose memory is to be counted.
    pub fn planner(&self) -> Gpu {
        self.planner_with_caps(self.caps().clone())
    }

    /// [`Gpu::planner`] for a device with other caps (e.g. a GPU's storage-binding limit and
    /// kernel variants, planned on a CPU adapter).
    pub fn planner_with_caps(&self, caps: Caps) -> Gpu {
        let fault: FaultSlot = Arc::new(Mutex::new(None));
        let device = self.0.device.clone();
        let recorder = Recorder::new(&device, caps.uniform_align, None, fault.clone());
        let pool = BufferPool::new(None, Some(self.0.dummy.buffer.clone()));
        let info = GpuInfo {
            caps,
            ..self.0.info.clone()
        };
        Gpu(Arc::new(Inner {
            device,
            queue: self.0.queue.clone(),
            info,
            // Poison mode's guard words enlarge every output buffer: planned as they are held.
            poison: self.0.poison,
            planning: true,
            fault,
            pool: Mutex::new(pool),
            pipelines: Mutex::new(PipelineCache::default()),
            recorder: Mutex::new(recorder),
            dummy: self.0.dummy.clone(),
        }))
    }

    /// Whether this is a planning device ([`Gpu::planner`]).
    pub fn is_planning(&self) -> bool {
        self.0.planning
    }

    /// Number of compute dispatches recorded since the device was created (for tests and benches).
    pub fn dispatch_count(&self) -> u64 {
        self.0.recorder.lock().unwrap().dispatches
    }

    /// Dispatches of the kernel named `kernel` since the device was created.
    pub fn kernel_dispatches(&self, kernel: &str) -> u64 {
        self.0
            .recorder
            .lock()
            .unwrap()
            .per_kernel
            .get(kernel)
            .copied()
            .unwrap_or(0)
    }

    /// In profile mode, the GPU time of every kernel variant since the device was created (or
    /// [`Gpu::profile_reset`]), after submitting what is recorded; `None` when not profiling. A
    /// profiling device dropped with dispatches not yet reported prints the report to stderr.
    pub fn profile_report(&self) -> Option<ProfileReport> {
        let mut rec = self.0.recorder.lock().unwrap();
        rec.flush(&self.0.queue);
        rec.profiler.as_mut().map(Profiler::report)
    }

    /// In profile mode, submit what is recorded and forget the profile so far, so that the next
    /// report covers only what follows (e.g. not a warm-up that compiled the pipelines).
    pub fn profile_reset(&self) {
        let mut rec = self.0.recorder.lock().unwrap();
        rec.flush(&self.0.queue);
        if let Some(p) = &mut rec.profiler {
            p.reset();
        }
    }

    /// Release every pooled buffer that no tensor holds.
    pub fn trim_pool(&self) {
        self.flush();
        self.settle();
        self.0.pipelines.lock().unwrap().clear_bind_groups();
        self.0.pool.lock().unwrap().trim();
    }
}

async fn select_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted_lc = wanted.to_lowercase();
        let adapters = instance.enumerate_adapters(backends).await;
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lc))
            .ok_or_else(|| {
                Error::NoAdapter(format!(
                    " whose name contains WGPU_ADAPTER_NAME={wanted:?}; adapters present: {names:?}"
                ))
            });
    }
    let power_preference =
        wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
    let options = wgpu::RequestAdapterOptions {
        power_preference,
        ..Default::default()
    };
    let adapters = instance.enumerate_adapters(backends).await;
    if adapters.is_empty() {
        return Err(Error::NoAdapter(format!(
            " for backends {backends:?}: install a Vulkan driver (Debian: mesa-vulkan-drivers) or set WGPU_BACKEND"
        )));
    }
    instance
        .request_adapter(&options)
        .await
        .map_err(|e| Error::NoAdapter(format!(" ({e}) among {} present", adapters.len())))
}
