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

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_same, check_shape, chunked, step_info};

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

/// Updates `w` and `buf` in place from `g`, at the learning rate in `info`.
pub fn update(gpu: &Gpu, spec: &Sgd, info: &GpuTensor, g: &GpuTensor, w: &GpuTensor, buf: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::SgdUpdate;
    let op = kernel.name();
    check_same(op, "weights", g, w)?;
    check_same(op, "momentum", g, buf)?;
    check_shape(op, "step info", info, &step_info::SHAPE)?;
    if ![spec.momentum, spec.weight_decay].iter().all(|v| v.is_finite() && *v >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("momentum and weight decay must be finite and >= 0, got {spec:?}"),
        ));
    }
    chunked(gpu, kernel, g.numel(), &[(info, 0), (g, 1), (w, 1), (buf, 1)], 1, 256, |_, n| {
        Params {
            len: n as u32,
            momentum: spec.momentum,
            weight_decay: spec.weight_decay,
            nesterov: spec.nesterov as u32,
        }
    })
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
