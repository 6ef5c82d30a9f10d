//! Steps: a pipeline, a bind group and a workgroup count, built once and replayed.
//!
//! An op's launcher checks its shapes, fills the kernel's `Params`, and returns a [`Launch`]:
//! the steps to encode, in order, plus any scratch buffers they use (partial sums). Encoding a
//! launch is infallible and allocates nothing, so a training step can replay thousands of them.
//!
//! Tensors larger than one storage binding: launchers of batch-separable ops split the batch
//! with [`batch_chunks`] and bind each chunk's sub-range of the tensors, one step per chunk.
//! [`Step::new`] is the last line of defence: a binding that still exceeds the adapter's
//! `max_storage_buffer_binding_size` is a typed [`Error::Limit`] naming the tensor, before any work.

use super::pipeline::{CachedPipeline, Overrides};
use super::{Access, Gpu, GpuTensor, Kernel};
use crate::error::{Error, Result};
use std::sync::Arc;

/// One binding of a step: a tensor, or a range of its elements.
#[derive(Clone, Copy, Debug)]
pub struct Arg<'a> {
    pub tensor: &'a GpuTensor,
    /// First element bound.
    pub offset: usize,
    /// Number of elements bound.
    pub len: usize,
}

impl<'a> Arg<'a> {
    /// Elements `offset..offset + len` of `tensor`.
    pub fn range(tensor: &'a GpuTensor, offset: usize, len: usize) -> Arg<'a> {
        Arg { tensor, offset, len }
    }
}

impl<'a> From<&'a GpuTensor> for Arg<'a> {
    fn from(tensor: &'a GpuTensor) -> Arg<'a> {
        Arg {
            tensor,
            offset: 0,
            len: tensor.numel(),
        }
    }
}

/// One dispatch, ready to encode.
pub struct Step {
    kernel: Kernel,
    pipeline: Arc<CachedPipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl Step {
    /// Builds the dispatch of `kernel` over `args` (bindings 1..) with `params` (binding 0).
    pub fn new<P: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: Kernel,
        overrides: Overrides<'_>,
        params: &P,
        args: &[Arg],
        workgroups: [u32; 3],
    ) -> Result<Step> {
        let bindings = kernel.bindings();
        if args.len() + 1 != bindings.len() {
            return Err(Error::shape(kernel.name(), "bindings", bindings.len() - 1, args.len()));
        }
        let limits = &gpu.limits;
        for (i, (arg, access)) in args.iter().zip(&bindings[1..]).enumerate() {
            let wants_texture = matches!(access, Access::TextureRead | Access::TextureWrite);
            if wants_texture != arg.tensor.is_texture() || (wants_texture && (arg.offset, arg.len) != (0, arg.tensor.numel())) {
                let wanted = if wants_texture {
                    "a whole texture-backed tensor"
                } else {
                    "a buffer-backed tensor"
                };
                return Err(Error::invalid(
                    kernel.name(),
                    format!("binding {} takes {wanted}; {} is not one", i + 1, arg.tensor.label()),
                ));
            }
            if wants_texture {
                continue;
            }
            let bytes = arg.len as u64 * 4;
            if bytes > limits.max_storage_buffer_binding_size {
                return Err(Error::Limit {
                    op: kernel.name().into(),
                    what: format!("binding of {} {:?}", arg.tensor.label(), arg.tensor.shape()),
                    need: bytes,
                    have: limits.max_storage_buffer_binding_size,
                    limit: "max_storage_buffer_binding_size",
                });
            }
            if arg.offset + arg.len > arg.tensor.numel() || arg.len == 0 {
                return Err(Error::shape(
                    kernel.name(),
                    arg.tensor.label(),
                    format!("a non-empty range within {} elements", arg.tensor.numel()),
                    format!("{}..{}", arg.offset, arg.offset + arg.len),
                ));
            }
        }
        if let Some(&w) = workgroups.iter().find(|&&w| w > limits.max_compute_workgroups_per_dimension) {
            return Err(Error::Limit {
                op: kernel.name().into(),
                what: "workgroups in one dimension".into(),
                need: w as u64,
                have: limits.max_compute_workgroups_per_dimension as u64,
                limit: "max_compute_workgroups_per_dimension",
            });
        }
        // Kernels with workgroup-tree reductions take the adapter's lane count, and whether
        // their lanes keep a unit in private memory between two passes over it.
        let mut constants = overrides.to_vec();
        if kernel.preludes().contains(&"reduce") {
            constants.push(("REDUCE_WG", gpu.reduce_lanes() as f64));
            constants.push(("KEEP", f64::from(u8::from(gpu.keeps_units()))));
        }
        let pipeline = gpu.pipelines().get(gpu, kernel, &constants)?;
        let bind_group = gpu.checked(&format!("binding {}", kernel.name()), || {
            let uniform = gpu.create_uniform(kernel.name(), bytemuck::bytes_of(params));
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }];
            for (i, arg) in args.iter().enumerate() {
                let resource = match arg.tensor.texture_view() {
                    Some(view) => wgpu::BindingResource::TextureView(view),
                    None => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: arg.tensor.buffer()?,
                        offset: arg.offset as u64 * 4,
                        size: wgpu::BufferSize::new(arg.len as u64 * 4),
                    }),
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource,
                });
            }
            Ok(gpu.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name()),
                layout: &pipeline.layout,
                entries: &entries,
            }))
        })??;
        Ok(Step {
            kernel,
            pipeline,
            bind_group,
            workgroups,
        })
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    pub fn workgroups(&self) -> [u32; 3] {
        self.workgroups
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// The steps of one op call, in order, and the scratch tensors they use.
#[derive(Default)]
pub struct Launch {
    pub steps: Vec<Step>,
    pub scratch: Vec<GpuTensor>,
}

impl Launch {
    pub fn new() -> Launch {
        Launch::default()
    }

    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Appends another launch's steps (and keeps its scratch alive).
    pub fn extend(&mut self, other: Launch) {
        self.steps.extend(other.steps);
        self.scratch.extend(other.scratch);
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass) {
        for step in &self.steps {
            step.encode(pass);
        }
    }
}

impl From<Step> for Launch {
    /// A launch of one step.
    fn from(step: Step) -> Launch {
        Launch {
            steps: vec![step],
            scratch: vec![],
        }
    }
}

/// Workgroup counts for a 1-D launch of `groups` workgroups, folded into x and y so that no
/// dimension exceeds the adapter's limit. Shaders recover the flat index with `flat_group()`.
pub fn grid(limits: &wgpu::Limits, op: &str, groups: usize) -> Result<[u32; 3]> {
    let max = limits.max_compute_workgroups_per_dimension as usize;
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x).max(1);
    if y > max {
        return Err(Error::Limit {
            op: op.into(),
            what: format!("{groups} workgroups"),
            need: groups as u64,
            have: (max * max) as u64,
            limit: "max_compute_workgroups_per_dimension squared",
        });
    }
    Ok([x as u32, y as u32, 1])
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Splits a batch of `n` samples into chunks `(first, count)` such that, for every batch-major
/// tensor of the op (given as its label and its bytes per sample), one chunk's slice fits one
/// storage binding and starts at an offset the adapter can bind.
///
/// Most calls return one chunk. An error names the tensor when even the smallest alignable
/// chunk is too large for one binding.
pub fn batch_chunks(limits: &wgpu::Limits, op: &str, n: usize, per_sample: &[(&str, u64)]) -> Result<Vec<(usize, usize)>> {
    let limit = limits.max_storage_buffer_binding_size;
    let align = limits.min_storage_buffer_offset_alignment as u64;
    let (mut max_count, mut step) = (n as u64, 1u64);
    for &(_, bytes) in per_sample.iter().filter(|(_, b)| *b > 0) {
        max_count = max_count.min(limit / bytes);
        let m = align / gcd(align, bytes);
        step = step / gcd(step, m) * m;
    }
    if max_count >= n as u64 {
        return Ok(vec![(0, n)]);
    }
    let chunk = (max_count / step * step) as usize;
    if chunk == 0 {
        // Name the first of the largest tensors (the op's input, in launcher order).
        let &(label, bytes) = per_sample.iter().fold(&per_sample[0], |big, t| if t.1 > big.1 { t } else { big });
        return Err(Error::Limit {
            op: op.into(),
            what: format!("{label}: the smallest bindable batch slice ({step} sample(s) of {bytes} bytes)"),
            need: bytes * step,
            have: limit,
            limit: "max_storage_buffer_binding_size",
        });
    }
    Ok((0..n).step_by(chunk).map(|first| (first, chunk.min(n - first))).collect())
}
