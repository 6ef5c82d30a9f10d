//! `StepInfo`: what changes at every training step and pass (the learning rate of the schedule,
//! the EMA decay, the step, micro-batch and pass counters), in one 20-byte buffer
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
    /// This pass's micro-batch on this device, 0 first (`grad_accumulate` starts its sums).
    pub micro: u32,
    /// This pass's place among the step's passes over every data-parallel rank (rank times
    /// micro-batches plus `micro`; `micro` on one device): dropout masks follow the global
    /// sample, so any split of a batch draws the same masks.
    pub pass_index: u32,
}

/// The shape of a step-info tensor: five 32-bit words.
pub const SHAPE: [usize; 1] = [5];

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
