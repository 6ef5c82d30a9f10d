//! Benchmarks: `nfnet bench` and `cargo bench --bench ops` share this module.
//!
//! * Kernel rows ([`kernel_rows`]), at dm_nfnet_f0's layers as the model builder makes them:
//!   every distinct conv at 192x192, batch 8 (stem, each stage's 1x1, grouped 3x3, strided and
//!   shortcut convs, the final conv) forward, input gradient and weight gradient on packed
//!   weights (packed where the tuner keeps them), then all of F0's linear layers at batch 8
//!   (SE's and the head's, each pass over all of them), then weight standardization and the
//!   fused AGC + SGD update (`sgd_agc_update`) over all F0 conv weights. GFLOP/s for the convs
//!   and linear layers, GB/s for the rest.
//! * Model rows ([`model_rows`]): a whole training step (forward, backward, AGC + SGD, one submit) and an
//!   inference pass for a model at a resolution and batch, in images/s, with the time split
//!   into GPU time (timestamp queries around the step's compute pass, where the adapter has
//!   them) and CPU time spent encoding and submitting, and for training the share of the
//!   step's time inside conv kernels (a node-by-node profile of one more step, each node's
//!   time less the cost of an empty submit).
//! * The tuner's choices of the run ([`crate::tune::Tuner::choices`]).
//!
//! With the figures of the fixed yardstick matmul and copy, run right before on the same
//! adapter (`NFNET_YARDSTICK="matmul_gflops=X copy_gbs=Y"`, `tools/bench_vs_yardstick.sh`),
//! every rate also gets its ratio to the yardstick matmul (compute) or copy (memory). Times are wall-clock per
//! submission (one submit and wait), the median of up to 5 after a warm-up.

mod kernels;
mod models;

pub use kernels::kernel_rows;
pub use models::model_rows;

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Launch};
use std::time::Instant;

/// The yardstick's rates on this adapter: (matmul GFLOP/s, copy GB/s).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Yardstick {
    pub matmul_gflops: f64,
    pub copy_gbs: f64,
}

impl Yardstick {
    /// Parses the yardstick's output line `matmul_gflops=X copy_gbs=Y`.
    pub fn parse(s: &str) -> Option<Yardstick> {
        let get = |name: &str| {
            s.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        };
        Some(Yardstick {
            matmul_gflops: get("matmul_gflops")?,
            copy_gbs: get("copy_gbs")?,
        })
    }

    /// From `NFNET_YARDSTICK`, when set.
    pub fn from_env() -> Option<Yardstick> {
        std::env::var("NFNET_YARDSTICK").ok().and_then(|s| Yardstick::parse(&s))
    }
}

/// One kernel measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelRow {
    pub op: String,
    pub pass: String,
    pub shape: String,
    pub ms: f64,
    /// GFLOP/s (convs) or GB/s (weight standardization, the update).
    pub rate: f64,
    pub unit: &'static str,
    /// The rate over the yardstick matmul's (GFLOP/s) or copy's (GB/s).
    pub ratio: Option<f64>,
}

impl KernelRow {
    /// The row's key, `op=.. pass=.. shape=..` (what filters match).
    pub fn key(&self) -> String {
        format!("op={} pass={} shape={}", self.op, self.pass, self.shape)
    }
}

/// One model measurement: a training step or an inference pass.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelRow {
    pub model: String,
    pub resolution: usize,
    pub batch: usize,
    /// `train` or `inference`.
    pub mode: &'static str,
    pub images_per_second: f64,
    /// Wall-clock milliseconds per step (submit to done).
    pub ms: f64,
    /// GPU milliseconds per step from timestamp queries, where the adapter has them.
    pub gpu_ms: Option<f64>,
    /// CPU milliseconds per step spent encoding and submitting.
    pub encode_ms: f64,
    /// Multiply-adds x 2 per pass, passes x images/s: 6 x forward MACs per image for training,
    /// 2 x for inference, in GFLOP/s.
    pub effective_gflops: f64,
    pub ratio: Option<f64>,
    /// Training: the share of a node-by-node profile's time spent in conv kernels (forward,
    /// input and weight gradient, weight and activation packing), each node's time less the
    /// cost of an empty submit (the profile submits and waits per node; the step once).
    pub conv_share: Option<f64>,
    /// Training: the node-by-node profile summed per op, slowest first, `(op, ms)`.
    pub profile_ms: Vec<(String, f64)>,
    /// Training: the cost of an empty submit, taken off every node of the profile.
    pub submit_overhead_ms: Option<f64>,
}

/// A model to benchmark: a built-in name (or JSON config), a resolution and a batch.
#[derive(Clone, Debug)]
pub struct ModelCase {
    pub model: String,
    pub resolution: usize,
    pub batch: usize,
}

impl std::str::FromStr for ModelCase {
    type Err = String;
    /// `MODEL@RESxBATCH`, e.g. `f0@128x8`.
    fn from_str(s: &str) -> std::result::Result<ModelCase, String> {
        let bad = || format!("{s}: expected MODEL@RESOLUTIONxBATCH, e.g. f0@128x8");
        let (model, rest) = s.split_once('@').ok_or_else(bad)?;
        let (res, batch) = rest.split_once('x').ok_or_else(bad)?;
        Ok(ModelCase {
            model: model.to_string(),
            resolution: res.parse().map_err(|_| bad())?,
            batch: batch.parse().map_err(|_| bad())?,
        })
    }
}

/// Median seconds of one submission of `launches`, after a warm-up: up to 5 runs, at least
/// one, no more started after 2 s.
fn time(gpu: &Gpu, launches: &[&Launch]) -> Result<f64> {
    gpu.run(launches)?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 && (times.is_empty() || start.elapsed().as_secs_f64() < 2.0) {
        let t = Instant::now();
        gpu.run(launches)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Deterministic bench data in [-1, 1).
fn tensor(gpu: &Gpu, label: &str, shape: &[usize]) -> Result<GpuTensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 / 1000.0) - 1.0)
        .collect();
    GpuTensor::from_f32(gpu, label, shape, &data)
}

/// A row from a time and its work: GFLOP/s for `flops`, else GB/s for `bytes`.
fn row(yardstick: Option<Yardstick>, key: (&str, &str, String), secs: f64, flops: f64, bytes: f64) -> KernelRow {
    let (rate, unit, base) = if flops > 0.0 {
        (flops / secs / 1e9, "GFLOP/s", yardstick.map(|y| y.matmul_gflops))
    } else {
        (bytes / secs / 1e9, "GB/s", yardstick.map(|y| y.copy_gbs))
    };
    KernelRow {
        op: key.0.into(),
        pass: key.1.into(),
        shape: key.2,
        ms: secs * 1e3,
        rate,
        unit,
        ratio: base.map(|b| rate / b),
    }
}

/// Everything `nfnet bench` measured, as written to its JSON file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub adapter: String,
    pub yardstick: Option<Yardstick>,
    /// Whether the tuner timed candidates (else every choice was the default).
    pub autotune: bool,
    pub kernels: Vec<KernelRow>,
    pub models: Vec<ModelRow>,
    pub autotune_choices: Vec<crate::tune::Choice>,
}
