//! `nfnet forward`: run a checkpoint on a batch and report what timm would.
//!
//! Given weights and a batch, returns `logits`; with labels also `loss` (mean cross-entropy, no
//! label smoothing); with `grads` every parameter's gradient as `grad.<name>`; with
//! `train_steps = N` every parameter after N steps on the same batch as `step<N>.<name>`. The
//! logits, loss and gradients are those of the given weights, before any step. Dropout and
//! stochastic depth are off, so every output is a deterministic function of the inputs.

use super::config::NfnetConfig;
use super::model::{build, Mode, Model};
use super::weights::{self, HostData, HostTensor};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::graph::autodiff;
use crate::graph::optim::{add_optimizer, Optimizer};
use crate::graph::plan::{ParamStore, Plan, PlanOptions};
use crate::ops::step_info::{self, StepInfo};
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

fn read_tensor(gpu: &Gpu, t: &GpuTensor) -> Result<HostTensor> {
    Ok(HostTensor::f32(t.shape(), t.read_f32(gpu)?))
}

/// Uploads the batch into a plan's input (and labels) tensors.
fn upload(gpu: &Gpu, plan: &Plan, images: &[f32], labels: Option<&[u32]>) -> Result<()> {
    plan.tensor("input").expect("every model has an input").write_f32(gpu, images)?;
    if let (Some(labels), Some(t)) = (labels, plan.tensor("labels")) {
        t.write_u32(gpu, labels)?;
    }
    Ok(())
}

/// Runs `config` with `weights` on `input` (and `labels`); see the module docs.
pub fn forward(
    gpu: &Gpu,
    config: &NfnetConfig,
    weights: &BTreeMap<String, HostTensor>,
    weights_name: &str,
    input: &HostTensor,
    labels: Option<&HostTensor>,
    options: &ForwardOptions,
) -> Result<BTreeMap<String, HostTensor>> {
    let (n, h, w) = check_input(&input.shape)?;
    let images = input.as_f32("input")?;
    let labels = labels.map(|l| check_labels(l, n, config.num_classes)).transpose()?;
    if labels.is_none() && (options.grads || options.train_steps > 0) {
        return Err(Error::invalid(
            "forward",
            "gradients and training steps need labels in the input file",
        ));
    }
    let config = NfnetConfig {
        dropout: 0.0,
        stochastic_depth: 0.0,
        ..config.clone()
    };
    let mode = if labels.is_some() {
        Mode::Train {
            label_smoothing: 0.0,
            mixed_targets: false,
        }
    } else {
        Mode::Eval
    };
    let mut model = build(&config, n, (h, w), mode, 0)?;
    let store = ParamStore::for_graph(gpu, &model.graph)?;
    weights::load(gpu, &model.graph, &store, weights, weights_name, false, 0)?;

    let mut keep = vec![model.logits];
    keep.extend(model.loss);
    let mut grads = Vec::new();
    if options.grads {
        grads = autodiff::backward(&mut model.graph, &gpu.limits)?.params;
        keep.extend(grads.iter().map(|&(_, g)| g));
    }
    let plan = Plan::new(
        gpu,
        model.graph,
        &store,
        &PlanOptions {
            keep,
            prepare_params: false,
        },
    )?;
    upload(gpu, &plan, images, labels.as_deref())?;
    plan.step(gpu)?;
    let mut out = BTreeMap::new();
    out.insert("logits".to_string(), read_tensor(gpu, plan.tensor_id(model.logits).expect("kept"))?);
    if let Some(loss) = model.loss {
        out.insert("loss".to_string(), read_tensor(gpu, plan.tensor_id(loss).expect("kept"))?);
    }
    for &(p, g) in &grads {
        let name = format!("grad.{}", plan.graph().tensors[p].name);
        out.insert(name, read_tensor(gpu, plan.tensor_id(g).expect("kept"))?);
    }
    drop(plan);

    if options.train_steps > 0 {
        let train = training_model(&config, n, (h, w), &gpu.limits, &options.optimizer)?;
        let plan = Plan::new(gpu, train.graph, &store, &PlanOptions::default())?;
        upload(gpu, &plan, images, labels.as_deref())?;
        let info = plan.tensor("step_info").expect("a training graph has a step info");
        for step in 0..options.train_steps {
            step_info::write(
                gpu,
                info,
                StepInfo {
                    lr: options.lr,
                    ema_decay: 0.0,
                    step: step as u32,
                    micro: 0,
                },
            )?;
            plan.step(gpu)?;
        }
        for (name, t) in store.iter() {
            out.insert(format!("step{}.{name}", options.train_steps), read_tensor(gpu, t)?);
        }
    }
    Ok(out)
}

/// The model of one training step: forward, loss (no label smoothing), backward, AGC and SGD.
pub fn training_model(config: &NfnetConfig, n: usize, hw: (usize, usize), limits: &wgpu::Limits, optimizer: &Optimizer) -> Result<Model> {
    let mut model = build(
        config,
        n,
        hw,
        Mode::Train {
            label_smoothing: 0.0,
            mixed_targets: false,
        },
        0,
    )?;
    let grads = autodiff::backward(&mut model.graph, limits)?;
    add_optimizer(&mut model.graph, &grads, optimizer, 1);
    Ok(model)
}
