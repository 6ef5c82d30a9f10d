//! `se_residual`: the end of an NF block with squeeze-excite in one kernel each way: the SE gate,
//! the skip gain and the residual add ([`se_gate`] then [`residual`]), without the gated branch
//! in memory.
//!
//! ```text
//! s [N, C] (fc2's output)   r [N, C, H, W] (conv3's output)   shortcut [N, C, H, W]   skip_gain [] (optional)
//! y  = alpha * skip_gain * (se_gain * sigmoid(s) * r) + shortcut
//! dr (+)= alpha * skip_gain * dy * se_gain * sigmoid(s)                 (+= for r's other consumer, the squeeze)
//! ds  = se_gain * sigmoid(s) * (1 - sigmoid(s)) * alpha * skip_gain * sum_{h,w} dy * r
//! dskip_gain = alpha * sum dy * se_gain * sigmoid(s) * r                (partials per (n, c), then sum_partials)
//! ```
//! The shortcut's gradient is dy itself, as in [`residual`]. The model uses these where nothing
//! sits between the gate and the add (no drop path in training).

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::residual::{gain_or_placeholder, Residual};
use crate::ops::se_gate::SeGate;
use crate::ops::{check_numel, check_shape, chunked, sum_partials::sum_partials};

#[cfg(doc)]
use crate::ops::{residual, se_gate};

/// The gate's shape and gain, and the residual's alpha.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeResidual {
    pub gate: SeGate,
    pub residual: Residual,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    hw: u32,
    se_gain: f32,
    alpha: f32,
    has_gain: u32,
    part_base: u32,
    accumulate: u32,
    _pad: u32,
}

impl SeResidual {
    fn params(&self, planes: usize, has_gain: bool, part_base: usize, accumulate: bool) -> Params {
        Params {
            planes: planes as u32,
            hw: (self.gate.h * self.gate.w) as u32,
            se_gain: self.gate.gain,
            alpha: self.residual.alpha,
            has_gain: has_gain as u32,
            part_base: part_base as u32,
            accumulate: accumulate as u32,
            _pad: 0,
        }
    }

    /// The gate's checks of `s` and `r`, then `others` shaped as `r`.
    fn check(&self, op: &str, s: &GpuTensor, r: &GpuTensor, others: &[(&str, &GpuTensor)]) -> Result<()> {
        self.gate.check(op, s, r)?;
        for (what, t) in others {
            check_shape(op, what, t, &self.gate.r_shape())?;
        }
        Ok(())
    }
}

/// `y = alpha * skip_gain * se_gain * sigmoid(s) * r + shortcut` (skip gain 1 when `gain` is `None`).
pub fn forward(
    gpu: &Gpu,
    spec: &SeResidual,
    s: &GpuTensor,
    r: &GpuTensor,
    shortcut: &GpuTensor,
    gain: Option<&GpuTensor>,
    y: &GpuTensor,
) -> Result<Launch> {
    let kernel = Kernel::SeResidualForward;
    spec.check(kernel.name(), s, r, &[("shortcut", shortcut), ("y", y)])?;
    let mut placeholder = None;
    let g = gain_or_placeholder(gpu, kernel.name(), gain, &mut placeholder)?;
    let (planes, hw) = (spec.gate.n * spec.gate.c, spec.gate.h * spec.gate.w);
    let tensors = [(s, 1), (r, hw), (shortcut, hw), (g, 0), (y, hw)];
    let mut launch = chunked(gpu, kernel, planes, &tensors, hw, 256, |_, n| {
        spec.params(n, gain.is_some(), 0, false)
    })?;
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// `dr (+)= ...` (accumulate for r's other consumer, the squeeze), `ds = ...` and, when
/// `gain = Some((skip_gain, dskip_gain))`, `dskip_gain = ...` (both overwritten).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    spec: &SeResidual,
    dy: &GpuTensor,
    s: &GpuTensor,
    r: &GpuTensor,
    gain: Option<(&GpuTensor, &GpuTensor)>,
    dr: &GpuTensor,
    ds: &GpuTensor,
    accumulate: bool,
) -> Result<Launch> {
    let kernel = Kernel::SeResidualBackward;
    let op = kernel.name();
    spec.check(op, s, r, &[("dy", dy), ("dr", dr)])?;
    check_shape(op, "ds", ds, &[spec.gate.n, spec.gate.c])?;
    let mut placeholder = None;
    let g = gain_or_placeholder(gpu, op, gain.map(|(g, _)| g), &mut placeholder)?;
    let (planes, hw) = (spec.gate.n * spec.gate.c, spec.gate.h * spec.gate.w);
    // One partial sum per plane for the skip gain's gradient.
    let part = GpuTensor::zeros(gpu, &format!("{} partials", dr.label()), &[if gain.is_some() { planes } else { 1 }])?;
    let lanes = gpu.reduce_lanes() as usize;
    let tensors = [(dy, hw), (s, 1), (r, hw), (g, 0), (dr, hw), (ds, 1), (&part, 0)];
    let mut launch = chunked(gpu, kernel, planes, &tensors, lanes, lanes, |first, n| {
        spec.params(n, gain.is_some(), first, accumulate)
    })?;
    if let Some((_, dgain)) = gain {
        check_numel(op, "skip gain gradient", dgain, 1)?;
        launch.push(sum_partials(gpu, &part, dgain, planes, planes, spec.residual.alpha, false)?);
    }
    launch.scratch.push(part);
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// The f64 reference: the composition of [`se_gate`]'s and [`residual`]'s references.
pub mod cpu {
    use super::SeResidual;
    use crate::ops::{residual, se_gate};

    pub fn forward(spec: &SeResidual, s: &[f64], r: &[f64], shortcut: &[f64], gain: Option<f64>) -> Vec<f64> {
        let gated = se_gate::cpu::forward(&spec.gate, s, r);
        residual::cpu::forward(&spec.residual, &gated, shortcut, gain)
    }

    /// Returns (dr, ds, dgain) (dr without r's other consumers; the shortcut's gradient is dy).
    pub fn backward(spec: &SeResidual, dy: &[f64], s: &[f64], r: &[f64], gain: Option<f64>) -> (Vec<f64>, Vec<f64>, f64) {
        let gated = se_gate::cpu::forward(&spec.gate, s, r);
        let (dgated, _, dgain) = residual::cpu::backward(&spec.residual, dy, &gated, gain);
        let (dr, ds) = se_gate::cpu::backward(&spec.gate, s, r, &dgated);
        (dr, ds, dgain)
    }
}
