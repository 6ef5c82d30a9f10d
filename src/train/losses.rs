//! The loss log: the host never waits for the GPU between steps. Each pass's loss is copied on
//! the GPU into a small log, and the log is copied to one of two host-readable buffers every
//! `window` passes and read one window late, while the next window already runs. A non-finite
//! loss stops training with the step that produced it.

use super::TrainState;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Readback};

/// See the module docs.
pub(super) struct LossLog {
    log: GpuTensor,
    readback: [Readback; 2],
    /// Passes per read-back.
    size: usize,
    /// Passes logged in the current window.
    filled: usize,
    /// Windows started so far (the current one's read-back buffer is `window % 2`).
    window: usize,
    /// The first step of each read-back buffer's window, and its number of passes.
    pending: [(u64, usize); 2],
}

impl LossLog {
    /// A log read back every `size` passes.
    pub(super) fn new(gpu: &Gpu, size: usize) -> Result<LossLog> {
        let size = size.max(1);
        Ok(LossLog {
            log: GpuTensor::zeros(gpu, "loss log", &[size])?,
            readback: [Readback::new(gpu, size)?, Readback::new(gpu, size)?],
            size,
            filled: 0,
            window: 0,
            pending: [(0, 0); 2],
        })
    }

    /// Encodes, after a pass, the copy of its `loss` into the log and, when that fills the
    /// window, of the log into the window's read-back buffer. Returns whether it does.
    pub(super) fn record(&self, encoder: &mut wgpu::CommandEncoder, loss: &GpuTensor) -> Result<bool> {
        encoder.copy_buffer_to_buffer(loss.buffer()?, 0, self.log.buffer()?, self.filled as u64 * 4, 4);
        let full = self.filled + 1 == self.size;
        if full {
            self.readback[self.window % 2].copy(encoder, &self.log)?;
        }
        Ok(full)
    }

    /// After the submit of a recorded pass (`state` already counting it): with a `full` window,
    /// starts its read-back and returns the mean of the previous window, whose passes have run
    /// meanwhile.
    pub(super) async fn submitted(&mut self, gpu: &Gpu, state: &mut TrainState, micro_batches: usize, full: bool) -> Result<Option<f32>> {
        if !full {
            self.filled += 1;
            return Ok(None);
        }
        let which = self.window % 2;
        self.readback[which].request();
        let first = state.step - (self.size as u64).div_ceil(micro_batches as u64);
        self.pending[which] = (first, self.size);
        self.filled = 0;
        self.window += 1;
        self.take(gpu, (which + 1) % 2, state, micro_batches).await
    }

    /// Reads the passes logged so far and waits for every pending read-back; the mean of the
    /// last window.
    pub(super) async fn flush(&mut self, gpu: &Gpu, state: &mut TrainState, micro_batches: usize) -> Result<Option<f32>> {
        let mut last = None;
        let w = self.window;
        // The older window first.
        for which in [(w + 1) % 2, w % 2] {
            last = self.take(gpu, which, state, micro_batches).await?.or(last);
        }
        if self.filled > 0 {
            let which = w % 2;
            let count = self.filled;
            let first = state.step - (count as u64).div_ceil(micro_batches as u64);
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("loss flush") });
            self.readback[which].copy(&mut encoder, &self.log)?;
            gpu.submit(encoder.finish());
            self.readback[which].request();
            self.pending[which] = (first, count);
            self.filled = 0;
            self.window += 1;
            last = self.take(gpu, which, state, micro_batches).await?.or(last);
        }
        Ok(last)
    }

    /// Adds the losses of a completed read-back to `state`; their mean, or `None` when that
    /// buffer holds no pending window. A non-finite loss is an error naming its step.
    async fn take(&mut self, gpu: &Gpu, which: usize, state: &mut TrainState, micro_batches: usize) -> Result<Option<f32>> {
        let (first, count) = self.pending[which];
        let Some(values) = self.readback[which].finish(gpu).await? else {
            return Ok(None);
        };
        let values = &values[..count];
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Diverged {
                step: first + i as u64 / micro_batches as u64,
                loss: values[i],
            });
        }
        state.loss_sum += values.iter().map(|&v| v as f64).sum::<f64>();
        state.loss_count += values.len() as u64;
        Ok(Some(values.iter().sum::<f32>() / values.len().max(1) as f32))
    }
}
