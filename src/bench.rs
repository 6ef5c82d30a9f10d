//! Benchmarks: `nfnet bench` and `cargo bench --bench ops` share this module.
//!
//! * Kernel rows: every distinct conv of dm_nfnet_f0 at 192x192, batch 8 (stem, each stage's
//!   1x1, grouped 3x3, strided and shortcut convs, the final conv) forward, input gradient and
//!   weight gradient on packed weights (packed where the autotuner keeps them), then all of
//!   F0's linear layers at batch 8 (SE's and the head's, each pass over all of them), then
//!   weight standardization and the fused AGC + SGD update (`sgd_agc_update`) over all F0
//!   weights. GFLOP/s for the convs and linear layers, GB/s for the rest.
//! * Model rows: a whole training step (forward, backward, AGC + SGD, one submit) and an
//!   inference pass for a model at a resolution and batch, in images/s, with the time split
//!   into GPU time (timestamp queries around the step's compute pass, where the adapter has
//!   them) and CPU time spent encoding and submitting, and for training the share of the
//!   step's time inside conv kernels (a node-by-node profile of one more step, each node's
//!   time less the cost of an empty submit).
//! * The autotuner's choices of the run ([`crate::tune::choices`]).
//!
//! With the yardstick's figures (`NFNET_YARDSTICK="matmul_gflops=X copy_gbs=Y"`, the last line
//! of `../shared/yardstick` run right before on the same adapter) every rate also gets its
//! ratio to the yardstick matmul (compute) or copy (memory). Times are wall-clock per
//! submission (one submit and wait), the median of up to 5 after a warm-up.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, GpuTimer, Launch};
use crate::graph::optim::Optimizer;
use crate::graph::plan::{ParamStore, Plan, PlanOptions};
use crate::graph::Op;
use crate::nfnet::{build, forward, weights, Mode, NfnetConfig};
use crate::ops::agc::Agc;
use crate::ops::grouped_conv::{self, Conv2d, Packing, Padding};
use crate::ops::linear::{self, Linear};
use crate::ops::sgd::{self, Sgd};
use crate::ops::step_info::{self, StepInfo};
use crate::ops::weight_std::{self, WeightStd, WsForm};
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

/// One conv of F0 by its role, input size and stride.
struct F0Conv {
    c: usize,
    hw: usize,
    k: usize,
    rs: usize,
    groups: usize,
    stride: usize,
}

/// Every conv of dm_nfnet_f0 at `res`, in network order (repeats included).
fn f0_convs(res: usize) -> Vec<F0Conv> {
    let conv = |c, hw, k, rs, groups, stride| F0Conv {
        c,
        hw,
        k,
        rs,
        groups,
        stride,
    };
    let mut v = vec![
        conv(3, res, 16, 3, 1, 2),
        conv(16, res / 2, 32, 3, 1, 1),
        conv(32, res / 2, 64, 3, 1, 1),
        conv(64, res / 2, 128, 3, 1, 2),
    ];
    let (widths, depths, strides) = ([256, 512, 1536, 1536], [1, 2, 6, 3], [1, 2, 2, 2]);
    let (mut c, mut hw) = (128, res / 4);
    for s in 0..4 {
        let (out, mid) = (widths[s], widths[s] / 2);
        let groups = mid / 128;
        for b in 0..depths[s] {
            let stride = if b == 0 { strides[s] } else { 1 };
            let out_hw = hw / stride;
            if b == 0 {
                v.push(conv(c, out_hw, out, 1, 1, 1)); // shortcut, after the pool
            }
            v.push(conv(c, hw, mid, 1, 1, 1));
            v.push(conv(mid, hw, mid, 3, groups, stride));
            v.push(conv(mid, out_hw, mid, 3, groups, 1));
            v.push(conv(mid, out_hw, out, 1, 1, 1));
            c = out;
            hw = out_hw;
        }
    }
    v.push(conv(1536, hw, 3072, 1, 1, 1));
    v
}

fn spec(n: usize, f: &F0Conv) -> Conv2d {
    Conv2d {
        n,
        c: f.c,
        h: f.hw,
        w: f.hw,
        k: f.k,
        r: f.rs,
        s: f.rs,
        groups: f.groups,
        stride: (f.stride, f.stride),
        pad: Padding::same(f.hw, f.hw, f.rs, f.rs, (f.stride, f.stride)),
        bias: true,
    }
}

fn shape_name(s: &Conv2d) -> String {
    format!("n{}_c{}_g{}_{}x{}_k{}_s{}_o{}", s.n, s.c, s.groups, s.h, s.w, s.r, s.stride.0, s.k)
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

/// The kernel rows whose key contains every word of `filters`, each passed to `each` as it is
/// measured (see the module docs).
pub fn kernel_rows(
    gpu: &Gpu,
    filters: &[String],
    yardstick: Option<Yardstick>,
    each: &mut dyn FnMut(&KernelRow),
) -> Result<Vec<KernelRow>> {
    let wanted = |key: &str| filters.iter().all(|f| key.contains(f.as_str()));
    let mut rows = Vec::new();
    let mut push = |r: KernelRow| {
        each(&r);
        rows.push(r);
    };
    let mut seen = Vec::new();
    for f in f0_convs(192) {
        let s = spec(8, &f);
        let name = shape_name(&s);
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let passes = ["forward", "backward_input", "backward_weight"];
        let keys = passes.map(|pass| format!("op=grouped_conv pass={pass} shape={name}"));
        if !keys.iter().any(|k| wanted(k)) {
            continue;
        }
        let (x, w, bias, y) = (
            tensor(gpu, "x", &s.x_shape())?,
            tensor(gpu, "w", &s.w_shape())?,
            tensor(gpu, "b", &[s.k])?,
            tensor(gpu, "y", &s.y_shape())?,
        );
        // Weights are packed once per step (with their standardization), not per conv call:
        // time the convs on packed weights, where the autotuner keeps them.
        let packed = |packing| -> Result<GpuTensor> {
            let len = grouped_conv::packed_len(&s, packing);
            let t = match gpu.conv_textures() {
                true => GpuTensor::texture(gpu, "packed", &[len])?,
                false => GpuTensor::zeros(gpu, "packed", &[len])?,
            };
            gpu.run(&[&grouped_conv::pack_weight(gpu, &s, &w, &t, packing)?])?;
            Ok(t)
        };
        let flops = 2.0 * s.macs() as f64;
        for (pass, key) in passes.iter().zip(&keys) {
            if !wanted(key) {
                continue;
            }
            let launch = match *pass {
                "forward" => grouped_conv::forward_packed(gpu, &s, &x, &packed(Packing::OutputInner)?, Some(&bias), &y)?,
                "backward_input" => grouped_conv::backward_input_packed(gpu, &s, &y, &packed(Packing::InputInner)?, &x, false)?,
                _ => {
                    let (dw, db) = (tensor(gpu, "dw", &s.w_shape())?, tensor(gpu, "db", &[s.k])?);
                    grouped_conv::backward_weight(gpu, &s, &x, &y, &dw, Some(&db))?
                }
            };
            push(row(
                yardstick,
                ("grouped_conv", pass, name.clone()),
                time(gpu, &[&launch])?,
                flops,
                0.0,
            ));
        }
    }

    linear_rows(gpu, &wanted, yardstick, &mut push)?;

    let ws_keys = [("weight_std", "forward"), ("weight_std", "backward"), ("sgd", "agc_update")];
    let shapes = ["f0_all_convs", "f0_all_convs", "f0_all_conv_weights"];
    let key = |i: usize| format!("op={} pass={} shape={}", ws_keys[i].0, ws_keys[i].1, shapes[i]);
    if !(0..3).any(|i| wanted(&key(i))) {
        return Ok(rows);
    }
    let (mut fwd, mut bwd, mut update) = (Launch::new(), Launch::new(), Launch::new());
    let info = step_info::tensor(
        gpu,
        StepInfo {
            lr: 0.1,
            ..Default::default()
        },
    )?;
    let sgd = Sgd {
        momentum: 0.9,
        weight_decay: 2e-5,
        nesterov: true,
    };
    let mut tensors = Vec::new();
    let mut elements = 0usize;
    for f in &f0_convs(192) {
        let s = spec(1, f);
        let ws = WeightStd {
            k: s.k,
            fan_in: s.w_shape()[1..].iter().product(),
            eps: 1e-5,
            form: WsForm::Timm,
            multiplier: 1.0,
        };
        let w = tensor(gpu, "w", &s.w_shape())?;
        let gain = tensor(gpu, "gain", &[s.k])?;
        let (w_hat, stats, dw, dgain, dw_sq) = (
            tensor(gpu, "w_hat", &s.w_shape())?,
            tensor(gpu, "stats", &[s.k, 2])?,
            tensor(gpu, "dw", &s.w_shape())?,
            tensor(gpu, "dgain", &[s.k])?,
            tensor(gpu, "dw_sq", &[s.k])?,
        );
        fwd.extend(weight_std::forward(gpu, &ws, &w, &gain, &w_hat, &stats)?);
        bwd.extend(weight_std::backward(gpu, &ws, &w, &gain, &stats, &w_hat, &dw, &dgain, &dw_sq)?);
        let momentum = tensor(gpu, "momentum", &s.w_shape())?;
        let agc = Agc::for_shape(&s.w_shape(), 0.01, 1e-3);
        update.extend(sgd::agc_update(gpu, &agc, &sgd, &info, &dw, &w, &momentum, Some((&stats, &dw_sq)))?);
        elements += w.numel();
        tensors.extend([w, gain, w_hat, stats, dw, dgain, dw_sq, momentum]);
    }
    let e = elements as f64 * 4.0;
    // Bytes moved (each tensor counted once per pass over it): the forward reads w (twice where
    // the adapter does not keep units between its passes) and writes w_hat; the backward reads
    // w and dw_hat (twice each, likewise) and writes dw; the update (its unit norms given by the
    // two, as in a training plan) reads w, g and the momentum and writes w and the momentum.
    // F0's units (at most 1536 values) are all kept where the adapter keeps units.
    let (ws_fwd, ws_bwd) = if gpu.keeps_units() { (2.0, 3.0) } else { (3.0, 5.0) };
    for (i, (launch, bytes)) in [(&fwd, ws_fwd * e), (&bwd, ws_bwd * e), (&update, 5.0 * e)].into_iter().enumerate() {
        if wanted(&key(i)) {
            push(row(
                yardstick,
                (ws_keys[i].0, ws_keys[i].1, shapes[i].into()),
                time(gpu, &[launch])?,
                0.0,
                bytes,
            ));
        }
    }
    Ok(rows)
}

/// The linear rows: every linear layer of dm_nfnet_f0 at batch 8 (SE's two layers in each of
/// the 12 blocks and the classifier head), each pass timed over all of them in one submission.
fn linear_rows(gpu: &Gpu, wanted: &dyn Fn(&str) -> bool, yardstick: Option<Yardstick>, push: &mut dyn FnMut(KernelRow)) -> Result<()> {
    let passes = ["forward", "backward_input", "backward_weight"];
    let shape = "f0_all_linear_n8";
    let key = |pass: &str| format!("op=linear pass={pass} shape={shape}");
    if !passes.iter().any(|p| wanted(&key(p))) {
        return Ok(());
    }
    let config = NfnetConfig::load("f0")?;
    let graph = build(&config, 8, (128, 128), Mode::Eval, 0)?.graph;
    let specs: Vec<Linear> = graph
        .nodes
        .iter()
        .filter_map(|node| match &node.op {
            Op::Linear(l) => Some(*l),
            _ => None,
        })
        .collect();
    let mut launches = [Launch::new(), Launch::new(), Launch::new()];
    let mut tensors = Vec::new();
    let mut macs = 0usize;
    for l in &specs {
        let (x, w, b, y) = (
            tensor(gpu, "x", &[l.n, l.in_features])?,
            tensor(gpu, "w", &[l.out_features, l.in_features])?,
            tensor(gpu, "b", &[l.out_features])?,
            tensor(gpu, "y", &[l.n, l.out_features])?,
        );
        let (dx, dw, db) = (
            tensor(gpu, "dx", &[l.n, l.in_features])?,
            tensor(gpu, "dw", &[l.out_features, l.in_features])?,
            tensor(gpu, "db", &[l.out_features])?,
        );
        let bias = l.bias.then_some(&b);
        launches[0].extend(linear::forward(gpu, l, &x, &w, bias, &y)?);
        launches[1].extend(linear::backward_input(gpu, l, &y, &w, &dx, false)?);
        launches[2].extend(linear::backward_weight(gpu, l, &x, &y, &dw, l.bias.then_some(&db))?);
        macs += l.n * l.in_features * l.out_features;
        tensors.extend([x, w, b, y, dx, dw, db]);
    }
    for (pass, launch) in passes.iter().zip(&launches) {
        if wanted(&key(pass)) {
            push(row(
                yardstick,
                ("linear", pass, shape.into()),
                time(gpu, &[launch])?,
                2.0 * macs as f64,
                0.0,
            ));
        }
    }
    Ok(())
}

/// Steps timed per model row after the warm-up.
const MODEL_STEPS: usize = 3;

/// Times `plan`'s step `MODEL_STEPS` times after a warm-up: (wall ms, GPU ms, encode ms) means.
fn time_plan(gpu: &Gpu, plan: &Plan) -> Result<(f64, Option<f64>, f64)> {
    let timer = GpuTimer::new(gpu);
    plan.step(gpu)?;
    gpu.wait()?;
    let (mut wall, mut gpu_ms, mut encode) = (0.0, 0.0, 0.0);
    for _ in 0..MODEL_STEPS {
        let start = Instant::now();
        encode += plan.submit_timed(gpu, true, timer.as_ref(), |_| Ok(()))?;
        gpu.wait()?;
        wall += start.elapsed().as_secs_f64();
        if let Some(t) = &timer {
            gpu_ms += t.read_ms(gpu)?;
        }
    }
    let n = MODEL_STEPS as f64;
    Ok((wall / n * 1e3, timer.map(|_| gpu_ms / n), encode / n * 1e3))
}

/// The training-step and inference rows of one model case (see the module docs).
pub fn model_rows(gpu: &Gpu, case: &ModelCase, yardstick: Option<Yardstick>) -> Result<Vec<ModelRow>> {
    let config = NfnetConfig::load(&case.model)?;
    let (n, res) = (case.batch, case.resolution);
    crate::nfnet::forward::check_input(&[n, 3, res, res])?;
    let macs_per_image = build(&config, 1, (res, res), Mode::Eval, 0)?.graph.macs() as f64;
    let mut input = crate::testing::Rng::new(1);
    let images: Vec<f32> = input.normal(n * 3 * res * res).iter().map(|&v| v as f32).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % config.num_classes) as u32).collect();
    let row = |mode, (ms, gpu_ms, encode_ms): (f64, Option<f64>, f64), passes: f64, conv_share, profile_ms, submit_overhead_ms| {
        let images_per_second = n as f64 / (ms / 1e3);
        let effective_gflops = 2.0 * passes * macs_per_image * images_per_second / 1e9;
        ModelRow {
            model: case.model.clone(),
            resolution: res,
            batch: n,
            mode,
            images_per_second,
            ms,
            gpu_ms,
            encode_ms,
            effective_gflops,
            ratio: yardstick.map(|y| effective_gflops / y.matmul_gflops),
            conv_share,
            profile_ms,
            submit_overhead_ms,
        }
    };

    let optimizer = Optimizer::paper();
    let model = forward::training_model(&config, n, (res, res), &gpu.limits, &optimizer)?;
    let keep = model.loss.into_iter().collect();
    let store = ParamStore::for_graph(gpu, &model.graph)?;
    weights::init(gpu, &model.graph, &store, 0)?;
    let plan = Plan::new(
        gpu,
        model.graph,
        &store,
        &PlanOptions {
            keep,
            prepare_params: false,
        },
    )?;
    let feed = |plan: &Plan, name: &str| {
        plan.tensor(name)
            .cloned()
            .ok_or_else(|| Error::invalid("bench", format!("the plan has no {name}")))
    };
    feed(&plan, "input")?.write_f32(gpu, &images)?;
    feed(&plan, "labels")?.write_u32(gpu, &labels)?;
    let info = StepInfo {
        lr: 1e-4,
        ema_decay: 0.0,
        step: 0,
        micro: 0,
    };
    step_info::write(gpu, &feed(&plan, "step_info")?, info)?;
    let train = time_plan(gpu, &plan)?;
    // Each node of the profile is its own submit and wait, which costs a fixed overhead that
    // the one-submit step does not pay: take the median cost of an empty submit off every
    // node, so that the hundreds of tiny update nodes do not inflate the non-conv share.
    let mut empty: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            gpu.run(&[]).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    empty.sort_by(f64::total_cmp);
    let overhead = empty[empty.len() / 2];
    let profile: Vec<(&crate::graph::Node, f64)> = plan
        .profile(gpu)?
        .into_iter()
        .map(|(node, secs)| (node, (secs - overhead).max(0.0)))
        .collect();
    let total: f64 = profile.iter().map(|(_, s)| s).sum();
    let conv: f64 = profile
        .iter()
        .filter(|(node, _)| {
            matches!(
                node.op,
                Op::Conv(_)
                    | Op::ConvBackwardInput(..)
                    | Op::ConvBackwardWeight(_)
                    | Op::PackWeight(..)
                    | Op::PackWeightPair(_)
                    | Op::PackActivation(..)
            )
        })
        .map(|(_, s)| s)
        .sum();
    let mut by_op: Vec<(String, f64)> = Vec::new();
    for (node, secs) in &profile {
        match by_op.iter_mut().find(|(op, _)| op == node.op.name()) {
            Some((_, ms)) => *ms += secs * 1e3,
            None => by_op.push((node.op.name().to_string(), secs * 1e3)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    let train_row = row("train", train, 3.0, Some(conv / total.max(1e-12)), by_op, Some(overhead * 1e3));
    drop(plan);

    let model = build(&config, n, (res, res), Mode::Eval, 0)?;
    let plan = Plan::new(
        gpu,
        model.graph,
        &store,
        &PlanOptions {
            keep: vec![model.logits],
            prepare_params: true,
        },
    )?;
    plan.prepare(gpu)?;
    feed(&plan, "input")?.write_f32(gpu, &images)?;
    let infer = time_plan(gpu, &plan)?;
    Ok(vec![train_row, row("inference", infer, 1.0, None, Vec::new(), None)])
}

/// Everything `nfnet bench` measured, as written to its JSON file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub adapter: String,
    pub yardstick: Option<Yardstick>,
    pub autotune: bool,
    pub kernels: Vec<KernelRow>,
    pub models: Vec<ModelRow>,
    pub autotune_choices: Vec<crate::tune::Choice>,
}
