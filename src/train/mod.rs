//! Training: the recipe of the paper on a planned graph.
//!
//! One optimizer step is `micro_batches` passes of forward and backward (gradients summed by
//! `grad_accumulate` when there is more than one), then the update phase: AGC on the raw
//! gradients (the classifier exempt), SGD with Nesterov momentum and weight decay on the
//! `*.weight` tensors, and the EMA of the weights when enabled. The learning rate follows a
//! linear warm-up then a cosine decay to zero ([`TrainOptions::lr_at`]); it, the EMA decay and
//! the dropout counters reach the GPU through the step info, one 16-byte write per pass. The
//! host never waits for the GPU between steps (the loss log, `losses`).
//!
//! Evaluation is a [`Classifier`] over the same parameters (or their moving average): weights
//! standardized once per evaluation, logits read back, loss, top-1 and top-5 computed on the
//! host. [`Trainer::fit`] adds the epoch loop: evaluation, `metrics.csv`, the curves in
//! `metrics.png` ([`report`]), and checkpoints ([`checkpoint`]); an interrupt (Ctrl-C) saves
//! one and stops cleanly. Progress reaches the caller as [`Event`]s; the library prints nothing.

pub mod checkpoint;
mod losses;
mod options;
#[cfg(feature = "plot")]
mod plot;
pub mod report;

pub use checkpoint::Checkpoint;
pub use options::{default_threads, TrainOptions, TrainOverrides, TrainState, DEFAULT_RESOLUTION};

use crate::classify::{Classifier, ClassifierOptions, EvalStats};
use crate::data::{Dataset, Loader, LoaderOptions, Source, Transform};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::graph::{ParamStore, Role};
use crate::model::recipe::{param_store, TrainingPlan, TrainingSetup};
use crate::model::weights::{self, Head, LoadReport, Weights};
use crate::ops::ema;
use crate::ops::step_info::{self, StepInfo};
use crate::tune::Tuner;
use losses::LossLog;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use web_time::Instant;

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
    Evaluating {
        epoch: u64,
    },
    /// An epoch finished (metrics and checkpoints are written).
    Epoch(&'a EpochStats),
    /// A checkpoint was written.
    Checkpoint(&'a Path),
    /// The kernels left untimed are being timed, and the plans built again with the choices
    /// ([`Trainer::tune_after_first_epoch`]); `Tuned` follows.
    Tuning,
    Tuned,
}

/// How a [`Trainer::fit`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum FitEnd {
    Finished,
    /// Interrupted (Ctrl-C); a checkpoint of the exact position was saved here.
    Interrupted(PathBuf),
}

/// What [`Trainer::fit`] writes in its folder.
pub const RUN_FILES: [&str; 4] = ["last.safetensors", "best.safetensors", "metrics.csv", "metrics.png"];

/// A model being trained; see the module docs.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    pub options: TrainOptions,
    pub classes: Vec<String>,
    pub state: TrainState,
    train: TrainingPlan,
    store: ParamStore,
    eval: Classifier<'g>,
    steps_per_epoch: usize,
    losses: LossLog,
    interrupt: Option<Arc<AtomicBool>>,
    /// Times what the plans were built without, after the first epoch.
    deferred_tuner: Option<Tuner>,
}

impl<'g> Trainer<'g> {
    /// A new run on `data`, its parameters initialised from `options.seed` (the class count
    /// follows the data). [`Trainer::load_weights`] then starts it from trained weights instead.
    pub fn new(gpu: &'g Gpu, tuner: &Tuner, mut options: TrainOptions, data: &Dataset) -> Result<Trainer<'g>> {
        options.model.num_classes = data.classes().len();
        let trainer = Trainer::build(gpu, tuner, options, data)?;
        weights::init(gpu, trainer.train.plan().graph(), &trainer.store, trainer.options.seed)?;
        trainer.start_moving_average()?;
        Ok(trainer)
    }

    /// Starts from `weights` (timm names: fine-tuning); a classifier of another class count is
    /// left out and freshly initialised, as the report lists.
    pub fn load_weights(&mut self, weights: &Weights) -> Result<LoadReport> {
        let graph = self.train.plan().graph();
        let report = weights::load(self.gpu, graph, &self.store, weights, Head::Fresh(self.options.seed))?;
        self.start_moving_average()?;
        Ok(report)
    }

    /// The moving average starts at the weights.
    fn start_moving_average(&self) -> Result<()> {
        for (name, t) in self.store.iter() {
            if let Some(e) = self.train.plan().tensor(&format!("ema.{name}")) {
                e.copy_from(self.gpu, t)?;
            }
        }
        Ok(())
    }

    /// A run that continues `checkpoint` on `data` (the options as [`TrainOverrides::resumed`]
    /// merges them), bit for bit as if it had never stopped.
    pub fn resume(gpu: &'g Gpu, tuner: &Tuner, checkpoint: &Checkpoint, overrides: &TrainOverrides, data: &Dataset) -> Result<Trainer<'g>> {
        let options = overrides.resumed(checkpoint)?;
        let source = &checkpoint.source;
        if checkpoint.classes != data.classes() {
            let message = format!(
                "{source} was trained on classes {:?}, the data has {:?}",
                checkpoint.classes,
                data.classes()
            );
            return Err(Error::invalid("resume", message));
        }
        let images = checkpoint.state.train_images;
        if images != 0 && images != data.train.len() {
            let saved = &checkpoint.options.data;
            let message = format!(
                "{source} was trained on {images} images of {:?} (validation: {}), the data given has {} training images; \
                 resume on the same data, with the same --val-data or --val-split",
                saved.source,
                match &saved.val_data {
                    Some(v) => format!("{}", v.display()),
                    None => format!("a {} split", saved.val_split),
                },
                data.train.len()
            );
            return Err(Error::invalid("resume", message));
        }
        let mut trainer = Trainer::build(gpu, tuner, options, data)?;
        for (name, t) in trainer.state_tensors() {
            let weights_error = |missing: Vec<String>, misshaped: Vec<String>| Error::Weights {
                file: source.clone(),
                missing,
                unexpected: vec![],
                misshaped,
                not_f32: vec![],
            };
            let host = checkpoint
                .tensors
                .get(&name)
                .ok_or_else(|| weights_error(vec![name.clone()], vec![]))?;
            if host.shape != t.shape() {
                let m = format!("{name} (expected {:?}, got {:?})", t.shape(), host.shape);
                return Err(weights_error(vec![], vec![m]));
            }
            let values = host.as_f32(&name)?;
            crate::io::check_finite(&source, &name, values)?;
            t.write_f32(gpu, values)?;
        }
        trainer.state = checkpoint.state;
        Ok(trainer)
    }

    /// Builds the training plan and the evaluation for `options` on `data`; the parameters
    /// are left to the caller.
    fn build(gpu: &'g Gpu, tuner: &Tuner, options: TrainOptions, data: &Dataset) -> Result<Trainer<'g>> {
        options.validate()?;
        if data.train.is_empty() || data.val.is_empty() {
            return Err(Error::invalid("data", "the training or validation set is empty"));
        }
        let micro = options.micro_batch();
        let steps_per_epoch = crate::data::train_batches(data.train.len(), micro) / options.micro_batches;
        if steps_per_epoch == 0 {
            let message = format!("{} training images make no full batch of {}", data.train.len(), options.batch_size);
            return Err(Error::invalid("data", message));
        }
        let store = param_store(gpu, &options.model)?;
        let (train, eval) = Trainer::plans(gpu, tuner, &options, &store, data.classes())?;
        Ok(Trainer {
            gpu,
            losses: LossLog::new(gpu, options.loss_every)?,
            classes: data.classes().to_vec(),
            state: TrainState {
                train_images: data.train.len(),
                ..Default::default()
            },
            options,
            train,
            store,
            eval,
            steps_per_epoch,
            interrupt: None,
            deferred_tuner: None,
        })
    }

    /// The training step's plan over `store` and the evaluation over the same parameters (or
    /// the step's moving averages of them), with `tuner`'s kernel choices.
    fn plans(
        gpu: &'g Gpu,
        tuner: &Tuner,
        options: &TrainOptions,
        store: &ParamStore,
        classes: &[String],
    ) -> Result<(TrainingPlan, Classifier<'g>)> {
        let (micro, res) = (options.micro_batch(), options.resolution as usize);
        let setup = TrainingSetup {
            label_smoothing: options.label_smoothing,
            mixed_targets: options.augment.mixup > 0.0 || options.augment.cutmix > 0.0,
            seed: options.seed,
            optimizer: Some(options.optimizer()),
            micro_batches: options.micro_batches,
            ema: options.ema_decay.is_some(),
            ..TrainingSetup::new(micro, (res, res))
        };
        let train = TrainingPlan::new(gpu, tuner, &options.model, &setup, store)?;
        // Evaluation reads the weights, or their moving average.
        let eval_store = match options.ema_decay {
            Some(_) => ParamStore::from_tensors(
                (store.iter())
                    .map(|(name, _)| {
                        let ema = train.plan().tensor(&format!("ema.{name}")).expect("an EMA per parameter");
                        (name.to_string(), ema.clone())
                    })
                    .collect(),
            ),
            None => ParamStore::from_tensors(store.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()),
        };
        let eval_options = ClassifierOptions {
            resolution: Some(options.resolution),
            margin: Some(options.eval_margin),
            batch: micro,
            classes: Some(classes.to_vec()),
        };
        let eval = Classifier::over(gpu, tuner, &options.model, &eval_store, &eval_options)?;
        Ok((train, eval))
    }

    /// Builds the plans again with `tuner`'s choices (timing the kernels it has no cached choice
    /// for), carrying the momentum and moving averages over: the run goes on bit for bit as it
    /// would have (tuned kernels compute the same sums; see [`crate::tune`]). Both plans live
    /// until the new one holds the state.
    pub fn retune(&mut self, tuner: &Tuner) -> Result<()> {
        let (train, eval) = Trainer::plans(self.gpu, tuner, &self.options, &self.store, &self.classes)?;
        // The parameters are the store's, shared by both plans; the rest is the plan's own.
        for (name, old) in self.state_tensors().into_iter().filter(|(name, _)| self.store.get(name).is_none()) {
            let new = (train.plan().tensor(&name)).ok_or_else(|| Error::invalid("retune", format!("the new plan has no {name}")))?;
            new.copy_from(self.gpu, &old)?;
        }
        (self.train, self.eval) = (train, eval);
        Ok(())
    }

    /// Has [`Trainer::fit`] time, after the first epoch it finishes, the kernels this run's plans
    /// were built without (a [`crate::tune::TuneOptions::cached_only`] tuner's
    /// [`Tuner::untimed`] ones) and go on with them ([`Trainer::retune`]), so that training
    /// starts without waiting for the tuner. Nothing is timed when no epoch follows.
    pub fn tune_after_first_epoch(&mut self, tuner: Tuner) {
        self.deferred_tuner = Some(tuner);
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

    /// The training step's plan (its tensors: `momentum.<name>`, `ema.<name>`).
    pub fn plan(&self) -> &TrainingPlan {
        &self.train
    }

    /// Every persistent tensor of the run, by name: parameters, momentum and moving averages.
    pub fn state_tensors(&self) -> Vec<(String, GpuTensor)> {
        let plan = self.train.plan();
        (plan.graph().tensors.iter().enumerate())
            .filter(|(_, t)| matches!(t.role, Role::Param(_) | Role::Momentum | Role::Ema))
            .filter_map(|(i, t)| plan.tensor_id(i).map(|g| (t.name.clone(), g.clone())))
            .collect()
    }

    /// The model as it is now (the moving average when the run keeps one), ready to classify.
    pub fn classifier(&self) -> Result<&Classifier<'g>> {
        self.eval.prepare()?;
        Ok(&self.eval)
    }

    /// Loss, top-1 and top-5 over `source` with the evaluation weights (the EMA when enabled).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate(&self, source: &Arc<dyn Source>) -> Result<EvalStats> {
        self.eval.evaluate(source, self.options.threads)
    }

    /// [`Trainer::evaluate`] without blocking (in a browser).
    pub async fn evaluate_async(&self, source: &Arc<dyn Source>) -> Result<EvalStats> {
        self.eval.evaluate_async(source, self.options.threads).await
    }

    /// Trains to the end of the current epoch (or until interrupted: returns false then).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_epoch(&mut self, data: &Dataset, on_event: &mut dyn FnMut(Event)) -> Result<bool> {
        pollster::block_on(self.train_epoch_async(data, on_event))
    }

    /// [`Trainer::train_epoch`] without blocking (in a browser, batches are made on the page's
    /// thread, and the loss read-backs yield to the event loop).
    pub async fn train_epoch_async(&mut self, data: &Dataset, on_event: &mut dyn FnMut(Event)) -> Result<bool> {
        let (k, micro) = (self.options.micro_batches, self.options.micro_batch());
        let loader = Loader::start(
            data.train.clone(),
            &LoaderOptions {
                batch: micro,
                resolution: self.options.resolution,
                transform: Transform::Train(self.options.augment),
                seed: self.options.seed,
                epoch: self.state.epoch,
                first_batch: self.state.batch,
                threads: self.options.threads,
            },
        );
        let batches = self.steps_per_epoch * k;
        let started = Instant::now();
        let mut images = 0usize;
        for batch in loader.take_while(|b| b.index < batches) {
            let (micro_index, step) = (batch.index % k, self.state.step);
            let lr = self.options.lr_at(step, self.steps_per_epoch);
            self.train.input().write_f32(self.gpu, &batch.images)?;
            self.train
                .labels()?
                .write_u32(self.gpu, batch.targets.as_deref().unwrap_or(&batch.labels))?;
            let info = StepInfo {
                lr,
                ema_decay: self.options.ema_decay.map_or(0.0, |d| ema::decay(d, step)),
                step: step as u32,
                micro: micro_index as u32,
            };
            step_info::write(self.gpu, self.train.step_info().expect("a training step reads the step info"), info)?;
            let last_micro = micro_index + 1 == k;
            let (loss, losses) = (self.train.loss()?, &self.losses);
            let mut full = false;
            self.train.plan().submit(self.gpu, last_micro, |encoder| {
                full = losses.record(encoder, loss)?;
                Ok(())
            })?;
            images += micro;
            self.state.batch = batch.index + 1;
            self.state.step += last_micro as u64;
            let loss = self.losses.submitted(self.gpu, &mut self.state, k, full).await?;
            on_event(Event::Step {
                epoch: self.state.epoch,
                batch: self.state.batch,
                batches,
                step: self.state.step,
                lr,
                loss,
                images_per_second: images as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
            if last_micro && self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                self.losses.flush(self.gpu, &mut self.state, k).await?;
                return Ok(false);
            }
        }
        self.losses.flush(self.gpu, &mut self.state, k).await?;
        Ok(true)
    }

    /// The files a run writes in its folder ([`Trainer::fit`]'s `out`) that are there now.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_files(out: &Path) -> Vec<PathBuf> {
        (RUN_FILES.iter().map(|f| out.join(f))).filter(|p| p.exists()).collect()
    }

    /// Trains until `options.epochs`: every epoch evaluates on `data.val`, appends to
    /// `out/metrics.csv`, redraws `out/metrics.png`, and writes `out/last.safetensors` (and
    /// `out/best.safetensors` when top-1 improves).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fit(&mut self, data: &Dataset, out: &Path, on_event: &mut dyn FnMut(Event)) -> Result<FitEnd> {
        std::fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.display().to_string(),
            error: source,
        })?;
        // The rows of the epochs this run has behind it (a resumed run's; none for a new one).
        let mut history = report::read_history(&out.join("metrics.csv"));
        history.retain(|row| row.epoch <= self.state.epoch);
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
            if !stats.val.loss.is_finite() || !stats.train_loss.is_finite() {
                // Diverged: nothing of this epoch is written, the last checkpoint stays.
                return Err(Error::NotFinite {
                    what: format!("epoch {}", stats.epoch + 1),
                    message: format!(
                        "the validation loss is {} ({} of {} images with NaN or infinite logits) and the training loss {}; \
                         training stopped, and the checkpoints of the epochs before it are kept (try a lower --lr)",
                        stats.val.loss, stats.val.non_finite, stats.val.images, stats.train_loss
                    ),
                });
            }
            self.state.epoch += 1;
            self.state.batch = 0;
            let best = stats.val.top1 > self.state.best_top1;
            if best {
                self.state.best_top1 = stats.val.top1;
            }
            history.push(report::Row::from(&stats));
            report::write(out, &history)?;
            #[cfg(feature = "plot")]
            plot::write(out, &history)?;
            let last = out.join("last.safetensors");
            checkpoint::save(self, &last)?;
            on_event(Event::Checkpoint(&last));
            if best {
                let path = out.join("best.safetensors");
                checkpoint::save(self, &path)?;
                on_event(Event::Checkpoint(&path));
            }
            on_event(Event::Epoch(&stats));
            if let Some(tuner) = self
                .deferred_tuner
                .take()
                .filter(|_| (self.state.epoch as usize) < self.options.epochs)
            {
                on_event(Event::Tuning);
                self.retune(&tuner)?;
                on_event(Event::Tuned);
            }
        }
        Ok(FitEnd::Finished)
    }
}
