//! The one recipe for each kind of plan, used by training, inference, `nfnet forward`, the
//! benchmarks and the tests alike:
//!
//! * a **training step** ([`TrainingPlan`]): the model in training mode with its loss, the
//!   backward pass ([`autodiff`]), then (with an optimizer) the update phase ([`optim`]: AGC
//!   and SGD, gradient accumulation over micro-batches, the moving average of the weights);
//! * an **inference pass** ([`InferencePlan`]): the model in evaluation mode, the weights
//!   standardized and packed once per change of weights ([`InferencePlan::prepare`]), the
//!   logits kept.
//!
//! Both compile over a [`ParamStore`] (one store serves every plan of a model) with a
//! [`Tuner`]; [`training_memory`] and [`inference_memory`] plan the same graphs without a GPU.
//!
//! [`autodiff`]: crate::graph::autodiff
//! [`optim`]: crate::graph::optim

use super::builder::{build, Mode, Model};
use super::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::graph::optim::{add_ema, add_optimizer, Optimizer};
use crate::graph::plan::{memory, MemoryReport, Plan, PlanOptions};
use crate::graph::{autodiff, ParamStore, TensorId};
use crate::ops::grouped_conv::Storage;
use crate::tune::Tuner;

/// What a training step computes; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingSetup {
    /// Images per pass (per micro-batch).
    pub batch: usize,
    /// Input height and width.
    pub resolution: (usize, usize),
    pub label_smoothing: f32,
    /// The labels are MixUp/CutMix targets `[N, 3]` rather than class indices.
    pub mixed_targets: bool,
    /// Seeds dropout and stochastic depth.
    pub seed: u64,
    /// The update after the backward pass; `None` computes the gradients only.
    pub optimizer: Option<Optimizer>,
    /// Passes per optimizer step, their gradients summed.
    pub micro_batches: usize,
    /// The gradients are averaged over data-parallel ranks between the passes and the update
    /// (`crate::train::collective`): the update reads `accum.<name>` tensors, which the trainer
    /// overwrites with the mean, even with one micro-batch.
    pub data_parallel: bool,
    /// Keeps a moving average of every parameter, `ema.<name>`.
    pub ema: bool,
    /// Keeps the logits readable after a step.
    pub keep_logits: bool,
    /// Keeps every parameter's gradient readable after a step.
    pub keep_gradients: bool,
}

impl TrainingSetup {
    /// A step of `batch` images of `resolution` with the paper's optimizer, one pass, no label
    /// smoothing, no moving average, only the loss kept.
    pub fn new(batch: usize, resolution: (usize, usize)) -> TrainingSetup {
        TrainingSetup {
            batch,
            resolution,
            label_smoothing: 0.0,
            mixed_targets: false,
            seed: 0,
            optimizer: Some(Optimizer::paper()),
            micro_batches: 1,
            data_parallel: false,
            ema: false,
            keep_logits: false,
            keep_gradients: false,
        }
    }
}

/// The graph of a training step: the model with its backward pass and update, the gradients
/// (`param -> gradient`), and the tensors to keep.
pub struct TrainingGraph {
    pub model: Model,
    pub gradients: Vec<(TensorId, TensorId)>,
    pub keep: Vec<TensorId>,
}

/// The graph of one training step of `config`.
pub fn training_graph(config: &ModelConfig, setup: &TrainingSetup) -> Result<TrainingGraph> {
    let mode = Mode::Train {
        label_smoothing: setup.label_smoothing,
        mixed_targets: setup.mixed_targets,
    };
    let mut model = build(config, setup.batch, setup.resolution, mode, setup.seed)?;
    let gradients = autodiff::backward(&mut model.graph)?;
    if let Some(optimizer) = &setup.optimizer {
        let accumulate = setup.micro_batches > 1 || setup.data_parallel;
        add_optimizer(&mut model.graph, &gradients, optimizer, setup.micro_batches, accumulate);
    }
    if setup.ema {
        add_ema(&mut model.graph);
    }
    let mut keep: Vec<TensorId> = model.loss.into_iter().collect();
    if setup.keep_logits {
        keep.push(model.logits);
    }
    if setup.keep_gradients {
        keep.extend(gradients.params.iter().map(|&(_, g)| g));
    }
    Ok(TrainingGraph {
        model,
        gradients: gradients.params,
        keep,
    })
}

/// A compiled training step and the tensors the host writes and reads.
pub struct TrainingPlan {
    plan: Plan,
    input: TensorId,
    labels: Option<TensorId>,
    loss: Option<TensorId>,
    logits: TensorId,
    step_info: Option<TensorId>,
    gradients: Vec<(TensorId, TensorId)>,
    keep: Vec<TensorId>,
}

impl TrainingPlan {
    /// Compiles a training step of `config` over `store`.
    pub fn new(gpu: &Gpu, tuner: &Tuner, config: &ModelConfig, setup: &TrainingSetup, store: &ParamStore) -> Result<TrainingPlan> {
        let TrainingGraph { model, gradients, keep } = training_graph(config, setup)?;
        let options = PlanOptions {
            keep: keep.clone(),
            prepare_params: false,
        };
        let step_info = model.graph.find("step_info");
        Ok(TrainingPlan {
            step_info,
            plan: Plan::new(gpu, model.graph, store, &options, tuner)?,
            input: model.input,
            labels: model.labels,
            loss: model.loss,
            logits: model.logits,
            gradients,
            keep,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn kept(&self, t: Option<TensorId>, what: &str) -> Result<&GpuTensor> {
        t.filter(|t| self.keep.contains(t))
            .and_then(|t| self.plan.tensor_id(t))
            .ok_or_else(|| Error::invalid("training plan", format!("the step keeps no {what}")))
    }

    /// The images `[N, 3, H, W]`, written before each pass.
    pub fn input(&self) -> &GpuTensor {
        self.plan.tensor_id(self.input).expect("every model has an input")
    }

    /// The labels, written before each pass.
    pub fn labels(&self) -> Result<&GpuTensor> {
        (self.labels.and_then(|t| self.plan.tensor_id(t))).ok_or_else(|| Error::invalid("training plan", "the step has no labels"))
    }

    /// The step info (learning rate, EMA decay, step and micro-batch counters), where the graph
    /// reads one (an update phase, dropout).
    pub fn step_info(&self) -> Option<&GpuTensor> {
        self.step_info.and_then(|t| self.plan.tensor_id(t))
    }

    /// The mean loss of the last pass, `[1]`.
    pub fn loss(&self) -> Result<&GpuTensor> {
        self.kept(self.loss, "loss")
    }

    /// The logits of the last pass (with [`TrainingSetup::keep_logits`]).
    pub fn logits(&self) -> Result<&GpuTensor> {
        self.kept(Some(self.logits), "logits")
    }

    /// Every parameter's name and gradient (with [`TrainingSetup::keep_gradients`]).
    pub fn gradients(&self) -> Result<Vec<(&str, &GpuTensor)>> {
        let graph = self.plan.graph();
        self.gradients
            .iter()
            .map(|&(p, g)| Ok((graph.tensors[p].name.as_str(), self.kept(Some(g), "gradients")?)))
            .collect()
    }
}

/// A compiled inference pass and its input and logits.
pub struct InferencePlan {
    plan: Plan,
    input: GpuTensor,
    logits: GpuTensor,
}

/// The graph of an inference pass of `config` over `batch` images of `resolution`.
pub fn inference_graph(config: &ModelConfig, batch: usize, resolution: (usize, usize)) -> Result<Model> {
    build(config, batch, resolution, Mode::Eval, 0)
}

impl InferencePlan {
    /// Compiles an inference pass of `config` over `store`. Run [`InferencePlan::prepare`] once
    /// the weights are in the store, and again whenever they change.
    pub fn new(
        gpu: &Gpu,
        tuner: &Tuner,
        config: &ModelConfig,
        batch: usize,
        resolution: (usize, usize),
        store: &ParamStore,
    ) -> Result<InferencePlan> {
        let model = inference_graph(config, batch, resolution)?;
        let options = PlanOptions {
            keep: vec![model.logits],
            prepare_params: true,
        };
        let plan = Plan::new(gpu, model.graph, store, &options, tuner)?;
        let input = plan.tensor_id(model.input).expect("every model has an input").clone();
        let logits = plan.tensor_id(model.logits).expect("kept").clone();
        Ok(InferencePlan { plan, input, logits })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Images per pass.
    pub fn batch(&self) -> usize {
        self.input.shape()[0]
    }

    /// Standardizes and packs the weights: after they change, before the next pass.
    pub fn prepare(&self, gpu: &Gpu) -> Result<()> {
        self.plan.prepare(gpu)
    }

    /// The logits `[N, classes]` of `images` (`[N, 3, H, W]`, normalized), read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn logits(&self, gpu: &Gpu, images: &[f32]) -> Result<Vec<f32>> {
        pollster::block_on(self.logits_async(gpu, images))
    }

    /// [`InferencePlan::logits`] without blocking (in a browser).
    pub async fn logits_async(&self, gpu: &Gpu, images: &[f32]) -> Result<Vec<f32>> {
        self.input.write_f32(gpu, images)?;
        self.plan.step(gpu)?;
        self.logits.read_f32_async(gpu).await
    }
}

/// The parameters of `config`, zero-filled, for its plans to share.
pub fn param_store(gpu: &Gpu, config: &ModelConfig) -> Result<ParamStore> {
    ParamStore::for_graph(gpu, &inference_graph(config, 1, (32, 32))?.graph)
}

/// The memory a training step plans on an adapter with `limits` whose conv kernels read
/// `storage` (the loss and what `setup` keeps kept).
pub fn training_memory(config: &ModelConfig, setup: &TrainingSetup, limits: &wgpu::Limits, storage: Storage) -> Result<MemoryReport> {
    let TrainingGraph { model, keep, .. } = training_graph(config, setup)?;
    let options = PlanOptions {
        keep,
        prepare_params: false,
    };
    Ok(memory::report(&model.graph, &options, storage, limits))
}

/// The memory an inference pass plans (weights standardized once, logits kept).
pub fn inference_memory(
    config: &ModelConfig,
    batch: usize,
    resolution: (usize, usize),
    limits: &wgpu::Limits,
    storage: Storage,
) -> Result<MemoryReport> {
    let model = inference_graph(config, batch, resolution)?;
    let options = PlanOptions {
        keep: vec![model.logits],
        prepare_params: true,
    };
    Ok(memory::report(&model.graph, &options, storage, limits))
}
