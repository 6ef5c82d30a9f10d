//! `grad_accumulate`: gradient accumulation over micro-batches, for effective batches larger
//! than one pass fits.
//!
//! ```text
//! info (StepInfo: micro)   g [len]   acc [len]
//! acc = (micro == 0 ? 0 : acc) + scale * g          (scale = 1 / micro-batches)
//! ```
//! The optimizer then reads `acc`: the mean gradient of the micro-batches, as one large batch.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_same, check_shape, chunked, step_info};

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// `acc = (first micro-batch ? 0 : acc) + scale * g`.
pub fn accumulate(gpu: &Gpu, scale: f32, info: &GpuTensor, g: &GpuTensor, acc: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::GradAccumulate;
    check_same(kernel.name(), "accumulator", g, acc)?;
    check_shape(kernel.name(), "step info", info, &step_info::SHAPE)?;
    chunked(gpu, kernel, g.numel(), &[(info, 0), (g, 1), (acc, 1)], 1, 256, |_, n| Params {
        len: n as u32,
        scale,
        _pad: [0; 2],
    })
}

/// The f64 reference.
pub mod cpu {
    pub fn accumulate(micro: u32, scale: f64, g: &[f64], acc: &[f64]) -> Vec<f64> {
        g.iter()
            .zip(acc)
            .map(|(g, a)| if micro == 0 { 0.0 } else { *a } + scale * g)
            .collect()
    }
}
