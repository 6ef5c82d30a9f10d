//! Training: the recipe of the paper on a planned graph.
//!
//! One optimizer step is `micro_batches` passes of forward and backward (gradients summed by
//! `grad_accumulate` when there is more than one), then the update phase: AGC on the raw
//! gradients (the classifier exempt), SGD with Nesterov momentum and weight decay on the
//! `*.weight` tensors, and the EMA of the weights when enabled. The learning rate follows a
//! linear warm-up then a cosine decay to zero ([`TrainOptions::lr_at`]); it, the EMA decay and
//! the dropout counters reach the GPU through the step info, one 16-byte write per pass.
//!
//! The host never waits for the GPU between steps: each pass's loss is copied into a small log
//! on the GPU, and the log is read back every `loss_every` steps, one window late, while the
//! next window already runs. A non-finite loss stops training with the step that produced it.
//!
//! Evaluation runs a separate inference plan over the same parameters (or their moving average):
//! weights standardized once per evaluation, logits read back, loss, top-1 and top-5 computed on
//! the host. [`Trainer::fit`] adds the epoch loop: evaluation, `metrics.csv`, the curves in
//! `metrics.png`, and checkpoints (see [`checkpoint`]); Ctrl-C saves one and stops cleanly.

pub mod checkpoint;
pub mod report;

use crate::data::augment::Augment;
use crate::data::{Dataset, Loader, Source, Transform};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Readback};
use crate::graph::optim::{add_ema, add_optimizer, AgcConfig, Optimizer};
use crate::graph::plan::{ParamStore, Plan, PlanOptions};
use crate::graph::{autodiff, Role, TensorId};
use crate::nfnet::{build, weights, Mode, NfnetConfig};
use crate::ops::ema;
use crate::ops::step_info::{self, StepInfo};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Everything that defines a training run (saved in every checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub model: NfnetConfig,
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Passes per optimizer step (gradient accumulation); must divide `batch_size`.
    pub micro_batches: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Epochs of linear warm-up before the cosine decay.
    pub warmup_epochs: f32,
    pub momentum: f32,
    /// Coupled weight decay on the `*.weight` tensors.
    pub weight_decay: f32,
    pub agc: Option<AgcConfig>,
    pub label_smoothing: f32,
    /// Evaluate a moving average of the weights with this maximum decay.
    pub ema_decay: Option<f64>,
    pub resolution: u32,
    pub augment: Augment,
    /// Evaluation squash-resizes to `resolution + eval_margin`, then centre-crops.
    pub eval_margin: u32,
    pub seed: u64,
    /// Steps between loss read-backs.
    pub loss_every: usize,
    /// Threads that decode and augment images.
    pub threads: usize,
    /// How the data was opened (`data::open`'s arguments), so that a resumed run can reopen it.
    #[serde(default)]
    pub data: DataSpec,
}

/// Threads that decode and augment images by default: half the cores (the rest drive the GPU,
/// or on a software device run its kernels), at least one.
pub fn default_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}

/// The evaluation margin by default at `resolution`: 32 pixels from 128 up (the usual resize
/// then centre crop of ImageNet-sized inputs), none for small images, which have no border to
/// spare.
pub fn default_eval_margin(resolution: u32) -> u32 {
    if resolution >= 128 {
        32
    } else {
        0
    }
}

/// The arguments `data::open` was called with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub spec: String,
    pub val_data: Option<PathBuf>,
    pub val_split: f64,
}

impl TrainOptions {
    /// The defaults of `nfnet train` for `model` at 32x32 (the embedded dataset's size): 4
    /// epochs of batch 32, lr 0.1 after half an epoch of warm-up, momentum 0.9, weight decay
    /// 5e-5, AGC 0.01, label smoothing 0.1, crops of at least 35% of the image, flips.
    pub fn new(model: NfnetConfig) -> TrainOptions {
        TrainOptions {
            model,
            epochs: 4,
            batch_size: 32,
            micro_batches: 1,
            lr: 0.1,
            warmup_epochs: 0.5,
            momentum: 0.9,
            weight_decay: 5e-5,
            agc: Some(AgcConfig {
                clip: 0.01,
                eps: 1e-3,
                style: crate::graph::optim::AgcStyle::Timm,
            }),
            label_smoothing: 0.1,
            ema_decay: None,
            resolution: 32,
            augment: Augment {
                crop_scale: 0.35,
                flip: true,
                mixup: 0.0,
                cutmix: 0.0,
            },
            eval_margin: default_eval_margin(32),
            seed: 0,
            loss_every: 10,
            threads: default_threads(),
            data: DataSpec {
                spec: "synthetic".into(),
                val_data: None,
                val_split: 0.1,
            },
        }
    }

    /// Checks the options against each other and the data.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("training options", m));
        if self.batch_size == 0 {
            return bad("the batch size must be at least 1".into());
        }
        if self.micro_batches == 0 || self.batch_size % self.micro_batches != 0 {
            return bad(format!(
                "{} micro-batches do not divide the batch size {}",
                self.micro_batches, self.batch_size
            ));
        }
        if self.epochs == 0 {
            return bad("train for at least one epoch".into());
        }
        if !(self.lr.is_finite() && self.lr >= 0.0 && self.momentum >= 0.0 && self.weight_decay >= 0.0) {
            return bad(format!(
                "lr {}, momentum {} and weight decay {} must be finite and >= 0",
                self.lr, self.momentum, self.weight_decay
            ));
        }
        if (self.resolution as usize) < crate::nfnet::forward::MIN_RESOLUTION {
            return bad(format!(
                "the resolution must be at least {}, got {}",
                crate::nfnet::forward::MIN_RESOLUTION,
                self.resolution
            ));
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return bad(format!("the EMA decay must be in [0, 1), got {d}"));
            }
        }
        self.model.validate()
    }

    pub fn micro_batch(&self) -> usize {
        self.batch_size / self.micro_batches.max(1)
    }

    /// Linear warm-up to `lr` over `warmup_epochs`, then a cosine decay to 0 at the last step.
    pub fn lr_at(&self, step: u64, steps_per_epoch: usize) -> f32 {
        let total = (self.epochs * steps_per_epoch) as f64;
        let warm = (self.warmup_epochs as f64 * steps_per_epoch as f64).min(total);
        let t = step as f64;
        let lr = if t < warm {
            (t + 1.0) / warm
        } else {
            let span = (total - warm).max(1.0);
            0.5 * (1.0 + (std::f64::consts::PI * ((t - warm) / span).min(1.0)).cos())
        };
        (self.lr as f64 * lr) as f32
    }
}

/// Where training is: the checkpointed counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// The next micro-batch of the epoch.
    pub batch: usize,
    /// The best validation top-1 so far.
    pub best_top1: f64,
    /// Sum and count of the losses read back in the epoch so far (its mean training loss).
    pub loss_sum: f64,
    pub loss_count: u64,
    /// Training images of the data the run was started on (a resumed run must match).
    pub train_images: usize,
}

/// Loss, top-1 and top-5 of an evaluation, with the confusion matrix.
#[derive(Clone, Debug, Default)]
pub struct EvalStats {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

/// What one epoch did.
#[derive(Clone, Debug, Default)]
pub struct EpochStats {
    pub epoch: u64,
    pub step: u64,
    /// Mean training loss over the epoch's passes.
    pub train_loss: f64,
    pub val: EvalStats,
    pub lr: f32,
    pub images_per_second: f64,
    pub seconds: f64,
    /// Files the dataset skipped as unreadable.
    pub skipped: usize,
}

/// Progress reported while training.
pub enum Event<'a> {
    /// A pass was submitted; `loss` when a read-back window completed.
    Step {
        epoch: u64,
        batch: usize,
        batches: usize,
        step: u64,
        lr: f32,
        loss: Option<f32>,
        images_per_second: f64,
    },
    /// Evaluation of the epoch is running.
    Evaluating { epoch: u64 },
    /// An epoch finished (metrics and checkpoints are written).
    Epoch(&'a EpochStats),
    /// A checkpoint was written.
    Checkpoint(&'a Path),
}

/// How a [`Trainer::fit`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum FitEnd {
    Finished,
    /// Interrupted (Ctrl-C); a checkpoint of the exact position was saved here.
    Interrupted(PathBuf),
}

/// The running window of losses: copied on the GPU each pass, read every `loss_every` passes.
struct LossLog {
    log: GpuTensor,
    readback: [Readback; 2],
    /// Passes logged in the current window.
    filled: usize,
    window: usize,
    /// The first step of each readback's window, and its number of passes.
    pending: [(u64, usize); 2],
}

/// The training plan's tensors the host writes before every pass, looked up once.
struct Feeds {
    input: GpuTensor,
    labels: GpuTensor,
    step_info: GpuTensor,
}

/// A model being trained; see the module docs.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    pub options: TrainOptions,
    pub classes: Vec<String>,
    pub state: TrainState,
    plan: Plan,
    feeds: Feeds,
    loss: TensorId,
    store: ParamStore,
    eval: Plan,
    eval_logits: TensorId,
    steps_per_epoch: usize,
    losses: LossLog,
    interrupt: Option<Arc<AtomicBool>>,
}

impl<'g> Trainer<'g> {
    /// A new run on `data`: parameters initialised from `options.seed`, or loaded from timm
    /// weights `init` (a classifier of another class count is re-initialised: fine-tuning).
    pub fn new(gpu: &'g Gpu, mut options: TrainOptions, data: &Dataset, init: Option<&Path>) -> Result<Trainer<'g>> {
        options.model.num_classes = data.classes().len();
        let trainer = Trainer::build(gpu, options, data)?;
        let graph = trainer.plan.graph();
        match init {
            Some(path) => {
                let tensors = weights::read_safetensors(path)?;
                let report = weights::load(
                    gpu,
                    graph,
                    &trainer.store,
                    &tensors,
                    &path.display().to_string(),
                    true,
                    trainer.options.seed,
                )?;
                if !report.reinitialised.is_empty() {
                    eprintln!(
                        "note: {} re-initialised for {} classes",
                        report.reinitialised.join(", "),
                        trainer.options.model.num_classes
                    );
                }
            }
            None => weights::init(gpu, graph, &trainer.store, trainer.options.seed)?,
        }
        // The moving average starts at the initial weights.
        for (name, t) in trainer.store.iter() {
            if let Some(e) = trainer.plan.tensor(&format!("ema.{name}")) {
                e.copy_from(gpu, t)?;
            }
        }
        Ok(trainer)
    }

    /// Builds the plans for `options` on `data`; parameters are left to the caller.
    fn build(gpu: &'g Gpu, options: TrainOptions, data: &Dataset) -> Result<Trainer<'g>> {
        options.validate()?;
        if data.train.is_empty() || data.val.is_empty() {
            return Err(Error::invalid("data", "the training or validation set is empty"));
        }
        let micro = options.micro_batch();
        let steps_per_epoch = crate::data::train_batches(data.train.len(), micro) / options.micro_batches;
        if steps_per_epoch == 0 {
            return Err(Error::invalid(
                "data",
                format!("{} training images make no full batch of {}", data.train.len(), options.batch_size),
            ));
        }
        let res = options.resolution as usize;
        let mixed = options.augment.mixup > 0.0 || options.augment.cutmix > 0.0;
        let mode = Mode::Train {
            label_smoothing: options.label_smoothing,
            mixed_targets: mixed,
        };
        let mut model = build(&options.model, micro, (res, res), mode, options.seed)?;
        let grads = autodiff::backward(&mut model.graph, &gpu.limits)?;
        let opt = Optimizer {
            momentum: options.momentum,
            weight_decay: options.weight_decay,
            nesterov: true,
            agc: options.agc,
        };
        add_optimizer(&mut model.graph, &grads, &opt, options.micro_batches);
        if options.ema_decay.is_some() {
            add_ema(&mut model.graph);
        }
        let loss = model.loss.expect("a training graph has a loss");
        let store = ParamStore::for_graph(gpu, &model.graph)?;
        let plan = Plan::new(
            gpu,
            model.graph,
            &store,
            &PlanOptions {
                keep: vec![loss],
                prepare_params: false,
            },
        )?;

        let feed = |name: &str| {
            plan.tensor(name)
                .cloned()
                .ok_or_else(|| Error::invalid("training plan", format!("no {name} tensor")))
        };
        let feeds = Feeds {
            input: feed("input")?,
            labels: feed("labels")?,
            step_info: feed("step_info")?,
        };

        let eval_model = build(&options.model, micro, (res, res), Mode::Eval, options.seed)?;
        let eval_logits = eval_model.logits;
        let eval_store = match options.ema_decay {
            Some(_) => ParamStore::from_tensors(
                store
                    .iter()
                    .map(|(name, _)| {
                        (
                            name.to_string(),
                            plan.tensor(&format!("ema.{name}")).expect("an EMA per parameter").clone(),
                        )
                    })
                    .collect(),
            ),
            None => ParamStore::from_tensors(store.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()),
        };
        let eval = Plan::new(
            gpu,
            eval_model.graph,
            &eval_store,
            &PlanOptions {
                keep: vec![eval_logits],
                prepare_params: true,
            },
        )?;

        let window = options.loss_every.max(1);
        let losses = LossLog {
            log: GpuTensor::zeros(gpu, "loss log", &[window])?,
            readback: [Readback::new(gpu, window)?, Readback::new(gpu, window)?],
            filled: 0,
            window: 0,
            pending: [(0, 0); 2],
        };
        let classes = data.classes().to_vec();
        Ok(Trainer {
            gpu,
            options,
            classes,
            state: TrainState {
                train_images: data.train.len(),
                ..Default::default()
            },
            plan,
            feeds,
            loss,
            store,
            eval,
            eval_logits,
            steps_per_epoch,
            losses,
            interrupt: None,
        })
    }

    /// Stops [`Trainer::fit`] with a checkpoint when `flag` is set (Ctrl-C).
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// The parameters, by timm name.
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// The training plan (its tensors: `momentum.<name>`, `ema.<name>`).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Every persistent tensor of the run, by name: parameters, momentum and moving averages.
    pub fn state_tensors(&self) -> Vec<(String, GpuTensor)> {
        let graph = self.plan.graph();
        graph
            .tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t.role, Role::Param(_) | Role::Momentum | Role::Ema))
            .filter_map(|(i, t)| self.plan.tensor_id(i).map(|g| (t.name.clone(), g.clone())))
            .collect()
    }

    /// Records the losses of a completed read-back window; a non-finite one stops training.
    fn take_losses(&mut self, which: usize) -> Result<Option<f32>> {
        let (first, count) = self.losses.pending[which];
        let Some(values) = self.losses.readback[which].finish(self.gpu)? else {
            return Ok(None);
        };
        let values = &values[..count];
        let passes = self.options.micro_batches as u64;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Diverged {
                step: first + i as u64 / passes,
                loss: values[i],
            });
        }
        self.state.loss_sum += values.iter().map(|&v| v as f64).sum::<f64>();
        self.state.loss_count += values.len() as u64;
        Ok(Some(values.iter().sum::<f32>() / values.len().max(1) as f32))
    }

    /// Reads the passes logged so far and waits for every pending read-back.
    fn flush_losses(&mut self) -> Result<Option<f32>> {
        let mut last = None;
        let w = self.losses.window;
        // The older window first.
        for which in [(w + 1) % 2, w % 2] {
            if let Some(l) = self.take_losses(which)? {
                last = Some(l);
            }
        }
        if self.losses.filled > 0 {
            let which = w % 2;
            let count = self.losses.filled;
            let first = self.state.step - (count as u64).div_ceil(self.options.micro_batches as u64);
            let (rb, log) = (&self.losses.readback[which], &self.losses.log);
            let mut encoder = self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("loss flush") });
            rb.copy(&mut encoder, log)?;
            self.gpu.submit(encoder.finish());
            rb.request();
            self.losses.pending[which] = (first, count);
            self.losses.filled = 0;
            self.losses.window += 1;
            if let Some(l) = self.take_losses(which)? {
                last = Some(l);
            }
        }
        Ok(last)
    }

    /// Trains to the end of the current epoch (or until interrupted: returns false then).
    pub fn train_epoch(&mut self, data: &Dataset, on_event: &mut dyn FnMut(Event)) -> Result<bool> {
        let k = self.options.micro_batches;
        let micro = self.options.micro_batch();
        let res = self.options.resolution as usize;
        let loader = Loader::start(
            data.train.clone(),
            micro,
            self.options.resolution,
            Transform::Train(self.options.augment),
            self.options.seed,
            self.state.epoch,
            self.state.batch,
            self.options.threads,
        );
        let batches = self.steps_per_epoch * k;
        let window = self.options.loss_every.max(1);
        let started = Instant::now();
        let mut images = 0usize;
        for batch in loader {
            if batch.index >= batches {
                break;
            }
            debug_assert_eq!(batch.images.len(), micro * 3 * res * res);
            let micro_index = batch.index % k;
            let step = self.state.step;
            let lr = self.options.lr_at(step, self.steps_per_epoch);
            self.feeds.input.write_f32(self.gpu, &batch.images)?;
            self.feeds
                .labels
                .write_u32(self.gpu, batch.targets.as_deref().unwrap_or(&batch.labels))?;
            let decay = self.options.ema_decay.map_or(0.0, |d| ema::decay(d, step));
            step_info::write(
                self.gpu,
                &self.feeds.step_info,
                StepInfo {
                    lr,
                    ema_decay: decay,
                    step: step as u32,
                    micro: micro_index as u32,
                },
            )?;
            let last_micro = micro_index + 1 == k;
            let slot = self.losses.filled;
            let window_full = slot + 1 == window;
            let which = self.losses.window % 2;
            {
                let (loss, log, rb) = (
                    self.plan.tensor_id(self.loss).expect("kept"),
                    &self.losses.log,
                    &self.losses.readback[which],
                );
                self.plan.submit(self.gpu, last_micro, |encoder| {
                    encoder.copy_buffer_to_buffer(loss.buffer()?, 0, log.buffer()?, slot as u64 * 4, 4);
                    if window_full {
                        rb.copy(encoder, log)?;
                    }
                    Ok(())
                })?;
            }
            images += micro;
            self.state.batch = batch.index + 1;
            if last_micro {
                self.state.step += 1;
            }
            let mut loss = None;
            if window_full {
                self.losses.readback[which].request();
                let first = self.state.step - (window as u64).div_ceil(k as u64);
                self.losses.pending[which] = (first, window);
                self.losses.filled = 0;
                self.losses.window += 1;
                // The previous window, whose passes have run while this one was queued.
                loss = self.take_losses((which + 1) % 2)?;
            } else {
                self.losses.filled += 1;
            }
            let rate = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            on_event(Event::Step {
                epoch: self.state.epoch,
                batch: self.state.batch,
                batches,
                step: self.state.step,
                lr,
                loss,
                images_per_second: rate,
            });
            if last_micro && self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                self.flush_losses()?;
                return Ok(false);
            }
        }
        self.flush_losses()?;
        Ok(true)
    }

    /// Loss, top-1 and top-5 over `source` with the evaluation weights (the EMA when enabled).
    pub fn evaluate(&self, source: &Arc<dyn Source>) -> Result<EvalStats> {
        evaluate(
            self.gpu,
            &self.eval,
            self.eval_logits,
            source,
            self.options.resolution,
            self.options.eval_margin,
            self.options.threads,
            self.classes.len(),
        )
    }

    /// Trains until `options.epochs`: every epoch evaluates on `data.val`, appends to
    /// `out/metrics.csv`, redraws `out/metrics.png`, and writes `out/last.safetensors` (and
    /// `out/best.safetensors` when top-1 improves).
    pub fn fit(&mut self, data: &Dataset, out: &Path, on_event: &mut dyn FnMut(Event)) -> Result<FitEnd> {
        std::fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.display().to_string(),
            error: source,
        })?;
        let mut history = report::read_history(&out.join("metrics.csv"));
        while (self.state.epoch as usize) < self.options.epochs {
            let started = Instant::now();
            if self.state.batch == 0 {
                (self.state.loss_sum, self.state.loss_count) = (0.0, 0);
            }
            let step_before = self.state.step;
            let done = self.train_epoch(data, on_event)?;
            if !done {
                let path = out.join("last.safetensors");
                checkpoint::save(self, &path)?;
                on_event(Event::Checkpoint(&path));
                return Ok(FitEnd::Interrupted(path));
            }
            on_event(Event::Evaluating { epoch: self.state.epoch });
            let val = self.evaluate(&data.val)?;
            let seconds = started.elapsed().as_secs_f64();
            let steps = self.state.step - step_before;
            let stats = EpochStats {
                epoch: self.state.epoch,
                step: self.state.step,
                train_loss: self.state.loss_sum / self.state.loss_count.max(1) as f64,
                lr: self.options.lr_at(self.state.step.saturating_sub(1), self.steps_per_epoch),
                images_per_second: (steps as usize * self.options.batch_size) as f64 / seconds.max(1e-9),
                seconds,
                skipped: data.train.skipped().len(),
                val,
            };
            self.state.epoch += 1;
            self.state.batch = 0;
            let best = stats.val.top1 > self.state.best_top1;
            if best {
                self.state.best_top1 = stats.val.top1;
            }
            history.push(report::Row::from(&stats));
            report::write(out, &history)?;
            let last = out.join("last.safetensors");
            checkpoint::save(self, &last)?;
            on_event(Event::Checkpoint(&last));
            if best {
                let path = out.join("best.safetensors");
                checkpoint::save(self, &path)?;
                on_event(Event::Checkpoint(&path));
            }
            on_event(Event::Epoch(&stats));
        }
        Ok(FitEnd::Finished)
    }
}

/// Runs the inference plan `eval` over `source`: loss (plain cross-entropy), top-1, top-5 and
/// the confusion matrix, computed on the host from the logits.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    gpu: &Gpu,
    eval: &Plan,
    logits: TensorId,
    source: &Arc<dyn Source>,
    resolution: u32,
    margin: u32,
    threads: usize,
    classes: usize,
) -> Result<EvalStats> {
    eval.prepare(gpu)?;
    let input = eval.tensor("input").expect("an input");
    let output = eval.tensor_id(logits).expect("kept");
    let batch = input.shape()[0];
    let loader = Loader::start(source.clone(), batch, resolution, Transform::Eval { margin }, 0, 0, 0, threads);
    let mut stats = EvalStats {
        confusion: vec![vec![0; classes]; classes],
        ..Default::default()
    };
    let (mut loss, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    for b in loader {
        input.write_f32(gpu, &b.images)?;
        eval.step(gpu)?;
        let z = output.read_f32(gpu)?;
        for (row, &label) in z.chunks(classes).zip(&b.labels).take(b.count) {
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            loss += lse - row[label as usize] as f64;
            let above = row.iter().filter(|&&v| v > row[label as usize]).count();
            top1 += (above == 0) as usize;
            top5 += (above < 5) as usize;
            let predicted = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
            stats.confusion[label as usize][predicted] += 1;
        }
        stats.images += b.count;
    }
    let n = stats.images.max(1) as f64;
    stats.loss = loss / n;
    stats.top1 = top1 as f64 / n;
    stats.top5 = top5 as f64 / n;
    Ok(stats)
}
