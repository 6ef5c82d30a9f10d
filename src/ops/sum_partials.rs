//! `sum_partials`: the aggregate pass of every two-pass reduction.
//!
//! ```text
//! part [parts, len]   out [len]
//! out[i] (+)= scale * (part[0,i] + part[1,i] + ... + part[parts-1,i])   (in that order)
//! ```
//! Used for conv weight and bias gradients, the skip-gain gradient and the mean loss.

use crate::error::{Error, Result};
use crate::gpu::{grid, Gpu, GpuTensor, Kernel, Step};
use crate::ops::check_numel;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    parts: u32,
    scale: f32,
    accumulate: u32,
}

/// The step that sums the first `parts` rows of `part` (which holds `capacity` rows) into `out`,
/// overwriting it, or adding to it if `accumulate`.
pub fn sum_partials(
    gpu: &Gpu,
    part: &GpuTensor,
    out: &GpuTensor,
    parts: usize,
    capacity: usize,
    scale: f32,
    accumulate: bool,
) -> Result<Step> {
    let op = Kernel::SumPartials.name();
    let len = out.numel();
    check_numel(op, "partials", part, capacity * len)?;
    if parts == 0 || parts > capacity {
        return Err(Error::shape(op, "partial rows", format!("1..={capacity}"), parts));
    }
    let params = Params {
        len: len as u32,
        parts: parts as u32,
        scale,
        accumulate: accumulate as u32,
    };
    Step::new(
        gpu,
        Kernel::SumPartials,
        &[],
        &params,
        &[part.into(), out.into()],
        grid(&gpu.limits, op, len.div_ceil(64))?,
    )
}

pub mod cpu {
    /// Sums `parts` rows of length `len`, times `scale`.
    pub fn sum_partials(part: &[f64], parts: usize, scale: f64) -> Vec<f64> {
        let len = part.len() / parts;
        (0..len)
            .map(|i| scale * (0..parts).map(|z| part[z * len + i]).sum::<f64>())
            .collect()
    }
}
