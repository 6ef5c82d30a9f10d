//! `avg_pool`: the 2x2, stride-2 average pool of an NFNet transition block's shortcut.
//!
//! ```text
//! x [N, C, H, W]   y [N, C, P, Q]   P = ceil(H/2), Q = ceil(W/2)
//! y[n,c,p,q] = mean of x[n, c, 2p+a, 2q+b] over a, b in {0, 1} inside the image
//! dx[n,c,h,w] (+)= dy[n, c, h/2, w/2] / (size of that window inside the image)
//! ```
//! Ceil mode with padding not counted: timm's `AvgPool2d(2, 2, ceil_mode=True,
//! count_include_pad=False)`, and DeepMind's `hk.avg_pool(2, 2, 'SAME')` on odd maps too.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_shape, chunked};

/// Input size of one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl AvgPool {
    pub fn out_hw(&self) -> (usize, usize) {
        (self.h.div_ceil(2), self.w.div_ceil(2))
    }

    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    pub fn y_shape(&self) -> [usize; 4] {
        let (p, q) = self.out_hw();
        [self.n, self.c, p, q]
    }

    fn validate(&self, op: &str) -> Result<()> {
        if self.x_shape().contains(&0) {
            return Err(Error::shape(op, "x", "every dimension > 0", format!("{:?}", self.x_shape())));
        }
        Ok(())
    }

    fn params(&self, planes: usize, accumulate: bool) -> Params {
        let (p, q) = self.out_hw();
        let [_, _, h, w] = self.x_shape().map(|d| d as u32);
        Params {
            planes: planes as u32,
            h,
            w,
            p: p as u32,
            q: q as u32,
            accumulate: accumulate as u32,
            _pad: [0; 2],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    p: u32,
    q: u32,
    accumulate: u32,
    _pad: [u32; 2],
}

pub fn forward(gpu: &Gpu, spec: &AvgPool, x: &GpuTensor, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::AvgPoolForward;
    spec.validate(kernel.name())?;
    check_shape(kernel.name(), "x", x, &spec.x_shape())?;
    check_shape(kernel.name(), "y", y, &spec.y_shape())?;
    let (p, q) = spec.out_hw();
    let hw = spec.h * spec.w;
    chunked(gpu, kernel, spec.n * spec.c, &[(x, hw), (y, p * q)], p * q, 256, |_, n| {
        spec.params(n, false)
    })
}

pub fn backward(gpu: &Gpu, spec: &AvgPool, dy: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<Launch> {
    let kernel = Kernel::AvgPoolBackward;
    spec.validate(kernel.name())?;
    check_shape(kernel.name(), "dy", dy, &spec.y_shape())?;
    check_shape(kernel.name(), "dx", dx, &spec.x_shape())?;
    let (p, q) = spec.out_hw();
    let hw = spec.h * spec.w;
    chunked(gpu, kernel, spec.n * spec.c, &[(dy, p * q), (dx, hw)], hw, 256, |_, n| {
        spec.params(n, accumulate)
    })
}

/// The f64 reference.
pub mod cpu {
    use super::AvgPool;

    /// The input pixels of window (p, q).
    fn window(spec: &AvgPool, p: usize, q: usize) -> impl Iterator<Item = (usize, usize)> {
        let (h, w) = (spec.h, spec.w);
        (2 * p..(2 * p + 2).min(h)).flat_map(move |y| (2 * q..(2 * q + 2).min(w)).map(move |x| (y, x)))
    }

    pub fn forward(spec: &AvgPool, x: &[f64]) -> Vec<f64> {
        let (pp, qq) = spec.out_hw();
        let mut y = Vec::with_capacity(spec.n * spec.c * pp * qq);
        for plane in x.chunks(spec.h * spec.w) {
            for p in 0..pp {
                for q in 0..qq {
                    let px: Vec<f64> = window(spec, p, q).map(|(iy, ix)| plane[iy * spec.w + ix]).collect();
                    y.push(px.iter().sum::<f64>() / px.len() as f64);
                }
            }
        }
        y
    }

    pub fn backward(spec: &AvgPool, dy: &[f64]) -> Vec<f64> {
        let (pp, qq) = spec.out_hw();
        let mut dx = vec![0.0; spec.n * spec.c * spec.h * spec.w];
        for (i, plane) in dy.chunks(pp * qq).enumerate() {
            for p in 0..pp {
                for q in 0..qq {
                    let px: Vec<(usize, usize)> = window(spec, p, q).collect();
                    for &(iy, ix) in &px {
                        dx[(i * spec.h + iy) * spec.w + ix] += plane[p * qq + q] / px.len() as f64;
                    }
                }
            }
        }
        dx
    }
}
