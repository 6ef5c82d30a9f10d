//! The model rows: a whole training step and an inference pass of a model case.

use super::{ModelCase, ModelRow, Yardstick};
use crate::error::Result;
use crate::gpu::{Gpu, GpuTimer};
use crate::graph::plan::Plan;
use crate::graph::{Node, Op};
use crate::model::recipe::{inference_graph, param_store, InferencePlan, TrainingPlan, TrainingSetup};
use crate::model::{forward, weights, ModelConfig};
use crate::ops::step_info::{self, StepInfo};
use crate::tune::Tuner;
use rand::SeedableRng;
use std::time::Instant;

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

/// A node-by-node profile of one step.
struct Profile {
    /// The share of the step's time in conv kernels (the passes and their operands' packing).
    conv_share: f64,
    /// Milliseconds per op, slowest first.
    by_op: Vec<(String, f64)>,
    /// The cost of an empty submit, taken off every node (ms).
    overhead_ms: f64,
}

/// The profile of one step of `plan`. Each node runs as its own submit and wait, which the
/// one-submit step does not pay: the median cost of an empty submit comes off every node, or
/// the hundreds of tiny update nodes would inflate the non-conv share.
fn profile(gpu: &Gpu, plan: &Plan) -> Result<Profile> {
    let mut empty: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            gpu.run(&[]).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    empty.sort_by(f64::total_cmp);
    let overhead = empty[empty.len() / 2];
    let profile: Vec<(&Node, f64)> = (plan.profile(gpu)?.into_iter())
        .map(|(node, secs)| (node, (secs - overhead).max(0.0)))
        .collect();
    let total: f64 = profile.iter().map(|(_, s)| s).sum();
    let is_conv = |op: &Op| {
        matches!(
            op,
            Op::Conv(_)
                | Op::ConvBackwardInput(..)
                | Op::ConvBackwardWeight(_)
                | Op::PackWeight(..)
                | Op::PackWeightPair(_)
                | Op::PackActivation(..)
        )
    };
    let conv: f64 = profile.iter().filter(|(node, _)| is_conv(&node.op)).map(|(_, s)| s).sum();
    let mut by_op: Vec<(String, f64)> = Vec::new();
    for (node, secs) in &profile {
        match by_op.iter_mut().find(|(op, _)| op == node.op.name()) {
            Some((_, ms)) => *ms += secs * 1e3,
            None => by_op.push((node.op.name().to_string(), secs * 1e3)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(Profile {
        conv_share: conv / total.max(1e-12),
        by_op,
        overhead_ms: overhead * 1e3,
    })
}

/// The training-step and inference rows of one model case (see the module docs).
pub fn model_rows(gpu: &Gpu, tuner: &Tuner, case: &ModelCase, yardstick: Option<Yardstick>) -> Result<Vec<ModelRow>> {
    let config = ModelConfig::load(&case.model)?;
    let (n, res) = (case.batch, case.resolution);
    forward::check_input(&[n, 3, res, res])?;
    let macs_per_image = inference_graph(&config, 1, (res, res))?.graph.macs() as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let images: Vec<f32> = (0..n * 3 * res * res).map(|_| weights::normal(&mut rng) as f32).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % config.num_classes) as u32).collect();
    let row = |mode, (ms, gpu_ms, encode_ms): (f64, Option<f64>, f64), passes: f64| {
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
            conv_share: None,
            profile_ms: Vec::new(),
            submit_overhead_ms: None,
        }
    };

    let store = param_store(gpu, &config)?;
    let train = TrainingPlan::new(gpu, tuner, &config, &TrainingSetup::new(n, (res, res)), &store)?;
    weights::init(gpu, train.plan().graph(), &store, 0)?;
    train.input().write_f32(gpu, &images)?;
    train.labels()?.write_u32(gpu, &labels)?;
    let info = StepInfo {
        lr: 1e-4,
        ema_decay: 0.0,
        ..Default::default()
    };
    step_info::write(gpu, train.step_info().expect("a training step reads the step info"), info)?;
    let timed = time_plan(gpu, train.plan())?;
    let profile = profile(gpu, train.plan())?;
    let train_row = ModelRow {
        conv_share: Some(profile.conv_share),
        profile_ms: profile.by_op,
        submit_overhead_ms: Some(profile.overhead_ms),
        ..row("train", timed, 3.0)
    };
    drop(train);

    let infer = InferencePlan::new(gpu, tuner, &config, n, (res, res), &store)?;
    infer.prepare(gpu)?;
    infer.logits(gpu, &images)?;
    Ok(vec![train_row, row("inference", time_plan(gpu, infer.plan())?, 1.0)])
}
