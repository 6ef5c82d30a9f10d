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
//!
//! [`Trainer::new_in`] and [`Trainer::resume_in`] make one rank of a data-parallel run over a
//! [`Collective`] (MPI with the `mpi` feature, or threads with a GPU each): see
//! [`data_parallel`].

pub mod checkpoint;
pub mod collective;
pub mod data_parallel;
#[cfg(not(target_arch = "wasm32"))]
mod fit;
mod losses;
#[cfg(feature = "mpi")]
pub mod mpi;
mod options;
#[cfg(feature = "plot")]
mod plot;
pub mod report;

pub use checkpoint::Checkpoint;
pub use collective::{Collective, LocalGroup};
pub use options::{default_threads, TrainOptions, TrainOverrides, TrainState, DEFAULT_RESOLUTION};

use crate::classify::{Classifier, ClassifierOptions, EvalStats};
use crate::data::{Dataset, Loader, LoaderOptions, Shard, Source, Subset, Transform};
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
    /// Seconds of the epoch spent averaging gradients over the ranks (0 on one device).
    pub exchange_seconds: f64,
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
    /// The data-parallel ranks this one trains with, and its gradients' buckets.
    group: Option<Box<dyn Collective>>,
    exchange: Option<data_parallel::Exchange>,
    bucket_bytes: u64,
    exchange_seconds: f64,
}

impl<'g> Trainer<'g> {
    /// A new run on `data`, its parameters initialised from `options.seed` (the class count
    /// follows the data). [`Trainer::load_weights`] then starts it from trained weights instead.
    pub fn new(gpu: &'g Gpu, tuner: &Tuner, options: TrainOptions, data: &Dataset) -> Result<Trainer<'g>> {
        Trainer::start(gpu, tuner, options, data, None)
    }

    /// One rank of a data-parallel run over `group` (see [`data_parallel`]): every rank calls
    /// this with the same options and data, `options.batch_size` being the global batch, and
    /// the ranks go on as one device would (up to the order of the gradient sums).
    pub fn new_in(gpu: &'g Gpu, tuner: &Tuner, options: TrainOptions, data: &Dataset, group: Box<dyn Collective>) -> Result<Trainer<'g>> {
        Trainer::start(gpu, tuner, options, data, Some(group))
    }

    fn start(
        gpu: &'g Gpu,
        tuner: &Tuner,
        mut options: TrainOptions,
        data: &Dataset,
        group: Option<Box<dyn Collective>>,
    ) -> Result<Trainer<'g>> {
        options.model.num_classes = data.classes().len();
        let trainer = Trainer::build(gpu, tuner, options, data, group)?;
        weights::init(gpu, trainer.train.plan().graph(), &trainer.store, trainer.options.seed)?;
        trainer.start_moving_average()?;
        trainer.check_weights_agree()?;
        Ok(trainer)
    }

    /// Starts from `weights` (timm names: fine-tuning); a classifier of another class count is
    /// left out and freshly initialised, as the report lists.
    pub fn load_weights(&mut self, weights: &Weights) -> Result<LoadReport> {
        let graph = self.train.plan().graph();
        let report = weights::load(self.gpu, graph, &self.store, weights, Head::Fresh(self.options.seed))?;
        self.start_moving_average()?;
        self.check_weights_agree()?;
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
        Trainer::resume_with(gpu, tuner, checkpoint, overrides, data, None)
    }

    /// [`Trainer::resume`] as one rank of a data-parallel run ([`Trainer::new_in`]). The run may
    /// have been saved by any number of ranks, or by one device: the global batch is the same,
    /// so it goes on as the uninterrupted run would (up to the order of the gradient sums).
    pub fn resume_in(
        gpu: &'g Gpu,
        tuner: &Tuner,
        checkpoint: &Checkpoint,
        overrides: &TrainOverrides,
        data: &Dataset,
        group: Box<dyn Collective>,
    ) -> Result<Trainer<'g>> {
        Trainer::resume_with(gpu, tuner, checkpoint, overrides, data, Some(group))
    }

    fn resume_with(
        gpu: &'g Gpu,
        tuner: &Tuner,
        checkpoint: &Checkpoint,
        overrides: &TrainOverrides,
        data: &Dataset,
        group: Option<Box<dyn Collective>>,
    ) -> Result<Trainer<'g>> {
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
        let mut trainer = Trainer::build(gpu, tuner, options, data, group)?;
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
        // The position in the epoch, counted in passes of the saved run's split of the batch
        // (saved at a step's end), in this run's; the epoch's losses so far are rank 0's to add.
        let mut state = checkpoint.state;
        let saved_passes = match state.passes_per_step {
            0 => checkpoint.options.micro_batches.max(1),
            p => p,
        };
        state.passes_per_step = trainer.shard().passes_per_step();
        state.batch = state.batch / saved_passes * state.passes_per_step;
        if trainer.shard().rank != 0 {
            (state.loss_sum, state.loss_count) = (0.0, 0);
        }
        trainer.state = state;
        trainer.check_weights_agree()?;
        Ok(trainer)
    }

    /// Builds the training plan and the evaluation for `options` on `data`; the parameters
    /// are left to the caller.
    fn build(
        gpu: &'g Gpu,
        tuner: &Tuner,
        options: TrainOptions,
        data: &Dataset,
        group: Option<Box<dyn Collective>>,
    ) -> Result<Trainer<'g>> {
        options.validate()?;
        if data.train.is_empty() || data.val.is_empty() {
            return Err(Error::invalid("data", "the training or validation set is empty"));
        }
        let shard = shard_of(group.as_deref(), &options);
        let passes = shard.passes_per_step();
        if options.batch_size % passes != 0 {
            let message = format!(
                "--batch-size {} does not split into {} ranks x {} micro-batches of equal size: use a multiple of {passes}",
                options.batch_size, shard.ranks, shard.run
            );
            return Err(Error::invalid("data-parallel training", message));
        }
        let pass = options.batch_size / passes;
        let steps_per_epoch = crate::data::train_batches(data.train.len(), pass) / passes;
        if steps_per_epoch == 0 {
            let message = format!("{} training images make no full batch of {}", data.train.len(), options.batch_size);
            return Err(Error::invalid("data", message));
        }
        let store = param_store(gpu, &options.model)?;
        let (train, eval) = Trainer::plans(gpu, tuner, &options, &store, data.classes(), shard)?;
        let exchange = match shard.ranks > 1 {
            true => Some(data_parallel::Exchange::new(
                gpu,
                train.plan(),
                accumulators(&train),
                data_parallel::BUCKET_BYTES,
            )?),
            false => None,
        };
        Ok(Trainer {
            gpu,
            losses: LossLog::new(gpu, options.loss_every)?,
            classes: data.classes().to_vec(),
            state: TrainState {
                train_images: data.train.len(),
                passes_per_step: passes,
                ..Default::default()
            },
            options,
            train,
            store,
            eval,
            steps_per_epoch,
            interrupt: None,
            deferred_tuner: None,
            group,
            exchange,
            exchange_seconds: 0.0,
            bucket_bytes: data_parallel::BUCKET_BYTES,
        })
    }

    /// Which passes of every step this rank makes.
    fn shard(&self) -> Shard {
        shard_of(self.group.as_deref(), &self.options)
    }

    /// On data-parallel ranks, that every rank holds rank 0's weights (a page in a browser is
    /// one rank).
    fn check_weights_agree(&self) -> Result<()> {
        match &self.group {
            #[cfg(not(target_arch = "wasm32"))]
            Some(g) => data_parallel::weights_agree(self.gpu, g.as_ref(), &self.store, self.state.step),
            _ => Ok(()),
        }
    }

    /// The training step's plan over `store` and the evaluation over the same parameters (or
    /// the step's moving averages of them), with `tuner`'s kernel choices.
    fn plans(
        gpu: &'g Gpu,
        tuner: &Tuner,
        options: &TrainOptions,
        store: &ParamStore,
        classes: &[String],
        shard: Shard,
    ) -> Result<(TrainingPlan, Classifier<'g>)> {
        let (micro, res) = (options.batch_size / shard.passes_per_step(), options.resolution as usize);
        let setup = TrainingSetup {
            label_smoothing: options.label_smoothing,
            mixed_targets: options.augment.mixup > 0.0 || options.augment.cutmix > 0.0,
            seed: options.seed,
            optimizer: Some(options.optimizer()),
            micro_batches: options.micro_batches,
            data_parallel: shard.ranks > 1,
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
        let (train, eval) = Trainer::plans(self.gpu, tuner, &self.options, &self.store, &self.classes, self.shard())?;
        // The parameters are the store's, shared by both plans; the rest is the plan's own.
        for (name, old) in self.state_tensors().into_iter().filter(|(name, _)| self.store.get(name).is_none()) {
            let new = (train.plan().tensor(&name)).ok_or_else(|| Error::invalid("retune", format!("the new plan has no {name}")))?;
            new.copy_from(self.gpu, &old)?;
        }
        if self.exchange.is_some() {
            self.exchange = Some(data_parallel::Exchange::new(
                self.gpu,
                train.plan(),
                accumulators(&train),
                self.bucket_bytes,
            )?);
        }
        (self.train, self.eval) = (train, eval);
        Ok(())
    }

    /// Exchanges the gradients of a data-parallel step in buckets of at most `bytes` (a tensor
    /// larger than that goes alone) instead of [`data_parallel::BUCKET_BYTES`]: smaller buckets
    /// start the exchange earlier in the backward pass, larger ones send fewer messages.
    pub fn set_bucket_bytes(&mut self, bytes: u64) -> Result<()> {
        self.bucket_bytes = bytes;
        if self.exchange.is_some() {
            let accumulators = accumulators(&self.train);
            self.exchange = Some(data_parallel::Exchange::new(self.gpu, self.train.plan(), accumulators, bytes)?);
        }
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

    /// Loss, top-1 and top-5 over `source` with the evaluation weights (the EMA when enabled);
    /// data-parallel ranks each evaluate a part and add up the counts.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate(&self, source: &Arc<dyn Source>) -> Result<EvalStats> {
        pollster::block_on(self.evaluate_async(source))
    }

    /// [`Trainer::evaluate`] without blocking (in a browser).
    pub async fn evaluate_async(&self, source: &Arc<dyn Source>) -> Result<EvalStats> {
        let threads = self.options.threads;
        let Some(group) = self.group.as_deref().filter(|g| g.ranks() > 1) else {
            return self.eval.evaluate_async(source, threads).await;
        };
        let part = data_parallel::eval_part(source.len(), group.rank(), group.ranks());
        let part: Arc<dyn Source> = Arc::new(Subset::new(source.clone(), part.collect()));
        let mine = self.eval.evaluate_async(&part, threads).await?;
        data_parallel::merge_stats(group, &mine)
    }

    /// Trains to the end of the current epoch (or until interrupted: returns false then).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_epoch(&mut self, data: &Dataset, on_event: &mut dyn FnMut(Event)) -> Result<bool> {
        pollster::block_on(self.train_epoch_async(data, on_event))
    }

    /// [`Trainer::train_epoch`] without blocking (in a browser, batches are made on the page's
    /// thread, and the loss read-backs yield to the event loop).
    pub async fn train_epoch_async(&mut self, data: &Dataset, on_event: &mut dyn FnMut(Event)) -> Result<bool> {
        let shard = self.shard();
        let (k, passes) = (shard.run, shard.passes_per_step());
        let micro = self.options.batch_size / passes;
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
                shard,
            },
        );
        let batches = self.steps_per_epoch * passes;
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
                pass_index: (batch.index % passes) as u32,
            };
            step_info::write(self.gpu, self.train.step_info().expect("a training step reads the step info"), info)?;
            let last_micro = micro_index + 1 == k;
            let (loss, losses, plan) = (self.train.loss()?, &self.losses, self.train.plan());
            let mut full = false;
            let record = |encoder: &mut wgpu::CommandEncoder| {
                full = losses.record(encoder, loss)?;
                Ok(())
            };
            let interrupted = || self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
            // Ranks agree to stop in the exchange: at the end of the step after the one that
            // saw the interrupt first.
            let mut stop_agreed = false;
            match (&self.exchange, &self.group) {
                (Some(x), Some(group)) if last_micro => {
                    let (any_stop, seconds) = x.step(self.gpu, plan, group.as_ref(), interrupted(), record).await?;
                    (stop_agreed, self.exchange_seconds) = (any_stop, self.exchange_seconds + seconds);
                }
                (exchange, _) => plan.submit(self.gpu, last_micro && exchange.is_none(), record)?,
            }
            images += micro * shard.ranks;
            // At a step's end, the next pass is the next step's first, whichever rank makes it.
            self.state.batch = if last_micro {
                (batch.index / passes + 1) * passes
            } else {
                batch.index + 1
            };
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
            if last_micro && self.group.is_some() && self.state.step % data_parallel::CHECK_EVERY == 0 {
                self.check_weights_agree()?;
            }
            let stop = match &self.exchange {
                Some(_) => stop_agreed,
                None => last_micro && interrupted(),
            };
            if stop {
                self.losses.flush(self.gpu, &mut self.state, k).await?;
                return Ok(false);
            }
        }
        self.losses.flush(self.gpu, &mut self.state, k).await?;
        Ok(true)
    }
}

/// The passes of every step that the rank of `group` makes (every pass without a group).
fn shard_of(group: Option<&dyn Collective>, options: &TrainOptions) -> Shard {
    Shard {
        rank: group.map_or(0, |g| g.rank()),
        ranks: group.map_or(1, |g| g.ranks()),
        run: options.micro_batches.max(1),
    }
}

/// The accumulated gradients of a plan's parameters (`accum.<name>`), the last layers' first: the
/// order in which the backward pass completes them.
fn accumulators(train: &TrainingPlan) -> Vec<GpuTensor> {
    let plan = train.plan();
    (plan.graph().tensors.iter().enumerate().rev())
        .filter(|(_, t)| matches!(t.role, Role::Accumulator))
        .filter_map(|(i, _)| plan.tensor_id(i).cloned())
        .collect()
}
