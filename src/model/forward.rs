//! `nfnet forward`: run a checkpoint on a batch and report what timm would.
//!
//! Given weights and a batch, returns `logits`; with labels also `loss` (mean cross-entropy, no
//! label smoothing); with `grads` every parameter's gradient as `grad.<name>`; with
//! `train_steps = N` every parameter after N steps on the same batch as `step<N>.<name>`. The
//! logits, loss and gradients are those of the given weights, before any step. Dropout and
//! stochastic depth are off, so every output is a deterministic function of the inputs.

use super::config::ModelConfig;
use super::recipe::{param_store, InferencePlan, TrainingPlan, TrainingSetup};
use super::weights::{self, Head, Weights};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::graph::optim::Optimizer;
use crate::io::{HostData, HostTensor};
use crate::ops::step_info::{self, StepInfo};
use crate::tune::Tuner;
use std::collections::BTreeMap;

/// What to compute beyond the logits.
#[derive(Clone, Copy, Debug)]
pub struct ForwardOptions {
    pub grads: bool,
    pub train_steps: usize,
    /// The learning rate of the training steps.
    pub lr: f32,
    pub optimizer: Optimizer,
}

/// Smallest input side: the network divides the image by 32 (stem 4, three stride-2 stages).
pub const MIN_RESOLUTION: usize = 32;

/// Checks a batch of images against the model: `[N, 3, H, W]`, H and W at least 32.
pub fn check_input(shape: &[usize]) -> Result<(usize, usize, usize)> {
    let op = "input";
    match *shape {
        [n, 3, h, w] if n > 0 && h >= MIN_RESOLUTION && w >= MIN_RESOLUTION => Ok((n, h, w)),
        [_, c, _, _] if c != 3 => Err(Error::shape(
            op,
            "images (N, C, H, W)",
            "3 channels (RGB)",
            format!("{c} channels in {shape:?}"),
        )),
        [n, _, h, w] if n > 0 => Err(Error::shape(
            op,
            "image size",
            format!("at least {MIN_RESOLUTION}x{MIN_RESOLUTION}, the network's total stride"),
            format!("{h}x{w}"),
        )),
        _ => Err(Error::shape(op, "images", "[N, 3, H, W] with N > 0", format!("{shape:?}"))),
    }
}

/// Class labels as u32, each below `classes`.
pub fn check_labels(labels: &HostTensor, n: usize, classes: usize) -> Result<Vec<u32>> {
    let values: Vec<i64> = match &labels.data {
        HostData::I64(v) => v.clone(),
        HostData::F32(_) => return Err(Error::shape("labels", "dtype", "integers (i64)", "floating point")),
    };
    if labels.shape != [n] {
        return Err(Error::shape(
            "labels",
            "shape",
            format!("[{n}], one per image"),
            format!("{:?}", labels.shape),
        ));
    }
    match values.iter().position(|&l| l < 0 || l as usize >= classes) {
        Some(i) => Err(Error::invalid(
            "labels",
            format!(
                "label {} at index {i} is not a class index (the model has {classes} classes)",
                values[i]
            ),
        )),
        None => Ok(values.iter().map(|&l| l as u32).collect()),
    }
}

async fn read_tensor(gpu: &Gpu, t: &GpuTensor) -> Result<HostTensor> {
    Ok(HostTensor::f32(t.shape(), t.read_f32_async(gpu).await?))
}

/// Runs `config` with `weights` on `input` (and `labels`); see the module docs.
#[cfg(not(target_arch = "wasm32"))]
pub fn forward(
    gpu: &Gpu,
    tuner: &Tuner,
    config: &ModelConfig,
    weights: &Weights,
    input: &HostTensor,
    labels: Option<&HostTensor>,
    options: &ForwardOptions,
) -> Result<BTreeMap<String, HostTensor>> {
    pollster::block_on(forward_async(gpu, tuner, config, weights, input, labels, options))
}

/// [`forward()`] without blocking (in a browser).
pub async fn forward_async(
    gpu: &Gpu,
    tuner: &Tuner,
    config: &ModelConfig,
    weights: &Weights,
    input: &HostTensor,
    labels: Option<&HostTensor>,
    options: &ForwardOptions,
) -> Result<BTreeMap<String, HostTensor>> {
    let (n, h, w) = check_input(&input.shape)?;
    options.optimizer.validate("forward", options.lr)?;
    let images = input.as_f32("input")?;
    crate::io::check_finite("the input file", "input", images)?;
    let labels = labels.map(|l| check_labels(l, n, config.num_classes)).transpose()?;
    let config = ModelConfig {
        dropout: 0.0,
        stochastic_depth: 0.0,
        ..config.clone()
    };
    let store = param_store(gpu, &config)?;
    let Some(labels) = labels else {
        if options.grads || options.train_steps > 0 {
            return Err(Error::invalid(
                "forward",
                "gradients and training steps need labels in the input file",
            ));
        }
        let plan = InferencePlan::new(gpu, tuner, &config, n, (h, w), &store)?;
        weights::load(gpu, plan.plan().graph(), &store, weights, Head::Strict)?;
        plan.prepare(gpu)?;
        let logits = HostTensor::f32(&[n, config.num_classes], plan.logits_async(gpu, images).await?);
        return Ok(BTreeMap::from([("logits".to_string(), logits)]));
    };
    let setup = TrainingSetup {
        optimizer: None,
        keep_logits: true,
        keep_gradients: options.grads,
        ..TrainingSetup::new(n, (h, w))
    };
    let plan = TrainingPlan::new(gpu, tuner, &config, &setup, &store)?;
    weights::load(gpu, plan.plan().graph(), &store, weights, Head::Strict)?;
    upload(gpu, &plan, images, &labels)?;
    plan.plan().step(gpu)?;
    let mut out = BTreeMap::new();
    out.insert("logits".to_string(), read_tensor(gpu, plan.logits()?).await?);
    out.insert("loss".to_string(), read_tensor(gpu, plan.loss()?).await?);
    if options.grads {
        for (name, g) in plan.gradients()? {
            out.insert(format!("grad.{name}"), read_tensor(gpu, g).await?);
        }
    }
    drop(plan);
    if options.train_steps > 0 {
        let setup = TrainingSetup {
            optimizer: Some(options.optimizer),
            ..TrainingSetup::new(n, (h, w))
        };
        let plan = TrainingPlan::new(gpu, tuner, &config, &setup, &store)?;
        upload(gpu, &plan, images, &labels)?;
        let info = plan.step_info().expect("a training step with an update reads the step info");
        for step in 0..options.train_steps {
            let lr = options.lr;
            step_info::write(
                gpu,
                info,
                StepInfo {
                    lr,
                    ema_decay: 0.0,
                    step: step as u32,
                    ..Default::default()
                },
            )?;
            plan.plan().step(gpu)?;
        }
        for (name, t) in store.iter() {
            out.insert(format!("step{}.{name}", options.train_steps), read_tensor(gpu, t).await?);
        }
    }
    Ok(out)
}

/// Uploads the batch into a training plan's input and labels.
fn upload(gpu: &Gpu, plan: &TrainingPlan, images: &[f32], labels: &[u32]) -> Result<()> {
    plan.input().write_f32(gpu, images)?;
    plan.labels()?.write_u32(gpu, labels)
}
