//! Pipelines are compiled once per (kernel, override constants) and shared.
//!
//! Layouts are explicit, built from [`Kernel::bindings`]: with wgpu's automatic layout each
//! pipeline gets a private layout holding only the bindings the shader statically uses, and a
//! mismatch would surface late, at bind-group creation. Shader modules are cached per kernel.

use super::kernel::{Access, Kernel};
use super::Gpu;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Override constants of a pipeline (WGSL `override` declarations), by name.
pub type Overrides<'a> = &'a [(&'static str, f64)];

type Key = (Kernel, Vec<(&'static str, u64)>);

/// A compiled pipeline and the layout of its group 0.
pub struct CachedPipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// See the module docs.
#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<Kernel, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<Key, Arc<CachedPipeline>>>,
}

impl PipelineCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct pipelines built so far.
    pub fn len(&self) -> usize {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pipeline for `kernel` specialised with `overrides`, compiled on first use.
    pub fn get(&self, gpu: &Gpu, kernel: Kernel, overrides: Overrides<'_>) -> Result<Arc<CachedPipeline>> {
        let key: Key = (kernel, overrides.iter().map(|&(n, v)| (n, v.to_bits())).collect());
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(gpu, kernel)?;
        let built = gpu.checked(&format!("building pipeline {}", kernel.name()), || {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                .bindings()
                .iter()
                .enumerate()
                .map(|(i, access)| {
                    let buffer = |ty| wgpu::BindingType::Buffer {
                        ty,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    };
                    wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: match access {
                            Access::Uniform => buffer(wgpu::BufferBindingType::Uniform),
                            Access::Read => buffer(wgpu::BufferBindingType::Storage { read_only: true }),
                            Access::ReadWrite => buffer(wgpu::BufferBindingType::Storage { read_only: false }),
                            Access::TextureRead => wgpu::BindingType::StorageTexture {
                                access: wgpu::StorageTextureAccess::ReadOnly,
                                format: wgpu::TextureFormat::Rgba32Float,
                                view_dimension: wgpu::TextureViewDimension::D2,
                            },
                            Access::TextureWrite => wgpu::BindingType::StorageTexture {
                                access: wgpu::StorageTextureAccess::WriteOnly,
                                format: wgpu::TextureFormat::Rgba32Float,
                                view_dimension: wgpu::TextureViewDimension::D2,
                            },
                        },
                        count: None,
                    }
                })
                .collect();
            let layout = gpu.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.name()),
                entries: &entries,
            });
            let pipeline_layout = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name()),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(kernel.name()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: overrides,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            CachedPipeline { pipeline, layout }
        })?;
        let built = Arc::new(built);
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).insert(key, built.clone());
        Ok(built)
    }

    fn module(&self, gpu: &Gpu, kernel: Kernel) -> Result<Arc<wgpu::ShaderModule>> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|p| p.into_inner()).get(&kernel) {
            return Ok(m.clone());
        }
        let module = gpu.checked(&format!("compiling shader {}", kernel.name()), || {
            gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name()),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
            })
        })?;
        let module = Arc::new(module);
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kernel, module.clone());
        Ok(module)
    }
}
