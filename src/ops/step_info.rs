//! `StepInfo`: what changes at every training step (the learning rate of the schedule, the EMA
//! decay, the step and micro-batch counters that make dropout masks new), in one 16-byte buffer
//! the trainer writes once per step with `queue.write_buffer`. Kernels read it as the storage
//! struct of `shaders/common/step_info.wgsl`, so a step changes no bind group.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};

/// Mirrors `struct StepInfo` of `shaders/common/step_info.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepInfo {
    pub lr: f32,
    pub ema_decay: f32,
    pub step: u32,
    pub micro: u32,
}

/// The shape of a step-info tensor: four 32-bit words.
pub const SHAPE: [usize; 1] = [4];

/// A step-info tensor holding `info`.
pub fn tensor(gpu: &Gpu, info: StepInfo) -> Result<GpuTensor> {
    let t = GpuTensor::zeros(gpu, "step info", &SHAPE)?;
    write(gpu, &t, info)?;
    Ok(t)
}

/// Writes `info` into a step-info tensor (a queued write: it lands before the next submit).
pub fn write(gpu: &Gpu, t: &GpuTensor, info: StepInfo) -> Result<()> {
    t.write_f32(gpu, bytemuck::cast_slice(bytemuck::bytes_of(&info)))
}
