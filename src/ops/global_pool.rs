//! `global_pool`: the spatial mean of each (n, c) plane; the head's pool and SE's squeeze.
//!
//! ```text
//! x [N, C, H, W]   y [N, C]        y[n,c] = sum_{h,w} x[n,c,h,w] / (H*W)
//! dx[n,c,h,w] (+)= dy[n,c] / (H*W)
//! ```

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_shape, chunked};

/// Input size of one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalPool {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    hw: u32,
    accumulate: u32,
    _pad: u32,
}

impl GlobalPool {
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    fn check(&self, op: &str, x: &GpuTensor, y: &GpuTensor) -> Result<()> {
        if self.x_shape().contains(&0) {
            return Err(Error::shape(op, "x", "every dimension > 0", format!("{:?}", self.x_shape())));
        }
        check_shape(op, "x", x, &self.x_shape())?;
        check_shape(op, "y", y, &[self.n, self.c])
    }

    fn params(&self, planes: usize, accumulate: bool) -> Params {
        Params {
            planes: planes as u32,
            hw: (self.h * self.w) as u32,
            accumulate: accumulate as u32,
            _pad: 0,
        }
    }
}

pub fn forward(gpu: &Gpu, spec: &GlobalPool, x: &GpuTensor, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::GlobalPoolForward;
    spec.check(kernel.name(), x, y)?;
    chunked(gpu, kernel, spec.n * spec.c, &[(x, spec.h * spec.w), (y, 1)], 1, 64, |_, n| {
        spec.params(n, false)
    })
}

pub fn backward(gpu: &Gpu, spec: &GlobalPool, dy: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<Launch> {
    let kernel = Kernel::GlobalPoolBackward;
    spec.check(kernel.name(), dx, dy)?;
    let hw = spec.h * spec.w;
    chunked(gpu, kernel, spec.n * spec.c, &[(dy, 1), (dx, hw)], hw, 256, |_, n| {
        spec.params(n, accumulate)
    })
}

/// The f64 reference.
pub mod cpu {
    use super::GlobalPool;

    pub fn forward(spec: &GlobalPool, x: &[f64]) -> Vec<f64> {
        let hw = spec.h * spec.w;
        x.chunks(hw).map(|p| p.iter().sum::<f64>() / hw as f64).collect()
    }

    pub fn backward(spec: &GlobalPool, dy: &[f64]) -> Vec<f64> {
        let hw = spec.h * spec.w;
        dy.iter().flat_map(|&g| std::iter::repeat_n(g / hw as f64, hw)).collect()
    }
}
