//! `sgd`: SGD with momentum and coupled weight decay, in PyTorch's form (DeepMind's SGD_AGC
//! applies the same update after clipping).
//!
//! ```text
//! info (StepInfo: lr)   g [len] (after AGC)   w [len] (in place)   buf [len] (momentum, in place, starts at 0)
//! d   = g + weight_decay * w
//! buf = momentum * buf + d
//! w  -= lr * (d + momentum * buf)   (Nesterov)   or   lr * buf   (heavy ball)
//! ```
//! Weight decay is per tensor: NFNets decay conv, SE and classifier weights, not gains, biases
//! or skip gains.
//!
//! [`agc_update`] (`sgd_agc_update`, DeepMind's `SGD_AGC`) first clips the raw gradient unit by
//! unit ([`crate::ops::agc`]) in the same pass: each parameter is read once for its norms and
//! once for the update, and the clipped gradient is never written out. For a standardized conv
//! weight the norms come from the kernels that already read w and g: `|w|^2 = F (var + mean^2)`
//! from the weight standardization's statistics (a sum of two non-negative terms, as accurate
//! as summing the squares) and `|g|^2` summed by its backward as it writes g; the update then
//! reads each tensor once. [`update`] serves the parameters AGC exempts (the classifier).

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::agc::Agc;
use crate::ops::{check_numel, check_same, check_shape, chunked, chunked_specialized, step_info};

/// One parameter's update constants (the learning rate comes from the step info).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct AgcParams {
    units: u32,
    len: u32,
    clip: f32,
    eps: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    _pad: u32,
}

/// The checks both launchers share.
fn check(op: &str, spec: &Sgd, info: &GpuTensor, g: &GpuTensor, w: &GpuTensor, buf: &GpuTensor) -> Result<()> {
    check_same(op, "weights", g, w)?;
    check_same(op, "momentum", g, buf)?;
    check_shape(op, "step info", info, &step_info::SHAPE)?;
    if ![spec.momentum, spec.weight_decay].iter().all(|v| v.is_finite() && *v >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("momentum and weight decay must be finite and >= 0, got {spec:?}"),
        ));
    }
    Ok(())
}

/// Updates `w` and `buf` in place from `g`, at the learning rate in `info`.
pub fn update(gpu: &Gpu, spec: &Sgd, info: &GpuTensor, g: &GpuTensor, w: &GpuTensor, buf: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::SgdUpdate;
    check(kernel.name(), spec, info, g, w, buf)?;
    chunked(gpu, kernel, g.numel(), &[(info, 0), (g, 1), (w, 1), (buf, 1)], 1, 256, |_, n| {
        Params {
            len: n as u32,
            momentum: spec.momentum,
            weight_decay: spec.weight_decay,
            nesterov: spec.nesterov as u32,
        }
    })
}

/// Clips the raw gradient `g` with `agc` (`g` itself is left as it is), then updates `w` and
/// `buf` in place as [`update`]. `norms`, when given, is `(stats, g_sq)`: the unit means
/// (as offsets from each unit's first value) and variances of `w` (`[units, 2]`, as
/// `weight_std::forward` writes them) and the squared unit
/// norms of `g` (`[units]`, as `weight_std::backward` writes them).
#[allow(clippy::too_many_arguments)]
pub fn agc_update(
    gpu: &Gpu,
    agc: &Agc,
    spec: &Sgd,
    info: &GpuTensor,
    g: &GpuTensor,
    w: &GpuTensor,
    buf: &GpuTensor,
    norms: Option<(&GpuTensor, &GpuTensor)>,
) -> Result<Launch> {
    let kernel = Kernel::SgdAgcUpdate;
    let op = kernel.name();
    check(op, spec, info, g, w, buf)?;
    agc.validate(op, g.numel())?;
    let (len, lanes) = (agc.unit_len, gpu.reduce_lanes() as usize);
    if let Some((stats, g_sq)) = norms {
        check_numel(op, "stats", stats, agc.units * 2)?;
        check_numel(op, "g_sq", g_sq, agc.units)?;
    }
    // Without norms the kernel reads neither binding: g stands in for both.
    let (stats, g_sq) = norms.map_or(((g, len), (g, len)), |(s, q)| ((s, 2), (q, 1)));
    // The kernel's NORMS: given (1), units of one element (2, one lane each), else summed by
    // one workgroup per unit (0); a unit too large for one binding fails in Step::new.
    let (mode, invocations) = match (norms, len) {
        (Some(_), _) => (1, lanes),
        (None, 1) => (2, 1),
        (None, _) => (0, lanes),
    };
    chunked_specialized(
        gpu,
        kernel,
        &[("NORMS", mode as f64)],
        agc.units,
        &[(info, 0), (g, len), (w, len), (buf, len), stats, g_sq],
        invocations,
        lanes,
        |_, n| AgcParams {
            units: n as u32,
            len: len as u32,
            clip: agc.clip,
            eps: agc.eps,
            momentum: spec.momentum,
            weight_decay: spec.weight_decay,
            nesterov: spec.nesterov as u32,
            _pad: 0,
        },
    )
}

/// The f64 reference. Returns (w, buf) after one step.
pub mod cpu {
    use super::Sgd;

    pub fn update(spec: &Sgd, lr: f64, g: &[f64], w: &[f64], buf: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (m, wd) = (spec.momentum as f64, spec.weight_decay as f64);
        let mut w2 = Vec::with_capacity(w.len());
        let mut b2 = Vec::with_capacity(w.len());
        for ((g, w), b) in g.iter().zip(w).zip(buf) {
            let d = g + wd * w;
            let b = m * b + d;
            w2.push(w - lr * if spec.nesterov { d + m * b } else { b });
            b2.push(b);
        }
        (w2, b2)
    }
}
