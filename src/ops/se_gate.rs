//! `se_gate`: the excite step of squeeze-excite, `y = gain * sigmoid(s) * r` (gain = 2 in NFNets).
//!
//! ```text
//! s [N, C] (fc2's output)   r [N, C, H, W] (the residual branch)   y [N, C, H, W]
//! dr[n,c,h,w] (+)= dy * gain * sigmoid(s[n,c])
//! ds[n,c]      = gain * sigmoid(s) * (1 - sigmoid(s)) * sum_{h,w} dy * r
//! ```
//! The rest of SE is other ops: `global_pool` (squeeze), `linear` with bias (fc1, fc2, 1x1
//! convs in timm's weights), and `scaled_act` with ReLU and gamma 1 (SE's ReLU has no gamma).

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_shape, chunked};

/// The gate's shape and gain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeGate {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub gain: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    hw: u32,
    gain: f32,
    accumulate: u32,
}

impl SeGate {
    pub fn r_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    pub(crate) fn check(&self, op: &str, s: &GpuTensor, r: &GpuTensor) -> Result<()> {
        if self.r_shape().contains(&0) {
            return Err(Error::shape(op, "r", "every dimension > 0", format!("{:?}", self.r_shape())));
        }
        check_shape(op, "s", s, &[self.n, self.c])?;
        check_shape(op, "r", r, &self.r_shape())
    }

    fn params(&self, planes: usize, accumulate: bool) -> Params {
        Params {
            planes: planes as u32,
            hw: (self.h * self.w) as u32,
            gain: self.gain,
            accumulate: accumulate as u32,
        }
    }
}

pub fn forward(gpu: &Gpu, spec: &SeGate, s: &GpuTensor, r: &GpuTensor, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::SeGateForward;
    spec.check(kernel.name(), s, r)?;
    check_shape(kernel.name(), "y", y, &spec.r_shape())?;
    let hw = spec.h * spec.w;
    chunked(gpu, kernel, spec.n * spec.c, &[(s, 1), (r, hw), (y, hw)], hw, 256, |_, n| {
        spec.params(n, false)
    })
}

/// `dr (+)= ...` (accumulate for r's other consumer, the squeeze) and `ds = ...` (overwritten).
pub fn backward(
    gpu: &Gpu,
    spec: &SeGate,
    s: &GpuTensor,
    r: &GpuTensor,
    dy: &GpuTensor,
    dr: &GpuTensor,
    ds: &GpuTensor,
    accumulate: bool,
) -> Result<Launch> {
    let kernel = Kernel::SeGateBackward;
    spec.check(kernel.name(), s, r)?;
    check_shape(kernel.name(), "dy", dy, &spec.r_shape())?;
    check_shape(kernel.name(), "dr", dr, &spec.r_shape())?;
    check_shape(kernel.name(), "ds", ds, &[spec.n, spec.c])?;
    let hw = spec.h * spec.w;
    chunked(
        gpu,
        kernel,
        spec.n * spec.c,
        &[(s, 1), (r, hw), (dy, hw), (dr, hw), (ds, 1)],
        1,
        64,
        |_, n| spec.params(n, accumulate),
    )
}

/// The f64 reference.
pub mod cpu {
    use super::SeGate;

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    pub fn forward(spec: &SeGate, s: &[f64], r: &[f64]) -> Vec<f64> {
        let hw = spec.h * spec.w;
        r.iter()
            .enumerate()
            .map(|(i, v)| spec.gain as f64 * sigmoid(s[i / hw]) * v)
            .collect()
    }

    /// Returns (dr, ds).
    pub fn backward(spec: &SeGate, s: &[f64], r: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let hw = spec.h * spec.w;
        let g = spec.gain as f64;
        let dr = dy.iter().enumerate().map(|(i, d)| d * g * sigmoid(s[i / hw])).collect();
        let ds = s
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let dot: f64 = (0..hw).map(|j| dy[i * hw + j] * r[i * hw + j]).sum();
                g * sigmoid(v) * (1.0 - sigmoid(v)) * dot
            })
            .collect();
        (dr, ds)
    }
}
