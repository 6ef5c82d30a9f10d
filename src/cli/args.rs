//! The command line's arguments, as clap parses them, and their translation into the library's
//! option structs.

use nfnet::bench::ModelCase;
use nfnet::data::DataSpec;
use nfnet::train::TrainOverrides;
use nfnet::ModelConfig;
use std::path::PathBuf;

#[derive(clap::Parser)]
#[command(name = "nfnet", version, about = "NFNets on any GPU that wgpu reaches")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Run the default kernels instead of tuned ones, for reproducible timings (the same as
    /// NFNET_AUTOTUNE=0). Results are bitwise the same either way.
    #[arg(long, global = true)]
    pub no_autotune: bool,
    /// Where conv kernels read weights and activations: `buffer` (storage buffers) or `texture`
    /// (4-channel texels; fast on software devices). Default: the tuner's timed choice; untuned,
    /// `texture` on a CPU adapter and `buffer` elsewhere. The same as NFNET_CONV_STORAGE.
    #[arg(long, global = true, value_parser = ["buffer", "texture"])]
    pub conv_storage: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// List every GPU adapter: name, backend, type, driver and the limits that matter.
    Devices,
    /// Print a model's layer table, parameter count, multiply-adds and planned memory.
    Info {
        /// A built-in model (f0..f7, f0+..f7+, nfnet_l0, test_nfnet, nano, nano_timm) or a JSON config.
        #[arg(long, default_value = "f0")]
        model: String,
        /// Input resolution (default: 256, the F0 test resolution).
        #[arg(long, default_value_t = 256)]
        resolution: usize,
        /// Batch size of the planned inference pass and training step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
    /// Run a checkpoint on a batch: logits, and with labels the loss, gradients and training steps.
    Forward(ForwardArgs),
    /// Train a model (default: the small `nano` NFNet on the embedded dataset).
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint: top-1, top-5 and a confusion summary.
    Eval(EvalArgs),
    /// Classify image files with a checkpoint or timm weights: the top-5 classes.
    Predict(PredictArgs),
    /// Benchmark the kernels and whole models on this adapter: a table here and a JSON file.
    Bench(BenchArgs),
}

/// `nfnet train`'s options; each unset one takes the default (or, resuming, the checkpoint's).
#[derive(clap::Args)]
pub struct TrainArgs {
    /// `synthetic` (embedded, no download; `synthetic:TRAIN:VAL` for other sizes), an image folder
    /// root/<class>/<image>, or `cifar10:DIR` (default: synthetic; with --resume, the checkpoint's data).
    #[arg(long)]
    pub data: Option<String>,
    /// A separate validation folder (default: a seeded --val-split of the training folder).
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    /// Fraction of an image folder held out for validation when --val-data is not given [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub val_split: Option<f64>,
    /// A built-in model or a JSON config (default: nano; with --resume, the checkpoint's).
    #[arg(long)]
    pub model: Option<String>,
    /// Epochs to train (default 4; with --resume, the checkpoint's, or this many in all).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimizer step [default: 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Split each step into this many passes (gradient accumulation) [default: 1].
    #[arg(long)]
    pub accum: Option<usize>,
    /// Peak learning rate (after the warm-up; cosine decay to 0) [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Epochs of linear learning-rate warm-up [default: 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub warmup: Option<f32>,
    /// [default: 0.9]
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// Coupled weight decay on the *.weight tensors [default: 5e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// AGC's lambda (0 turns it off) [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    pub agc_clip: Option<f32>,
    /// [default: 0.001]
    #[arg(long, allow_negative_numbers = true)]
    pub agc_eps: Option<f32>,
    /// [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    pub label_smoothing: Option<f32>,
    /// Evaluate an exponential moving average of the weights with this decay (e.g. 0.999).
    #[arg(long, allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Input resolution (default: the data's, else 32; 64 costs 4x the time of 32).
    #[arg(long)]
    pub resolution: Option<u32>,
    /// How much to vary the training images; --crop-scale, --no-flip, --mixup and --cutmix
    /// change the preset. `standard`: random-resized crops down to 35% of the image (8% from
    /// 128 px) and flips, for photos, shapes and textures, whose mirror image is the same class.
    /// `light`: crops of at least 80% and no flips, for digits, letters, symbols and text (a
    /// mirrored digit is not a digit; tight crops cut strokes off). `none`: the whole image.
    /// [default: standard]
    #[arg(long, value_parser = ["standard", "light", "none"])]
    pub augment: Option<String>,
    /// Smallest area fraction of the random-resized crop (1 keeps the whole image) [default: the
    /// preset's].
    #[arg(long, allow_negative_numbers = true)]
    pub crop_scale: Option<f32>,
    /// No random horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    /// MixUp with Beta(alpha, alpha) (0: off; DeepMind uses 0.2) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub mixup: Option<f32>,
    /// CutMix with Beta(alpha, alpha) (0: off; DeepMind uses 1) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub cutmix: Option<f32>,
    /// Evaluation resizes to resolution + margin, then centre-crops (default 32 from 128 px, else 0).
    #[arg(long)]
    pub eval_margin: Option<u32>,
    /// Override the model's dropout before the classifier.
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f64>,
    /// Override the model's stochastic depth rate.
    #[arg(long, allow_negative_numbers = true)]
    pub drop_path: Option<f64>,
    /// Continue a checkpoint (its options and position; --epochs may extend it).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start from timm weights (fine-tuning; a classifier of another class count is re-initialised).
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Output folder: checkpoints, metrics.csv, metrics.png (default: runs/nfnet; with --resume,
    /// the checkpoint's folder). A new run refuses a folder that holds another run's files.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Let a new run replace the run files (checkpoints, metrics) in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps between loss read-backs [default: 10].
    #[arg(long)]
    pub loss_every: Option<usize>,
    /// Threads that decode and augment images (default: half the cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// `synthetic` (its held-out split), `cifar10:DIR` (the test batch) or an image folder (all of it).
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Models to time (a training step and an inference pass each), MODEL@RESOLUTIONxBATCH.
    #[arg(long, value_delimiter = ',', default_value = "nano@32x32,f0@128x8,f0@192x8")]
    pub models: Vec<ModelCase>,
    /// Only the kernel rows whose text contains every one of these words (e.g. c768 forward).
    #[arg(long, num_args = 1..)]
    pub filter: Vec<String>,
    /// Skip the kernel rows.
    #[arg(long)]
    pub no_kernels: bool,
    /// Skip the model rows.
    #[arg(long)]
    pub no_models: bool,
    /// The yardstick's line `matmul_gflops=X copy_gbs=Y` from the same adapter, for ratios
    /// (default: NFNET_YARDSTICK; tools/bench_vs_yardstick.sh runs it first).
    #[arg(long)]
    pub yardstick: Option<String>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "nfnet-bench.json")]
    pub json: PathBuf,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// A training checkpoint (class names included).
    #[arg(long, conflicts_with_all = ["weights", "model"])]
    pub checkpoint: Option<PathBuf>,
    /// timm weights (with --model).
    #[arg(long, requires = "model")]
    pub weights: Option<PathBuf>,
    #[arg(long)]
    pub model: Option<String>,
    /// Class names, one per line (default: from the checkpoint, else class indices).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Input resolution (default: the checkpoint's, else 224).
    #[arg(long)]
    pub resolution: Option<u32>,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct ForwardArgs {
    /// A built-in model or a JSON config.
    #[arg(long)]
    pub model: String,
    /// The model's class count, for weights of a classifier of another size (default: the
    /// model's).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Weights in timm's safetensors layout.
    #[arg(long)]
    pub weights: PathBuf,
    /// A safetensors file with `input` (N,3,H,W f32) and optionally `labels` (N, int64).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write `logits`, `loss`, `grad.<name>` and `step<N>.<name>` (safetensors).
    #[arg(long)]
    pub output: PathBuf,
    /// Also write every parameter's gradient (needs labels).
    #[arg(long)]
    pub grads: bool,
    /// Train N steps on the same batch and write the parameters after them (needs labels).
    #[arg(long, default_value_t = 0)]
    pub train_steps: usize,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub lr: f32,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.9)]
    pub momentum: f32,
    /// Coupled weight decay on the `*.weight` tensors.
    #[arg(long, allow_negative_numbers = true, default_value_t = 2e-5)]
    pub weight_decay: f32,
    /// AGC's lambda (0 turns AGC off).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.01)]
    pub agc_clip: f32,
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-3)]
    pub agc_eps: f32,
    /// Clip gains as whole vectors and the classifier bias too, as DeepMind's code (default: timm's units).
    #[arg(long)]
    pub agc_deepmind: bool,
}

impl TrainArgs {
    /// Where the run writes: --out, else the resumed checkpoint's folder, else runs/nfnet.
    pub fn out_dir(&self) -> PathBuf {
        match (&self.out, &self.resume) {
            (Some(out), _) => out.clone(),
            (None, Some(ckpt)) => match ckpt.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
            (None, None) => PathBuf::from("runs/nfnet"),
        }
    }

    /// What the command line asks of the run.
    pub fn overrides(&self) -> anyhow::Result<TrainOverrides> {
        Ok(TrainOverrides {
            // Folders are saved absolute, so that a resumed run finds them from anywhere.
            data: self.data.as_ref().map(|d| {
                DataSpec {
                    source: d.clone(),
                    val_data: self.val_data.clone(),
                    val_split: self.val_split.unwrap_or(DataSpec::new(d).val_split),
                }
                .absolute()
            }),
            model: self.model.as_deref().map(ModelConfig::load).transpose()?,
            epochs: self.epochs,
            batch_size: self.batch_size,
            micro_batches: self.accum,
            lr: self.lr,
            warmup_epochs: self.warmup,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            agc_clip: self.agc_clip,
            agc_eps: self.agc_eps,
            label_smoothing: self.label_smoothing,
            ema_decay: self.ema,
            resolution: self.resolution,
            augment: self.augment.as_deref().map(str::parse).transpose()?,
            crop_scale: self.crop_scale,
            flip: self.no_flip.then_some(false),
            mixup: self.mixup,
            cutmix: self.cutmix,
            eval_margin: self.eval_margin,
            dropout: self.dropout,
            drop_path: self.drop_path,
            seed: self.seed,
            loss_every: self.loss_every,
            threads: self.threads,
        })
    }
}
