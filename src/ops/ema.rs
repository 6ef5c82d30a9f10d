//! `ema`: the exponential moving average of the weights, which evaluation can use instead of
//! the weights themselves (DeepMind evaluates both).
//!
//! ```text
//! info (StepInfo: ema_decay)   w [len]   ema [len] (in place)
//! ema = decay * ema + (1 - decay) * w,   decay = min(decay_max, (1 + step) / (10 + step))
//! ```
//! The decay's warm-up (TensorFlow 1's `ExponentialMovingAverage` with `num_updates`) is computed
//! by the trainer ([`decay`]) and written into the step info.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_same, check_shape, chunked, step_info};

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    _pad: [u32; 3],
}

/// The decay at `step` (0-based): `min(decay_max, (1 + step) / (10 + step))`.
pub fn decay(decay_max: f64, step: u64) -> f32 {
    decay_max.min((1.0 + step as f64) / (10.0 + step as f64)) as f32
}

/// `ema = decay * ema + (1 - decay) * w`, with the decay in `info`.
pub fn update(gpu: &Gpu, info: &GpuTensor, w: &GpuTensor, ema: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::EmaUpdate;
    check_same(kernel.name(), "average", w, ema)?;
    check_shape(kernel.name(), "step info", info, &step_info::SHAPE)?;
    chunked(gpu, kernel, w.numel(), &[(info, 0), (w, 1), (ema, 1)], 1, 256, |_, n| Params {
        len: n as u32,
        _pad: [0; 3],
    })
}

/// The f64 reference.
pub mod cpu {
    pub fn update(decay: f64, w: &[f64], ema: &[f64]) -> Vec<f64> {
        w.iter().zip(ema).map(|(w, e)| decay * e + (1.0 - decay) * w).collect()
    }
}
