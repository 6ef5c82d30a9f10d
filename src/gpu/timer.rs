//! GPU time of a compute pass from timestamp queries, where the adapter has them
//! (`wgpu::Features::TIMESTAMP_QUERY`, requested by [`Gpu`] whenever offered).
//!
//! The pass writes a timestamp at its start and its end; [`GpuTimer::resolve`] copies them into
//! a host-readable buffer in the same command buffer, and [`GpuTimer::read_ms`] (after the
//! submit) converts the difference with the queue's timestamp period.

use super::Gpu;
use crate::error::{Error, Result};

/// Two timestamps around one compute pass; see the module docs.
pub struct GpuTimer {
    set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl GpuTimer {
    /// A timer, or `None` when the adapter has no timestamp queries.
    pub fn new(gpu: &Gpu) -> Option<GpuTimer> {
        if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let buffer = |label, usage| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(GpuTimer {
            set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: buffer("pass timestamps", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            staging: buffer(
                "pass timestamps readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        })
    }

    /// The pass's timestamp writes: index 0 at its start, 1 at its end.
    pub fn pass_writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }

    /// Encodes the copy of the timestamps to the host-readable buffer (after the pass).
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.set, 0..2, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, 16);
    }

    /// Milliseconds between the two timestamps of the last submitted pass (waits for it).
    pub fn read_ms(&self, gpu: &Gpu) -> Result<f64> {
        let fail = |message: String| Error::Readback {
            label: "pass timestamps".into(),
            message,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        self.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv().map_err(|e| fail(e.to_string()))?.map_err(|e| fail(e.to_string()))?;
        let ticks: Vec<u64> = bytemuck::cast_slice(&self.staging.get_mapped_range(..).map_err(|e| fail(e.to_string()))?).to_vec();
        self.staging.unmap();
        let period = gpu.queue.get_timestamp_period() as f64;
        Ok(ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e6)
    }
}
