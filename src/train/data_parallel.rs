//! A trainer's side of data-parallel training over a [`Collective`].
//!
//! Every rank runs the same plan on its shard of each global batch: with `N` ranks and `k`
//! micro-batches a step is `N * k` passes of `batch / (N * k)` images, rank `r` making passes
//! `r * k .. (r + 1) * k` ([`crate::data::Shard`]), each pass's images and random draws
//! those one device would give the same positions of the global batch. After its last pass a
//! rank copies its summed gradients (`accum.<name>`, the mean over its micro-batches) to the
//! host in [`Exchange`]'s buckets, each as soon as the backward pass has completed it, the ranks
//! average them in rank order while the GPU goes on with the rest
//! ([`collective::mean_over_ranks`]), and every rank writes the mean back and runs the same
//! update: AGC on the averaged gradient, as DeepMind's pmap code clips after its `pmean`.
//!
//! The weights therefore stay bitwise equal on every rank; [`weights_agree`] checks it from
//! their checksums every [`CHECK_EVERY`] steps and at every epoch's end. Evaluation is sharded
//! too: each rank evaluates a contiguous part of the validation set and [`merge_stats`] adds
//! the counts in rank order.
//!
//! # Past one machine
//!
//! A step moves the gradients once: 4 bytes per parameter, 286 MB for F0's 71.5 M parameters
//! (`dm_nfnet_f0`). The exchange is a reduce-scatter then an all-gather, as a ring allreduce:
//! each rank sends and receives `2 (N - 1) / N` times that, 286 MB at N = 2 and close to 572 MB
//! for large N. On a 25 Gb/s network (3.1 GB/s) that is 0.09 s at N = 2 and 0.18 s for large N;
//! at 100 Gb/s, 0.023 s and 0.046 s. Set against the step time of the GPUs at hand, that says
//! whether the network keeps up; within a machine MPI uses shared memory. The exchange overlaps
//! the backward pass, so only what is left after the backward's end adds to the step.
//!
//! The gradients travel in buckets of at most [`BUCKET_BYTES`] (32 MiB), the last layers'
//! first, the order in which the backward pass completes them: F0's fill about nine. A bucket
//! is large enough that a message's latency (microseconds) is nothing beside its transfer
//! (10 ms at 25 Gb/s), and small enough that the first ones leave while most of the backward
//! pass is still to run, that the host holds one bucket's copy at a time, and that a bucket
//! stays far below the 256 MiB a WebGPU buffer may hold.

use super::collective::{self, Collective};
use crate::classify::EvalStats;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::graph::plan::Plan;
use web_time::Instant;

/// Steps between two checks that the ranks' weights agree.
pub const CHECK_EVERY: u64 = 100;

/// Most bytes of gradients in one bucket: a bucket is read back and averaged as one piece.
pub const BUCKET_BYTES: u64 = 32 << 20;

/// The accumulated gradients of a plan, in buckets of consecutive tensors, each with a buffer the
/// host maps to read it and the point of the step after which it is complete.
pub(super) struct Exchange {
    buckets: Vec<Bucket>,
}

struct Bucket {
    staging: wgpu::Buffer,
    tensors: Vec<GpuTensor>,
    bytes: u64,
    /// The step's launches that run before the bucket's sums are complete.
    ready: usize,
}

impl Exchange {
    /// Buckets of at most `bucket_bytes` (or one tensor) over `gradients` of `plan`, in the
    /// order given (the backward pass's: the last layers first).
    pub fn new(gpu: &Gpu, plan: &Plan, gradients: Vec<GpuTensor>, bucket_bytes: u64) -> Result<Exchange> {
        let mut groups: Vec<Vec<GpuTensor>> = vec![];
        let mut bytes = 0;
        for t in gradients {
            if groups.is_empty() || bytes + t.bytes() > bucket_bytes {
                groups.push(vec![]);
                bytes = 0;
            }
            bytes += t.bytes();
            groups.last_mut().expect("a bucket was just pushed").push(t);
        }
        let mut buckets = groups
            .into_iter()
            .map(|tensors| {
                let bytes = tensors.iter().map(GpuTensor::bytes).sum();
                let names: Vec<&str> = tensors.iter().map(GpuTensor::label).collect();
                let ready = plan
                    .written_after(&names)
                    .ok_or_else(|| Error::invalid("data-parallel training", format!("the step writes no sum of {names:?}")))?;
                Ok(Bucket {
                    staging: gpu.create_staging(bytes)?,
                    ready,
                    tensors,
                    bytes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        buckets.sort_by_key(|b| b.ready);
        Ok(Exchange { buckets })
    }

    /// The last pass of a step, the exchange and the update, on rank `group.rank()`: submits the
    /// pass in pieces that each end with a bucket's copy to the host (then the rest with what
    /// `after` encodes), and while the GPU runs the later pieces replaces each bucket's sums by
    /// their mean over the ranks; then submits the update. `stop` is this rank's wish to stop
    /// after the step; returns whether any rank has it, so that all stop at the same step, and
    /// the seconds spent exchanging (the waits for the GPU left out).
    pub async fn step(
        &self,
        gpu: &Gpu,
        plan: &Plan,
        group: &dyn Collective,
        stop: bool,
        after: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<(bool, f64)> {
        let mut start = 0;
        let mut submitted = Vec::with_capacity(self.buckets.len());
        for b in &self.buckets {
            submitted.push(plan.submit_range(gpu, start..b.ready, |encoder| b.encode(encoder))?);
            start = b.ready;
        }
        plan.submit_range(gpu, start..plan.update_from(), after)?;
        let (mut exchanging, mut any_stop) = (0.0, false);
        for (i, (b, index)) in self.buckets.iter().zip(submitted).enumerate() {
            let bytes = gpu.map_read_after(&b.staging, b.bytes, "gradients", Some(index)).await?;
            let started = Instant::now();
            let mut values: Vec<f32> = bytemuck::cast_slice(&bytes).to_vec();
            let last = i + 1 == self.buckets.len();
            if last {
                // The mean of the flags is above 0 when any rank asked to stop.
                values.push(stop as u32 as f32);
            }
            collective::mean_over_ranks(group, &mut values)?;
            if last {
                any_stop = values.pop().is_some_and(|flag| flag > 0.0);
            }
            exchanging += started.elapsed().as_secs_f64();
            // Queued writes: they land before the update's submit, after the pieces in flight
            // (none of which writes these sums again).
            let mut offset = 0;
            for t in &b.tensors {
                t.write_f32(gpu, &values[offset..offset + t.numel()])?;
                offset += t.numel();
            }
        }
        plan.submit_update(gpu)?;
        Ok((any_stop, exchanging))
    }
}

impl Bucket {
    fn encode(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let mut offset = 0;
        for t in &self.tensors {
            encoder.copy_buffer_to_buffer(t.buffer()?, 0, &self.staging, offset, t.bytes());
            offset += t.bytes();
        }
        Ok(())
    }
}

/// Checks that every rank's parameters are bitwise rank 0's (see the module docs).
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn weights_agree(gpu: &Gpu, group: &dyn Collective, store: &crate::graph::ParamStore, step: u64) -> Result<()> {
    let mut hash = collective::CHECKSUM_START;
    for (_, t) in store.iter() {
        hash = collective::checksum(&t.read_f32(gpu)?, hash);
    }
    collective::check_same_everywhere(group, &format!("the weights after step {step}"), hash)
}

/// The images `rank` of `ranks` evaluates: a contiguous part of `len`.
pub(super) fn eval_part(len: usize, rank: usize, ranks: usize) -> std::ops::Range<usize> {
    len * rank / ranks..len * (rank + 1) / ranks
}

/// The statistics over every rank's part of the evaluation, added in rank order.
pub(super) fn merge_stats(group: &dyn Collective, mine: &EvalStats) -> Result<EvalStats> {
    let n = mine.images as f64;
    let mut row = vec![
        mine.loss * n,
        (mine.top1 * n).round(),
        (mine.top5 * n).round(),
        n,
        mine.non_finite as f64,
    ];
    row.extend(mine.confusion.iter().flatten().map(|&c| c as f64));
    let rows = collective::gather_f64(group, &row)?;
    let mut sum = vec![0f64; row.len()];
    for r in &rows {
        sum.iter_mut().zip(r).for_each(|(s, v)| *s += v);
    }
    let images = sum[3].max(1.0);
    let classes = mine.confusion.len();
    Ok(EvalStats {
        loss: sum[0] / images,
        top1: sum[1] / images,
        top5: sum[2] / images,
        images: sum[3] as usize,
        non_finite: sum[4] as usize,
        confusion: sum[5..]
            .chunks(classes.max(1))
            .map(|r| r.iter().map(|&c| c as usize).collect())
            .collect(),
    })
}
