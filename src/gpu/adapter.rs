//! Adapters: listing every adapter wgpu finds, most capable first, and choosing one (see the
//! [`super`] docs for the order and the selectors).

use crate::error::{Error, Result};

/// What `nfnet devices` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    pub workgroup_storage: u32,
    pub invocations_per_workgroup: u32,
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "[{}] {} ({:?}, {:?})\n    driver: {} {}\n    max storage binding: {:.0} MiB, max buffer: {:.0} MiB, \
             workgroup storage: {} KiB, invocations/workgroup: {}\n    f16: {}, subgroups: {}, timestamps: {}",
            self.index,
            self.name,
            self.backend,
            self.device_type,
            self.driver,
            self.driver_info,
            mib(self.max_storage_binding),
            mib(self.max_buffer),
            self.workgroup_storage / 1024,
            self.invocations_per_workgroup,
            yes_no(self.shader_f16),
            yes_no(self.subgroups),
            yes_no(self.timestamps),
        )
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// An instance over `backends`, or over `WGPU_BACKEND`'s choice (default: all) when `None`.
fn instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    wgpu::Instance::new(desc)
}

/// Rank for "high-performance first": lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::BrowserWebGpu => 1,
        _ => 2,
    };
    (device, backend)
}

async fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    // A page sees one adapter: the one the browser hands out.
    #[cfg(target_arch = "wasm32")]
    let mut adapters: Vec<wgpu::Adapter> = (instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .await
    .into_iter()
    .collect();
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

#[cfg(not(target_arch = "wasm32"))]
fn summary(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterSummary {
        index,
        name: info.name,
        backend: info.backend,
        device_type: info.device_type,
        driver: info.driver,
        driver_info: info.driver_info,
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_buffer: limits.max_buffer_size,
        workgroup_storage: limits.max_compute_workgroup_storage_size,
        invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
    }
}

/// Every adapter wgpu finds, most capable first (the order `NFNET_ADAPTER=<index>` refers to).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Vec<AdapterSummary> {
    pollster::block_on(sorted_adapters(&instance(None)))
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

fn no_adapter_hint() -> String {
    if let Ok(backend) = std::env::var("WGPU_BACKEND") {
        let mut hint = format!("WGPU_BACKEND={backend} limits the search to that API; unset it to look at every backend.");
        if cfg!(target_os = "linux") && backend.trim().eq_ignore_ascii_case("gl") {
            hint += " For GL without a GPU, Mesa's llvmpipe through EGL works: `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri`.";
        }
        hint
    } else if cfg!(target_os = "linux") {
        "Install a Vulkan driver; on Linux without a GPU the software device lavapipe works: \
         `apt-get install mesa-vulkan-drivers`."
            .into()
    } else {
        "Install or update the GPU driver (Vulkan, Metal or DX12).".into()
    }
}

/// The adapter `selector` picks (an index into [`list_adapters`] or a case-insensitive name
/// substring), else the most capable one.
pub(super) async fn choose(selector: Option<String>) -> Result<wgpu::Adapter> {
    // Without a selector or WGPU_BACKEND, look at the native APIs first: GL is a fallback
    // (and initialising it prints platform noise on headless Linux).
    let mut adapters = Vec::new();
    if selector.is_none() && std::env::var_os("WGPU_BACKEND").is_none() {
        adapters = sorted_adapters(&instance(Some(wgpu::Backends::PRIMARY))).await;
    }
    if adapters.is_empty() {
        adapters = sorted_adapters(&instance(None)).await;
    }
    if adapters.is_empty() {
        return Err(Error::NoAdapter { hint: no_adapter_hint() });
    }
    let Some(sel) = selector else {
        return Ok(adapters.swap_remove(0));
    };
    let found = match sel.trim().parse::<usize>() {
        Ok(i) => (i < adapters.len()).then_some(i),
        Err(_) => {
            let needle = sel.to_lowercase();
            adapters.iter().position(|a| a.get_info().name.to_lowercase().contains(&needle))
        }
    };
    match found {
        Some(i) => Ok(adapters.swap_remove(i)),
        None => Err(Error::AdapterNotFound {
            selector: sel.clone(),
            available: adapters
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let info = a.get_info();
                    format!("  [{i}] {} ({:?})", info.name, info.backend)
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }),
    }
}
