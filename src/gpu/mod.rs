//! The GPU context: one adapter, one device, one queue, the pipeline cache, and the error sink.
//!
//! Adapter choice, in order:
//! 1. `GpuOptions::adapter` (a library option), else the `NFNET_ADAPTER` environment variable:
//!    a number picks the adapter at that index of [`list_adapters`] (the order `nfnet devices`
//!    prints), anything else picks the first adapter whose name contains it (case-insensitive).
//! 2. Otherwise the most capable adapter: discrete GPU, integrated, virtual, other, CPU; native
//!    APIs (Vulkan, Metal, DX12) before GL at the same rank.
//!
//! wgpu's own `WGPU_BACKEND` variable (`vulkan`, `metal`, `dx12`, `gl`) limits the backends that
//! are searched at all.
//!
//! The device is opened with the adapter's own limits (largest storage binding, largest buffer,
//! workgroup storage), so the engine never works below what the hardware allows; or, with
//! [`LimitsChoice::WebGpuDefaults`] (`NFNET_LIMITS=webgpu`), with the limits every WebGPU device
//! offers, which the engine also runs within. Validation errors do not abort: an
//! uncaptured-error handler records them, and [`Gpu::checked`] and [`Gpu::run`] turn them into
//! [`Error::Wgpu`].
//!
//! Three ways in: [`Gpu::new`] / [`Gpu::with_options`] (blocking, native), [`Gpu::request`]
//! (async: the browser's way, where nothing may block), and [`Gpu::from_device`], the engine on
//! a device an application opened itself (a Bevy or egui renderer's). Host reads are async at
//! the core ([`GpuTensor::read_f32_async`], [`Gpu::map_read`]); natively each has a blocking
//! twin that waits on the device.

mod adapter;
mod kernel;
mod pipeline;
pub mod step;
mod tensor;
mod timer;

#[cfg(not(target_arch = "wasm32"))]
pub use adapter::list_adapters;
pub use adapter::AdapterSummary;
pub use kernel::{Access, Kernel};
pub use pipeline::Overrides;
pub use pipeline::PipelineCache;
pub use step::{batch_chunks, grid, Arg, Launch, Step};
pub use tensor::{DType, GpuTensor, Readback, TEXTURE_WIDTH};
pub use timer::GpuTimer;

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The smallest limits the kernels are written for. Every adapter with WebGPU's defaults has them.
const NEED_STORAGE_BUFFERS: u32 = 7;
const NEED_INVOCATIONS: u32 = 256;

/// How to choose the adapter and open its device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// An index into [`list_adapters`] or a case-insensitive name substring. `None` falls back to
    /// the `NFNET_ADAPTER` environment variable, then to the most capable adapter.
    pub adapter: Option<String>,
    /// Caps the largest storage binding below the adapter's (to exercise or emulate the split
    /// of large tensors, e.g. lavapipe's 128 MiB on a GPU that allows more).
    pub max_storage_binding: Option<u64>,
    /// Lanes of the workgroup-tree reductions (`shaders/common/reduce.wgsl`): a power of two
    /// from 1 to 64. `None` picks per adapter ([`Gpu::reduce_lanes`]); tests set it to run the
    /// other adapters' width on this one.
    pub reduce_lanes: Option<u32>,
    /// The adapter's limits or WebGPU's defaults; `None` falls back to the `NFNET_LIMITS`
    /// environment variable (`adapter` or `webgpu`), then to the adapter's.
    pub limits: Option<LimitsChoice>,
}

/// Which limits the device is opened with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitsChoice {
    /// The adapter's own: the engine never works below what the hardware allows.
    #[default]
    Adapter,
    /// WebGPU's defaults, which every WebGPU device offers: 8 storage buffers per shader stage,
    /// 128 MiB per storage binding, 256 MiB per buffer, 16 KiB of workgroup storage, 256
    /// invocations per workgroup. The engine runs within them (a browser tab that asks for
    /// nothing gets these); tests use them to show it.
    WebGpuDefaults,
}

impl std::str::FromStr for LimitsChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<LimitsChoice> {
        match s.trim() {
            "adapter" => Ok(LimitsChoice::Adapter),
            "webgpu" => Ok(LimitsChoice::WebGpuDefaults),
            other => Err(Error::invalid("limits", format!("expected `adapter` or `webgpu`, got `{other}`"))),
        }
    }
}

impl GpuOptions {
    /// The limits to open a device with on an adapter offering `adapter`: the choice of
    /// `self.limits`, else of the `NFNET_LIMITS` environment variable (`adapter` or `webgpu`),
    /// capped by `max_storage_binding`.
    fn limits_for(&self, adapter: &wgpu::Limits) -> Result<wgpu::Limits> {
        let choice = match self.limits {
            Some(choice) => choice,
            None => match std::env::var("NFNET_LIMITS") {
                Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e: Error| Error::invalid("NFNET_LIMITS", e))?,
                _ => LimitsChoice::Adapter,
            },
        };
        let mut limits = match choice {
            LimitsChoice::Adapter => adapter.clone(),
            LimitsChoice::WebGpuDefaults => wgpu::Limits::default(),
        };
        if let Some(cap) = self.max_storage_binding {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(cap);
        }
        Ok(limits)
    }
}

fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?})", info.name, info.backend)
}

/// A typed error unless `limits` hold what the kernels are written for.
fn check_limits(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Result<()> {
    if limits.max_storage_buffers_per_shader_stage < NEED_STORAGE_BUFFERS || limits.max_compute_invocations_per_workgroup < NEED_INVOCATIONS
    {
        return Err(Error::RequestDevice {
            adapter: describe_adapter(info),
            message: format!(
                "the kernels need {NEED_STORAGE_BUFFERS} storage buffers per shader stage and {NEED_INVOCATIONS} \
                 invocations per workgroup; the device offers {} and {}",
                limits.max_storage_buffers_per_shader_stage, limits.max_compute_invocations_per_workgroup
            ),
        });
    }
    Ok(())
}

/// The features the engine asks for when the adapter offers them, and uses only where present.
const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::SUBGROUP);

/// The engine's handle on one GPU. Cheap to share by reference; everything is built once.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pipelines: PipelineCache,
    errors: Arc<Mutex<Vec<String>>>,
    counters: Counters,
    reduce_lanes: u32,
}

/// What the context has created and submitted so far: the tests check that a planned training
/// step creates nothing and submits once.
#[derive(Debug, Default)]
struct Counters {
    buffers: AtomicU64,
    bind_groups: AtomicU64,
    submits: AtomicU64,
}

/// A snapshot of [`Gpu::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Buffers created (tensors, uniforms, staging).
    pub buffers: u64,
    pub bind_groups: u64,
    pub submits: u64,
}

impl Gpu {
    /// Opens the adapter chosen by `NFNET_ADAPTER`, or the most capable one.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Gpu> {
        Gpu::with_options(&GpuOptions::default())
    }

    /// Opens the adapter that `options` (or `NFNET_ADAPTER`) picks.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(options: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Gpu::request(options))
    }

    /// Opens the adapter that `options` (or `NFNET_ADAPTER`) picks, without blocking: the form
    /// a browser needs (there the adapter is the page's WebGPU one).
    pub async fn request(options: &GpuOptions) -> Result<Gpu> {
        let selector = (options.adapter.clone()).or_else(|| std::env::var("NFNET_ADAPTER").ok().filter(|s| !s.is_empty()));
        let adapter = adapter::choose(selector).await?;
        let info = adapter.get_info();
        let limits = options.limits_for(&adapter.limits())?;
        check_limits(&info, &limits)?;
        // Timestamps let benchmarks split GPU time per kernel; subgroups let the tuner offer the
        // conv kernels that share loads across a subgroup. Nothing else depends on either.
        let features = adapter.features() & OPTIONAL_FEATURES;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("nfnet"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: describe_adapter(&info),
                message: e.to_string(),
            })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("device lost ({reason:?}): {message}"));
        });
        Gpu::assemble(info, device, queue, limits, errors, options)
    }

    /// The engine on a device the application already owns (a Bevy or egui renderer's): `info`
    /// names its adapter, `device` and `queue` are clones of the application's handles. The
    /// limits and features are the device's own (so it must have been opened with at least 7
    /// storage buffers per shader stage and 256 invocations per workgroup); the engine keeps
    /// its hands off the device's callbacks, so uncaptured errors still reach the application,
    /// and the engine's own calls are checked with error scopes. `options.adapter` and
    /// `options.limits` do not apply (the device is open already).
    pub fn from_device(info: wgpu::AdapterInfo, device: wgpu::Device, queue: wgpu::Queue, options: &GpuOptions) -> Result<Gpu> {
        let mut limits = device.limits();
        if let Some(cap) = options.max_storage_binding {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(cap);
        }
        check_limits(&info, &limits)?;
        Gpu::assemble(info, device, queue, limits, Arc::default(), options)
    }

    fn assemble(
        info: wgpu::AdapterInfo,
        device: wgpu::Device,
        queue: wgpu::Queue,
        limits: wgpu::Limits,
        errors: Arc<Mutex<Vec<String>>>,
        options: &GpuOptions,
    ) -> Result<Gpu> {
        // A CPU adapter (lavapipe, SwiftShader, WARP) runs a workgroup as a loop over SIMD-wide
        // chunks of lanes and pays for every barrier by switching between them: a reduction is
        // fastest there with one 8-lane chunk (a 256-bit vector), far faster than 64 lanes for
        // weight standardization and AGC. GPUs want whole warps and waves.
        let reduce_lanes = match options.reduce_lanes {
            Some(lanes) if lanes.is_power_of_two() && lanes <= 64 => lanes,
            Some(lanes) => {
                return Err(Error::invalid(
                    "reduce_lanes",
                    format!("expected a power of two from 1 to 64, got {lanes}"),
                ))
            }
            None if info.device_type == wgpu::DeviceType::Cpu => 8,
            None => 64,
        };
        Ok(Gpu {
            pipelines: PipelineCache::new(),
            features: device.features() & OPTIONAL_FEATURES,
            device,
            queue,
            info,
            limits,
            errors,
            counters: Counters::default(),
            reduce_lanes,
        })
    }

    /// One line naming the adapter, for logs and test output.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name, self.info.backend, self.info.device_type, self.info.driver, self.info.driver_info
        )
    }

    /// Lanes of every workgroup-tree reduction on this adapter ([`GpuOptions::reduce_lanes`]):
    /// 8 on CPU adapters, 64 on GPUs. It fixes the summation order, so results are bitwise
    /// reproducible per adapter (and this setting), not across adapters.
    pub fn reduce_lanes(&self) -> u32 {
        self.reduce_lanes
    }

    /// Whether the conv kernels that share loads across a subgroup (the `_subgroup` kernels of
    /// `ops::grouped_conv`) run here: the device has `SUBGROUP`, its subgroups have 8 to 64 lanes (they broadcast
    /// from lanes 0..7 and tile a 64-lane workgroup), and the backend is not a browser's, whose
    /// WGSL would need `enable subgroups;`, which naga does not take.
    pub fn shares_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
            && self.info.subgroup_min_size >= 8
            && self.info.subgroup_max_size <= 64
            && self.info.backend != wgpu::Backend::BrowserWebGpu
    }

    /// Whether kernels that pass over a unit twice (weight standardization, the AGC update
    /// summing its own norms) keep each lane's share of it in private memory between the passes
    /// and so read it once: on CPU adapters, where that memory is the thread's stack, for units
    /// of up to 48 4-element chunks per lane (1536 values with 8 lanes). GPUs would spill the
    /// arrays (the `KEEP` constant of `shaders/common/reduce.wgsl`).
    pub fn keeps_units(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The pipeline cache: one compiled pipeline per kernel, built on first use.
    pub fn pipelines(&self) -> &PipelineCache {
        &self.pipelines
    }

    /// Runs `f` (which creates wgpu objects) and returns any validation or out-of-memory error it
    /// caused as [`Error::Wgpu`] naming `context`, instead of letting wgpu abort.
    ///
    /// In a browser an error scope answers only later, through the event loop: there `f` runs
    /// unscoped, and its errors reach the uncaptured-error handler and surface at the next
    /// [`Gpu::take_errors`] (every run and read-back calls it).
    pub fn checked<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let out = f();
            let oom = pollster::block_on(memory.pop());
            let invalid = pollster::block_on(validation.pop());
            if let Some(e) = oom.or(invalid) {
                return Err(Error::Wgpu {
                    context: context.into(),
                    message: e.to_string(),
                });
            }
            self.take_errors(context).map(|_| out)
        }
        #[cfg(target_arch = "wasm32")]
        {
            let out = f();
            self.take_errors(context).map(|_| out)
        }
    }

    /// Returns the errors recorded by the uncaptured-error handler since the last call.
    pub fn take_errors(&self, context: &str) -> Result<()> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let message = errors.drain(..).collect::<Vec<_>>().join("; ");
        Err(Error::Wgpu {
            context: context.into(),
            message,
        })
    }

    /// Creation and submission counts so far.
    pub fn counters(&self) -> CounterSnapshot {
        CounterSnapshot {
            buffers: self.counters.buffers.load(Ordering::Relaxed),
            bind_groups: self.counters.bind_groups.load(Ordering::Relaxed),
            submits: self.counters.submits.load(Ordering::Relaxed),
        }
    }

    /// A storage buffer (every tensor's memory), created under an error scope.
    pub(crate) fn create_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.checked(&format!("allocating {label}"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// An rgba32float texture of `width` x `height` texels that kernels sample and store to
    /// (texture-backed tensors), created under an error scope.
    pub(crate) fn create_texture(&self, label: &str, width: u32, height: u32) -> Result<wgpu::Texture> {
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.checked(&format!("allocating {label}"), || {
            self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::COPY_SRC
                    | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        })
    }

    /// A buffer the host can map to read `bytes` back.
    pub(crate) fn create_staging(&self, bytes: u64) -> Result<wgpu::Buffer> {
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.checked("allocating a readback buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// A uniform buffer holding `bytes` (a step's `Params`).
    pub(crate) fn create_uniform(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    /// Creates a bind group (counted).
    pub(crate) fn create_bind_group(&self, desc: &wgpu::BindGroupDescriptor) -> wgpu::BindGroup {
        self.counters.bind_groups.fetch_add(1, Ordering::Relaxed);
        self.device.create_bind_group(desc)
    }

    /// Submits one command buffer (counted).
    pub fn submit(&self, commands: wgpu::CommandBuffer) -> wgpu::SubmissionIndex {
        self.counters.submits.fetch_add(1, Ordering::Relaxed);
        self.queue.submit([commands])
    }

    /// Encodes `launches` into one command buffer with one compute pass, submits it once, and
    /// waits for the GPU to finish.
    pub fn run(&self, launches: &[&Launch]) -> Result<()> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nfnet run") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("nfnet run"),
                timestamp_writes: None,
            });
            for launch in launches {
                launch.encode(&mut pass);
            }
        }
        self.submit(encoder.finish());
        self.wait()?;
        self.take_errors("run")
    }

    /// Blocks until all submitted work is done. In a browser it returns at once: the queue
    /// keeps submissions in order, and host reads wait through [`Gpu::map_read`].
    pub fn wait(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        return Ok(());
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Wgpu {
                context: "waiting for the GPU".into(),
                message: e.to_string(),
            })
    }

    /// Maps `buffer` (MAP_READ, its copy already submitted) and returns its first `bytes`
    /// bytes, unmapping it again. Natively it blocks in [`Gpu::wait`] and the future is ready
    /// at once; in a browser the future resolves when the event loop delivers the map.
    pub async fn map_read(&self, buffer: &wgpu::Buffer, bytes: u64, label: &str) -> Result<Vec<u8>> {
        self.map_read_after(buffer, bytes, label, None).await
    }

    /// [`Gpu::map_read`] of a buffer whose copy went with submission `after`: natively it waits
    /// for that submission alone, and the GPU goes on with later ones meanwhile.
    pub async fn map_read_after(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        label: &str,
        after: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<u8>> {
        let fail = |message: String| Error::Readback {
            label: label.into(),
            message,
        };
        let (tx, rx) = futures_channel::oneshot::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        match after {
            #[cfg(not(target_arch = "wasm32"))]
            Some(index) => self
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map(|_| ())
                .map_err(|e| fail(e.to_string()))?,
            _ => self.wait()?,
        }
        rx.await.map_err(|e| fail(e.to_string()))?.map_err(|e| fail(e.to_string()))?;
        let mut out = buffer.get_mapped_range(..).map_err(|e| fail(e.to_string()))?.to_vec();
        out.truncate(bytes as usize);
        buffer.unmap();
        self.take_errors(&format!("reading {label}"))?;
        Ok(out)
    }
}
