//! `residual`: the NF-block output, `y = alpha * skip_gain * r + shortcut`.
//!
//! ```text
//! r [any] (the residual branch)   shortcut [same]   skip_gain [] (scalar; absent in timm's own
//! flavour, where it is 1)   y [same]
//! dr       = alpha * skip_gain * dy
//! dshort   = dy                           (no kernel: the caller uses dy directly)
//! dgain    = alpha * sum(dy * r)          (partials per workgroup, then sum_partials)
//! ```

use crate::error::Result;
use crate::gpu::{batch_chunks, Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_numel, check_same, chunked, sum_partials::sum_partials};

/// The block's alpha (0.2 in NFNets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Residual {
    pub alpha: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    alpha: f32,
    has_gain: u32,
    part_base: u32,
}

/// Elements each workgroup of `residual_backward` reduces (its lanes share them).
const PER_GROUP: usize = 1024;

/// The gain binding: the given gain, or a scalar placeholder the shader never reads.
pub(crate) fn gain_or_placeholder<'a>(
    gpu: &Gpu,
    op: &str,
    gain: Option<&'a GpuTensor>,
    placeholder: &'a mut Option<GpuTensor>,
) -> Result<&'a GpuTensor> {
    match gain {
        Some(g) => {
            check_numel(op, "skip gain", g, 1)?;
            Ok(g)
        }
        None => Ok(placeholder.insert(GpuTensor::zeros(gpu, "no skip gain", &[1])?)),
    }
}

/// `y = alpha * gain * r + shortcut` (gain = 1 when `gain` is `None`).
pub fn forward(gpu: &Gpu, spec: &Residual, r: &GpuTensor, shortcut: &GpuTensor, gain: Option<&GpuTensor>, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::ResidualForward;
    check_same(kernel.name(), "shortcut", r, shortcut)?;
    check_same(kernel.name(), "y", r, y)?;
    let mut placeholder = None;
    let g = gain_or_placeholder(gpu, kernel.name(), gain, &mut placeholder)?;
    let has_gain = gain.is_some() as u32;
    let mut launch = chunked(gpu, kernel, r.numel(), &[(r, 1), (shortcut, 1), (g, 0), (y, 1)], 1, 256, |_, n| {
        Params {
            len: n as u32,
            alpha: spec.alpha,
            has_gain,
            part_base: 0,
        }
    })?;
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// `dr = alpha * gain * dy` and, when `gain = Some((skip_gain, dgain))`, `dgain = alpha * sum(dy * r)`
/// (both overwritten).
pub fn backward(
    gpu: &Gpu,
    spec: &Residual,
    dy: &GpuTensor,
    r: &GpuTensor,
    gain: Option<(&GpuTensor, &GpuTensor)>,
    dr: &GpuTensor,
) -> Result<Launch> {
    let kernel = Kernel::ResidualBackward;
    let op = kernel.name();
    check_same(op, "r", dy, r)?;
    check_same(op, "dr", dy, dr)?;
    let mut placeholder = None;
    let g = gain_or_placeholder(gpu, op, gain.map(|(g, _)| g), &mut placeholder)?;
    let chunks = batch_chunks(&gpu.limits, op, dy.numel(), &[(dy.label(), 4), (r.label(), 4), (dr.label(), 4)])?;
    let parts: usize = chunks.iter().map(|&(_, n)| n.div_ceil(PER_GROUP)).sum();
    let part = GpuTensor::zeros(gpu, &format!("{} partials", dr.label()), &[if gain.is_some() { parts } else { 1 }])?;
    let mut base = 0;
    let mut launch = chunked(
        gpu,
        kernel,
        dy.numel(),
        &[(dy, 1), (r, 1), (g, 0), (dr, 1), (&part, 0)],
        1,
        PER_GROUP,
        |_, n| {
            let params = Params {
                len: n as u32,
                alpha: spec.alpha,
                has_gain: gain.is_some() as u32,
                part_base: base as u32,
            };
            base += n.div_ceil(PER_GROUP);
            params
        },
    )?;
    if let Some((_, dgain)) = gain {
        check_numel(op, "skip gain gradient", dgain, 1)?;
        launch.push(sum_partials(gpu, &part, dgain, parts, parts, spec.alpha, false)?);
    }
    launch.scratch.push(part);
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// The f64 reference.
pub mod cpu {
    use super::Residual;

    pub fn forward(spec: &Residual, r: &[f64], shortcut: &[f64], gain: Option<f64>) -> Vec<f64> {
        let a = spec.alpha as f64 * gain.unwrap_or(1.0);
        r.iter().zip(shortcut).map(|(r, s)| a * r + s).collect()
    }

    /// Returns (dr, dshortcut, dgain).
    pub fn backward(spec: &Residual, dy: &[f64], r: &[f64], gain: Option<f64>) -> (Vec<f64>, Vec<f64>, f64) {
        let alpha = spec.alpha as f64;
        let dr = dy.iter().map(|d| alpha * gain.unwrap_or(1.0) * d).collect();
        let dgain = alpha * dy.iter().zip(r).map(|(d, r)| d * r).sum::<f64>();
        (dr, dy.to_vec(), dgain)
    }
}
