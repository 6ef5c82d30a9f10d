//! What defines a training run ([`TrainOptions`], saved in every checkpoint), where it stands
//! ([`TrainState`]), and the rules that turn what a user asked for ([`TrainOverrides`]: the
//! command line of `nfnet train`) into the options of a new or a resumed run.

use super::checkpoint::Checkpoint;
use crate::classify::default_margin;
use crate::data::augment::{Augment, AugmentPreset};
use crate::data::{self, DataSpec, Dataset, OpenOptions};
use crate::error::{Error, Result};
use crate::graph::optim::{AgcConfig, AgcStyle, Optimizer};
use crate::model::forward::MIN_RESOLUTION;
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};

/// Everything that defines a training run (saved in every checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub model: ModelConfig,
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
    /// The data the run trains on, so that a resumed run reopens it.
    #[serde(default)]
    pub data: DataSpec,
}

/// Threads that decode and augment images by default: half the cores (the rest drive the GPU,
/// or on a software device run its kernels), at least one.
pub fn default_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}

impl TrainOptions {
    /// The defaults of `nfnet train` for `model` at 32x32 (the embedded dataset's size): 4
    /// epochs of batch 32, lr 0.1 after half an epoch of warm-up, momentum 0.9, weight decay
    /// 5e-5, AGC 0.01, label smoothing 0.1, crops of at least 35% of the image, flips.
    pub fn new(model: ModelConfig) -> TrainOptions {
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
                style: AgcStyle::Timm,
            }),
            label_smoothing: 0.1,
            ema_decay: None,
            resolution: 32,
            augment: AugmentPreset::Standard.augment(32),
            eval_margin: default_margin(32),
            seed: 0,
            loss_every: 10,
            threads: default_threads(),
            data: DataSpec::default(),
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
        self.optimizer().validate("training options", self.lr)?;
        let finite_at_least_0 = [
            ("warmup_epochs (--warmup)", self.warmup_epochs),
            ("mixup (--mixup)", self.augment.mixup),
            ("cutmix (--cutmix)", self.augment.cutmix),
        ];
        for (name, v) in finite_at_least_0 {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        let s = self.augment.crop_scale;
        if !(s > 0.0 && s <= 1.0) {
            return bad(format!(
                "crop_scale (--crop-scale), the smallest crop's share of the image, must be in (0, 1], got {s}"
            ));
        }
        let ls = self.label_smoothing;
        if !(0.0..1.0).contains(&ls) {
            return bad(format!("label_smoothing (--label-smoothing) must be in [0, 1), got {ls}"));
        }
        if (self.resolution as usize) < MIN_RESOLUTION {
            return bad(format!("the resolution must be at least {MIN_RESOLUTION}, got {}", self.resolution));
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return bad(format!("the EMA decay must be in [0, 1), got {d}"));
            }
        }
        self.model.validate()
    }

    /// Linear warm-up to `lr` over `warmup_epochs`, then a cosine decay to 0 at the last step.
    pub fn lr_at(&self, step: u64, steps_per_epoch: usize) -> f32 {
        let total = (self.epochs * steps_per_epoch) as f64;
        let warm = (self.warmup_epochs as f64 * steps_per_epoch as f64).min(total);
        let t = step as f64;
        let lr = if t < warm {
            // Step t ends at t + 1; never past the peak when warm-up ends mid-step.
            ((t + 1.0) / warm).min(1.0)
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
    /// The next pass of the epoch: its micro-batch on one device; with data-parallel ranks,
    /// counted over all ranks' passes (see [`crate::data::Shard`]).
    pub batch: usize,
    /// Passes per step over all ranks when `batch` was counted (0: the micro-batches, as
    /// checkpoints from before data-parallel training say), so a run resumes on any number.
    pub passes_per_step: usize,
    /// The best validation top-1 so far.
    pub best_top1: f64,
    /// Sum and count of the losses read back in the epoch so far (its mean training loss).
    pub loss_sum: f64,
    pub loss_count: u64,
    /// Training images of the data the run was started on (a resumed run must match).
    pub train_images: usize,
}

impl TrainOptions {
    /// The update of every step: SGD with Nesterov momentum, weight decay and AGC as set.
    pub fn optimizer(&self) -> Optimizer {
        Optimizer {
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: true,
            agc: self.agc,
        }
    }
}

/// The resolution of a run whose data has no native size.
pub const DEFAULT_RESOLUTION: u32 = 32;

/// What a user asked of a training run, each setting unset unless given: the command line of
/// `nfnet train`. A new run takes the defaults ([`TrainOptions::new`]) for the rest; a resumed
/// run takes the checkpoint's.
#[derive(Clone, Debug, Default)]
pub struct TrainOverrides {
    pub data: Option<DataSpec>,
    pub model: Option<ModelConfig>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub micro_batches: Option<usize>,
    pub lr: Option<f32>,
    pub warmup_epochs: Option<f32>,
    pub momentum: Option<f32>,
    pub weight_decay: Option<f32>,
    /// AGC's lambda; 0 turns AGC off.
    pub agc_clip: Option<f32>,
    pub agc_eps: Option<f32>,
    pub label_smoothing: Option<f32>,
    pub ema_decay: Option<f64>,
    pub resolution: Option<u32>,
    /// The augmentation the settings below change (default: standard).
    pub augment: Option<AugmentPreset>,
    pub crop_scale: Option<f32>,
    pub flip: Option<bool>,
    pub mixup: Option<f32>,
    pub cutmix: Option<f32>,
    pub eval_margin: Option<u32>,
    /// The model's dropout before the classifier.
    pub dropout: Option<f64>,
    /// The model's stochastic depth rate.
    pub drop_path: Option<f64>,
    pub seed: Option<u64>,
    pub loss_every: Option<usize>,
    pub threads: Option<usize>,
}

impl TrainOverrides {
    /// The data of the run: as asked, else the resumed checkpoint's, else the embedded set.
    /// Opened with the run's seed (a resumed run's own), folder images kept at twice the
    /// run's resolution (enough for random-resized crops, small enough to keep thousands).
    pub fn open_data(&self, resumed: Option<&Checkpoint>) -> Result<Dataset> {
        let spec = (self.data.clone())
            .or_else(|| resumed.map(|c| c.options.data.clone()))
            .filter(|d| !d.source.is_empty())
            .unwrap_or_default();
        let seed = resumed.map_or(self.seed.unwrap_or(0), |c| c.options.seed);
        let resolution = (self.resolution)
            .or(resumed.map(|c| c.options.resolution))
            .unwrap_or(DEFAULT_RESOLUTION);
        let opened = data::open(
            &spec,
            &OpenOptions {
                seed,
                keep_side: 2 * resolution,
            },
        );
        // A checkpoint of an older run may hold the folder as typed, relative to where that
        // run started: say so when it is not found from here.
        match (opened, resumed) {
            (Err(e), Some(c)) if self.data.is_none() && c.options.data.has_relative_folder() => Err(Error::invalid(
                "resume",
                format!(
                    "{e}; {} saved its data as the relative path {:?}: run from the folder that run started in, \
                     or give --data (and --val-data) again",
                    c.source, c.options.data.source
                ),
            )),
            (opened, _) => opened,
        }
    }

    /// The options of a new run on `data`: the defaults for `model` (else `nano`), with every
    /// setting given here; the resolution defaults to the data's native size (else 32), and the
    /// crop scale and evaluation margin to what suits that resolution.
    pub fn new_run(&self, data: &Dataset) -> Result<TrainOptions> {
        let mut model = match &self.model {
            Some(m) => m.clone(),
            None => ModelConfig::load("nano")?,
        };
        model.dropout = self.dropout.unwrap_or(model.dropout);
        model.stochastic_depth = self.drop_path.unwrap_or(model.stochastic_depth);
        let d = TrainOptions::new(model);
        let resolution = self.resolution.or(data.native_size).unwrap_or(DEFAULT_RESOLUTION);
        let agc = match (self.agc_clip, d.agc) {
            (Some(clip), _) if clip == 0.0 => None,
            (clip, Some(agc)) => Some(AgcConfig {
                clip: clip.unwrap_or(agc.clip),
                eps: self.agc_eps.unwrap_or(agc.eps),
                style: agc.style,
            }),
            (_, None) => None,
        };
        // The preset at this resolution (standard: ImageNet's crops for large images, milder
        // ones for the small embedded and CIFAR images), then each setting given.
        let base = self.augment.unwrap_or_default().augment(resolution);
        Ok(TrainOptions {
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            micro_batches: self.micro_batches.unwrap_or(d.micro_batches),
            lr: self.lr.unwrap_or(d.lr),
            warmup_epochs: self.warmup_epochs.unwrap_or(d.warmup_epochs),
            momentum: self.momentum.unwrap_or(d.momentum),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            agc,
            label_smoothing: self.label_smoothing.unwrap_or(d.label_smoothing),
            ema_decay: self.ema_decay.or(d.ema_decay),
            resolution,
            augment: Augment {
                crop_scale: self.crop_scale.unwrap_or(base.crop_scale),
                flip: self.flip.unwrap_or(base.flip),
                mixup: self.mixup.unwrap_or(base.mixup),
                cutmix: self.cutmix.unwrap_or(base.cutmix),
            },
            eval_margin: self.eval_margin.unwrap_or(default_margin(resolution)),
            seed: self.seed.unwrap_or(d.seed),
            loss_every: self.loss_every.unwrap_or(d.loss_every),
            threads: self.threads.unwrap_or(d.threads).max(1),
            data: self.data.clone().unwrap_or_default(),
            ..d
        })
    }

    /// The flags of the settings given here that a resumed run does not take (it continues
    /// with the checkpoint's, bit for bit): for a warning.
    pub fn ignored_on_resume(&self) -> Vec<&'static str> {
        let given = [
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--warmup", self.warmup_epochs.is_some()),
            ("--momentum", self.momentum.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--agc-clip", self.agc_clip.is_some()),
            ("--agc-eps", self.agc_eps.is_some()),
            ("--label-smoothing", self.label_smoothing.is_some()),
            ("--ema", self.ema_decay.is_some()),
            ("--resolution", self.resolution.is_some()),
            ("--augment", self.augment.is_some()),
            ("--crop-scale", self.crop_scale.is_some()),
            ("--no-flip", self.flip.is_some()),
            ("--mixup", self.mixup.is_some()),
            ("--cutmix", self.cutmix.is_some()),
            ("--eval-margin", self.eval_margin.is_some()),
            ("--dropout", self.dropout.is_some()),
            ("--drop-path", self.drop_path.is_some()),
            ("--seed", self.seed.is_some()),
            ("--loss-every", self.loss_every.is_some()),
        ];
        given.into_iter().filter(|(_, set)| *set).map(|(flag, _)| flag).collect()
    }

    /// The options of a run resumed from `checkpoint`: the checkpoint's, run to `epochs` when
    /// given, on the data given (else the checkpoint's), its batch split into `micro_batches`
    /// passes when given (the same global batch: only the order of the gradient sums changes, as
    /// on another number of data-parallel ranks); every other setting is the checkpoint's. A
    /// model other than the checkpoint's is an error.
    pub fn resumed(&self, checkpoint: &Checkpoint) -> Result<TrainOptions> {
        let saved = &checkpoint.options;
        if let Some(m) = &self.model {
            // The architecture must match; the class count comes from the data and the
            // regularisation rates are the run's settings.
            let wanted = ModelConfig {
                num_classes: saved.model.num_classes,
                dropout: saved.model.dropout,
                stochastic_depth: saved.model.stochastic_depth,
                ..m.clone()
            };
            if wanted != saved.model {
                let message = format!(
                    "{} is a checkpoint of model {:?}, not of the requested model {:?}",
                    checkpoint.source, saved.model.name, m.name
                );
                return Err(Error::invalid("resume", message));
            }
        }
        Ok(TrainOptions {
            epochs: self.epochs.unwrap_or(saved.epochs),
            data: self.data.clone().unwrap_or_else(|| saved.data.clone()),
            micro_batches: self.micro_batches.unwrap_or(saved.micro_batches),
            ..saved.clone()
        })
    }
}
