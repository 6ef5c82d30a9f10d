//! A trainer's side of data-parallel training over a [`Collective`].
//!
//! Every rank runs the same plan on its shard of each global batch: with `N` ranks and `k`
//! micro-batches a step is `N * k` passes of `batch / (N * k)` images, rank `r` making passes
//! `r * k .. (r + 1) * k` ([`crate::data::Shard`]), each pass's images and random draws
//! those one device would give the same positions of the global batch. After its last pass a
//! rank copies its summed gradients (`accum.<name>`, the mean over its micro-batches) to the
//! host in [`Exchange`]'s buckets, the ranks average them in rank order
//! ([`collective::mean_over_ranks`]), and every rank writes the mean back and runs the same
//! update: AGC on the averaged gradient, as DeepMind's pmap code clips after its `pmean`.
//!
//! The weights therefore stay bitwise equal on every rank; [`weights_agree`] checks it from
//! their checksums every [`CHECK_EVERY`] steps and at every epoch's end. Evaluation is sharded
//! too: each rank evaluates a contiguous part of the validation set and [`merge_stats`] adds
//! the counts in rank order.

use super::collective::{self, Collective};
use crate::classify::EvalStats;
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use web_time::Instant;

/// Steps between two checks that the ranks' weights agree.
pub const CHECK_EVERY: u64 = 100;

/// Most bytes of gradients in one bucket: a bucket is read back and averaged as one piece.
const BUCKET_BYTES: u64 = 32 << 20;

/// The accumulated gradients of a plan, in buckets of consecutive tensors, each with a buffer the
/// host maps to read it.
pub(super) struct Exchange {
    buckets: Vec<Bucket>,
}

struct Bucket {
    staging: wgpu::Buffer,
    tensors: Vec<GpuTensor>,
    bytes: u64,
}

impl Exchange {
    /// Buckets over `gradients`, in the order given (the backward pass's: the last stages first).
    pub fn new(gpu: &Gpu, gradients: Vec<GpuTensor>) -> Result<Exchange> {
        let mut groups: Vec<Vec<GpuTensor>> = vec![];
        let mut bytes = 0;
        for t in gradients {
            if groups.is_empty() || bytes + t.bytes() > BUCKET_BYTES {
                groups.push(vec![]);
                bytes = 0;
            }
            bytes += t.bytes();
            groups.last_mut().expect("a bucket was just pushed").push(t);
        }
        let buckets = groups
            .into_iter()
            .map(|tensors| {
                let bytes = tensors.iter().map(GpuTensor::bytes).sum();
                Ok(Bucket {
                    staging: gpu.create_staging(bytes)?,
                    tensors,
                    bytes,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Exchange { buckets })
    }

    /// Encodes the copies of every gradient into its bucket's buffer (after a step's last pass).
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        for b in &self.buckets {
            let mut offset = 0;
            for t in &b.tensors {
                encoder.copy_buffer_to_buffer(t.buffer()?, 0, &b.staging, offset, t.bytes());
                offset += t.bytes();
            }
        }
        Ok(())
    }

    /// Replaces every gradient by its mean over the ranks (after the submit that holds
    /// [`Exchange::encode`]'s copies). `stop` is this rank's wish to stop after the step; the
    /// result says whether any rank has it, so that all stop at the same step. Also returns the
    /// seconds spent exchanging (the waits for the GPU left out).
    pub async fn mean(&self, gpu: &Gpu, group: &dyn Collective, stop: bool) -> Result<(bool, f64)> {
        let mut exchanging = 0.0;
        let mut any_stop = false;
        for (i, b) in self.buckets.iter().enumerate() {
            let bytes = gpu.map_read(&b.staging, b.bytes, "gradients").await?;
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
            let mut offset = 0;
            for t in &b.tensors {
                t.write_f32(gpu, &values[offset..offset + t.numel()])?;
                offset += t.numel();
            }
        }
        Ok((any_stop, exchanging))
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
