//! The `nfnet` command line: it parses arguments, calls the library, and renders what comes
//! back (tables, a progress bar). Every rule lives in the library; this file only does the
//! talking.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nfnet::bench::{kernel_rows, model_rows, ModelCase, Report, Yardstick};
use nfnet::classify::{top_k, Classifier, ClassifierOptions};
use nfnet::data::{self, DataSpec, OpenOptions};
use nfnet::graph::optim::{AgcConfig, AgcStyle, Optimizer};
use nfnet::model::checkpoint::CheckpointFile;
use nfnet::model::forward::{forward, ForwardOptions};
use nfnet::model::weights::Weights;
use nfnet::ops::grouped_conv::Storage;
use nfnet::train::{checkpoint, default_threads, Event, FitEnd, TrainOverrides, Trainer};
use nfnet::{Gpu, ModelConfig, TuneOptions, Tuner};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "nfnet", version, about = "NFNets on any GPU that wgpu reaches")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Run the default kernels instead of tuned ones, for reproducible timings (the same as
    /// NFNET_AUTOTUNE=0). Results are bitwise the same either way.
    #[arg(long, global = true)]
    no_autotune: bool,
    /// Where conv kernels read weights and activations: `buffer` (storage buffers) or `texture`
    /// (4-channel texels; fast on software devices). Default: the tuner's timed choice, `buffer`
    /// untuned. The same as NFNET_CONV_STORAGE.
    #[arg(long, global = true, value_parser = ["buffer", "texture"])]
    conv_storage: Option<String>,
}

#[derive(Subcommand)]
enum Command {
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
struct TrainArgs {
    /// `synthetic` (embedded, no download; `synthetic:TRAIN:VAL` for other sizes), an image folder
    /// root/<class>/<image>, or `cifar10:DIR` (default: synthetic; with --resume, the checkpoint's data).
    #[arg(long)]
    data: Option<String>,
    /// A separate validation folder (default: a seeded --val-split of the training folder).
    #[arg(long)]
    val_data: Option<PathBuf>,
    /// Fraction of an image folder held out for validation when --val-data is not given [default: 0.1].
    #[arg(long)]
    val_split: Option<f64>,
    /// A built-in model or a JSON config (default: nano; with --resume, the checkpoint's).
    #[arg(long)]
    model: Option<String>,
    /// Epochs to train (default 4; with --resume, the checkpoint's, or this many in all).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per optimizer step [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Split each step into this many passes (gradient accumulation) [default: 1].
    #[arg(long)]
    accum: Option<usize>,
    /// Peak learning rate (after the warm-up; cosine decay to 0) [default: 0.1].
    #[arg(long)]
    lr: Option<f32>,
    /// Epochs of linear learning-rate warm-up [default: 0.5].
    #[arg(long)]
    warmup: Option<f32>,
    /// [default: 0.9]
    #[arg(long)]
    momentum: Option<f32>,
    /// Coupled weight decay on the *.weight tensors [default: 5e-5].
    #[arg(long)]
    weight_decay: Option<f32>,
    /// AGC's lambda (0 turns it off) [default: 0.01].
    #[arg(long)]
    agc_clip: Option<f32>,
    /// [default: 0.001]
    #[arg(long)]
    agc_eps: Option<f32>,
    /// [default: 0.1]
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Evaluate an exponential moving average of the weights with this decay (e.g. 0.999).
    #[arg(long)]
    ema: Option<f64>,
    /// Input resolution (default: the data's, else 32; 64 costs 4x the time of 32).
    #[arg(long)]
    resolution: Option<u32>,
    /// Smallest area fraction of the random-resized crop (default 0.08 from 128 px, else 0.35).
    #[arg(long)]
    crop_scale: Option<f32>,
    /// No random horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// MixUp with Beta(alpha, alpha) (0: off; DeepMind uses 0.2) [default: 0].
    #[arg(long)]
    mixup: Option<f32>,
    /// CutMix with Beta(alpha, alpha) (0: off; DeepMind uses 1) [default: 0].
    #[arg(long)]
    cutmix: Option<f32>,
    /// Evaluation resizes to resolution + margin, then centre-crops (default 32 from 128 px, else 0).
    #[arg(long)]
    eval_margin: Option<u32>,
    /// Override the model's dropout before the classifier.
    #[arg(long)]
    dropout: Option<f64>,
    /// Override the model's stochastic depth rate.
    #[arg(long)]
    drop_path: Option<f64>,
    /// Continue a checkpoint (its options and position; --epochs may extend it).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from timm weights (fine-tuning; a classifier of another class count is re-initialised).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Output folder: checkpoints, metrics.csv, metrics.png.
    #[arg(long, default_value = "runs/nfnet")]
    out: PathBuf,
    /// [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Steps between loss read-backs [default: 10].
    #[arg(long)]
    loss_every: Option<usize>,
    /// Threads that decode and augment images (default: half the cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// `synthetic` (its held-out split), `cifar10:DIR` (the test batch) or an image folder (all of it).
    #[arg(long, default_value = "synthetic")]
    data: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Models to time (a training step and an inference pass each), MODEL@RESOLUTIONxBATCH.
    #[arg(long, value_delimiter = ',', default_value = "nano@32x32,f0@128x8,f0@192x8")]
    models: Vec<ModelCase>,
    /// Only the kernel rows whose text contains every one of these words (e.g. c768 forward).
    #[arg(long, num_args = 1..)]
    filter: Vec<String>,
    /// Skip the kernel rows.
    #[arg(long)]
    no_kernels: bool,
    /// Skip the model rows.
    #[arg(long)]
    no_models: bool,
    /// The yardstick's line `matmul_gflops=X copy_gbs=Y` from the same adapter, for ratios
    /// (default: NFNET_YARDSTICK; tools/bench_vs_yardstick.sh runs it first).
    #[arg(long)]
    yardstick: Option<String>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "nfnet-bench.json")]
    json: PathBuf,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// A training checkpoint (class names included).
    #[arg(long, conflicts_with_all = ["weights", "model"])]
    checkpoint: Option<PathBuf>,
    /// timm weights (with --model).
    #[arg(long, requires = "model")]
    weights: Option<PathBuf>,
    #[arg(long)]
    model: Option<String>,
    /// Class names, one per line (default: from the checkpoint, else class indices).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Input resolution (default: the checkpoint's, else 224).
    #[arg(long)]
    resolution: Option<u32>,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct ForwardArgs {
    /// A built-in model or a JSON config.
    #[arg(long)]
    model: String,
    /// Weights in timm's safetensors layout.
    #[arg(long)]
    weights: PathBuf,
    /// A safetensors file with `input` (N,3,H,W f32) and optionally `labels` (N, int64).
    #[arg(long)]
    input: PathBuf,
    /// Where to write `logits`, `loss`, `grad.<name>` and `step<N>.<name>` (safetensors).
    #[arg(long)]
    output: PathBuf,
    /// Also write every parameter's gradient (needs labels).
    #[arg(long)]
    grads: bool,
    /// Train N steps on the same batch and write the parameters after them (needs labels).
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Coupled weight decay on the `*.weight` tensors.
    #[arg(long, default_value_t = 2e-5)]
    weight_decay: f32,
    /// AGC's lambda (0 turns AGC off).
    #[arg(long, default_value_t = 0.01)]
    agc_clip: f32,
    #[arg(long, default_value_t = 1e-3)]
    agc_eps: f32,
    /// Clip gains as whole vectors and the classifier bias too, as DeepMind's code (default: timm's units).
    #[arg(long)]
    agc_deepmind: bool,
}

fn main() {
    let cli = Cli::parse();
    // Errors are for people: the message and its causes, no backtrace, and the flag to change
    // where the library's error names a setting.
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        if let Some(hint) = e.downcast_ref::<nfnet::Error>().and_then(hint) {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// The command-line flag behind a setting that an error names.
fn hint(e: &nfnet::Error) -> Option<&'static str> {
    let message = e.to_string();
    match e {
        nfnet::Error::Invalid { op, .. } if op == "resume" && message.contains("not of the requested model") => {
            Some("leave --model out to continue the checkpoint's model")
        }
        nfnet::Error::Invalid { op, .. } if op == "data" && message.contains("validation split") => {
            Some("give --val-data DIR, or a larger --val-split")
        }
        nfnet::Error::Format { .. } if message.contains("not an nfnet checkpoint") => {
            Some("a plain weights file goes to --init (train) or --weights (forward, predict)")
        }
        _ => None,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut tune = TuneOptions::from_env()?;
    if cli.no_autotune {
        tune.enabled = false;
    }
    if let Some(storage) = &cli.conv_storage {
        tune.conv_storage = Some(storage.parse::<Storage>()?);
    }
    let tuner = Tuner::new(tune);
    match cli.command {
        Command::Devices => devices(),
        Command::Info { model, resolution, batch } => {
            print!("{}", nfnet::model::describe(&ModelConfig::load(&model)?, resolution, batch)?);
            Ok(())
        }
        Command::Forward(args) => run_forward(&args, &tuner),
        Command::Train(args) => run_train(&args, &tuner),
        Command::Eval(args) => run_eval(&args, &tuner),
        Command::Predict(args) => run_predict(&args, &tuner),
        Command::Bench(args) => run_bench(&args, &tuner),
    }
}

fn devices() -> anyhow::Result<()> {
    let adapters = nfnet::gpu::list_adapters();
    if adapters.is_empty() {
        // The same typed error the library gives, with its installation hint.
        Gpu::new()?;
    }
    for a in &adapters {
        println!("{a}");
    }
    match Gpu::new() {
        Ok(gpu) => println!("\nselected: {}", gpu.describe()),
        Err(e) => println!("\nselected: none ({e})"),
    }
    Ok(())
}

fn run_forward(args: &ForwardArgs, tuner: &Tuner) -> anyhow::Result<()> {
    let config = ModelConfig::load(&args.model)?;
    let weights = Weights::read(&args.weights)?;
    let input_file = nfnet::io::read_safetensors(&args.input)?;
    let input =
        (input_file.get("input")).ok_or_else(|| anyhow::anyhow!("{}: no tensor named `input` (N,3,H,W f32)", args.input.display()))?;
    let agc = (args.agc_clip > 0.0).then_some(AgcConfig {
        clip: args.agc_clip,
        eps: args.agc_eps,
        style: if args.agc_deepmind { AgcStyle::DeepMind } else { AgcStyle::Timm },
    });
    let options = ForwardOptions {
        grads: args.grads,
        train_steps: args.train_steps,
        lr: args.lr,
        optimizer: Optimizer {
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            nesterov: true,
            agc,
        },
    };
    let gpu = Gpu::new()?;
    let out = forward(&gpu, tuner, &config, &weights, input, input_file.get("labels"), &options)?;
    nfnet::io::write_safetensors(&args.output, &out, None)?;
    let loss = (out.get("loss").and_then(|l| l.as_f32("loss").ok()))
        .map(|v| format!(", loss {:.6}", v[0]))
        .unwrap_or_default();
    eprintln!("wrote {} tensors to {}{loss}", out.len(), args.output.display());
    Ok(())
}

impl TrainArgs {
    /// What the command line asks of the run.
    fn overrides(&self) -> anyhow::Result<TrainOverrides> {
        Ok(TrainOverrides {
            data: self.data.as_ref().map(|d| DataSpec {
                source: d.clone(),
                val_data: self.val_data.clone(),
                val_split: self.val_split.unwrap_or(DataSpec::new(d).val_split),
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

fn run_train(args: &TrainArgs, tuner: &Tuner) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    eprintln!("adapter: {}", gpu.describe());
    let overrides = args.overrides()?;
    let resumed = args.resume.as_deref().map(checkpoint::read).transpose()?;
    let data = overrides.open_data(resumed.as_ref())?;
    let skipped = data.train.skipped();
    for file in skipped {
        eprintln!("warning: skipping {file}");
    }
    let (train, val, classes) = (data.train.len(), data.val.len(), data.classes().len());
    let note = if skipped.is_empty() {
        String::new()
    } else {
        format!(" ({} unreadable files skipped)", skipped.len())
    };
    eprintln!("data: {train} training and {val} validation images in {classes} classes{note}");
    let mut trainer = match &resumed {
        Some(ckpt) => {
            let t = Trainer::resume(&gpu, tuner, ckpt, &overrides, &data)?;
            eprintln!("resuming {} at epoch {}, step {}", ckpt.source, t.state.epoch + 1, t.state.step);
            t
        }
        None => Trainer::new(&gpu, tuner, overrides.new_run(&data)?, &data)?,
    };
    if let Some(path) = &args.init {
        let report = trainer.load_weights(&Weights::read(path)?)?;
        if !report.reinitialised.is_empty() {
            let classes = trainer.options.model.num_classes;
            eprintln!("note: {} re-initialised for {classes} classes", report.reinitialised.join(", "));
        }
    }
    let o = &trainer.options;
    let passes = if o.micro_batches == 1 {
        "pass".to_string()
    } else {
        format!("{} passes", o.micro_batches)
    };
    eprintln!(
        "model {} at {r}x{r}, batch {} ({passes} per step), {} epochs of {} steps, lr {} (warm-up {} epochs, cosine), out {}",
        o.model.name,
        o.batch_size,
        o.epochs,
        trainer.steps_per_epoch(),
        o.lr,
        o.warmup_epochs,
        args.out.display(),
        r = o.resolution,
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C: stop now
        }
        eprintln!("\ninterrupted: saving a checkpoint at the end of this step (Ctrl-C again to quit at once)");
    })?;
    trainer.set_interrupt(interrupted);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut last_loss = f32::NAN;
    let end = trainer.fit(&data, &args.out, &mut |event| show(&bar, &mut last_loss, event));
    bar.finish_and_clear();
    match end? {
        FitEnd::Finished => eprintln!("done: {} (best top-1 {:.2}%)", args.out.display(), 100.0 * trainer.state.best_top1),
        FitEnd::Interrupted(path) => eprintln!("stopped; continue with: nfnet train --resume {}", path.display()),
    }
    Ok(())
}

/// Renders one training event on the progress bar (`last_loss`: the last loss read back).
fn show(bar: &ProgressBar, last_loss: &mut f32, event: Event) {
    match event {
        Event::Step {
            epoch,
            batch,
            batches,
            step,
            lr,
            loss,
            images_per_second,
        } => {
            *last_loss = loss.unwrap_or(*last_loss);
            bar.set_length(batches as u64);
            bar.set_position(batch as u64);
            bar.set_prefix(format!("{}", epoch + 1));
            bar.set_message(format!("step {step} loss {last_loss:.4} lr {lr:.4} {images_per_second:.1} img/s"));
        }
        Event::Evaluating { epoch } => bar.set_message(format!("evaluating epoch {}", epoch + 1)),
        // Printed past the bar, so the line also reaches logs when stderr is not a terminal.
        Event::Epoch(s) => bar.suspend(|| {
            let skipped = if s.skipped > 0 {
                format!("  ({} unreadable files skipped)", s.skipped)
            } else {
                String::new()
            };
            eprintln!(
                "epoch {:>3}: train loss {:.4}  val loss {:.4}  top-1 {:.2}%  top-5 {:.2}%  {:.1} img/s  {:.0} s{skipped}",
                s.epoch + 1,
                s.train_loss,
                s.val.loss,
                100.0 * s.val.top1,
                100.0 * s.val.top5,
                s.images_per_second,
                s.seconds,
            )
        }),
        Event::Checkpoint(_) => {}
    }
}

fn run_eval(args: &EvalArgs, tuner: &Tuner) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    // Read once: the weights, and the seed that split the data.
    let ckpt = CheckpointFile::read(&args.checkpoint)?;
    let options = ClassifierOptions {
        batch: args.batch_size,
        ..Default::default()
    };
    let classifier = Classifier::from_checkpoint(&gpu, tuner, &ckpt, &options)?;
    let seed = ckpt.field::<nfnet::TrainOptions>("options").map_or(0, |o| o.seed);
    drop(ckpt); // its host copy of the weights is no longer needed
    let source: Arc<dyn data::Source> = if args.data.starts_with("synthetic") || args.data.starts_with("cifar10:") {
        data::open(
            &DataSpec::new(&args.data),
            &OpenOptions {
                seed,
                ..Default::default()
            },
        )?
        .val
    } else {
        let side = 2 * classifier.resolution.max(64);
        Arc::new(data::folder::Folder::open(
            std::path::Path::new(&args.data),
            Some(&classifier.classes),
            side,
        )?)
    };
    let stats = classifier.evaluate(&source, default_threads())?;
    let (loss, top1, top5) = (stats.loss, 100.0 * stats.top1, 100.0 * stats.top5);
    println!("{} images: loss {loss:.4}, top-1 {top1:.2}%, top-5 {top5:.2}%", stats.images);
    println!("\nper class (recall, and the class it is most often mistaken for):");
    for (i, row) in stats.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let confused = row.iter().enumerate().filter(|&(j, _)| j != i).max_by_key(|&(_, &c)| c);
        let mistake = match confused {
            Some((j, &c)) if c > 0 => format!("{} ({c})", classifier.classes[j]),
            _ => "-".into(),
        };
        let recall = 100.0 * row[i] as f64 / total.max(1) as f64;
        println!("  {:<16} {recall:>6.2}% of {total:>5}   {mistake}", classifier.classes[i]);
    }
    Ok(())
}

fn run_predict(args: &PredictArgs, tuner: &Tuner) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    let options = ClassifierOptions {
        resolution: args.resolution,
        batch: args.images.len().min(32),
        ..Default::default()
    };
    let classifier = match (&args.checkpoint, &args.weights) {
        (Some(ckpt), _) => Classifier::from_checkpoint(&gpu, tuner, &CheckpointFile::read(ckpt)?, &options)?,
        (None, Some(w)) => {
            let config = ModelConfig::load(args.model.as_deref().expect("clap requires --model with --weights"))?;
            Classifier::new(&gpu, tuner, &config, &Weights::read(w)?, &options)?
        }
        (None, None) => anyhow::bail!("give --checkpoint, or --weights with --model"),
    };
    let mut names = classifier.classes.clone();
    if let Some(path) = &args.labels {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let given: Vec<String> = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        let (path, n) = (path.display(), names.len());
        anyhow::ensure!(given.len() == n, "{path}: {} class names for a model of {n} classes", given.len());
        names = given;
    }
    let images = args.images.iter().map(|p| data::load_image(p)).collect::<Result<Vec<_>, _>>()?;
    for (path, probs) in args.images.iter().zip(classifier.classify(&images)?) {
        println!("{}", path.display());
        for (class, p) in top_k(&probs, 5) {
            println!("  {:>6.2}%  {}", 100.0 * p, names[class]);
        }
    }
    Ok(())
}

fn run_bench(args: &BenchArgs, tuner: &Tuner) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    let yardstick = match &args.yardstick {
        Some(s) => Some(Yardstick::parse(s).ok_or_else(|| anyhow::anyhow!("--yardstick {s:?}: expected `matmul_gflops=X copy_gbs=Y`"))?),
        None => Yardstick::from_env(),
    };
    println!("adapter: {}", gpu.describe());
    match yardstick {
        Some(y) => println!("yardstick: matmul {:.2} GFLOP/s, copy {:.2} GB/s", y.matmul_gflops, y.copy_gbs),
        None => println!("yardstick: not given (no ratios); see tools/bench_vs_yardstick.sh"),
    }
    println!("autotune: {}", if tuner.options().enabled { "on" } else { "off" });
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
    let mut kernels = Vec::new();
    if !args.no_kernels {
        println!(
            "\n{:<16} {:<16} {:<32} {:>10} {:>16} {:>7}",
            "op", "pass", "shape", "ms", "rate", "ratio"
        );
        kernels = kernel_rows(&gpu, tuner, &args.filter, yardstick, &mut |r| {
            let (rate, ratio) = (format!("{:>8.3} {:<7}", r.rate, r.unit), ratio(r.ratio));
            println!("{:<16} {:<16} {:<32} {:>10.1} {rate} {ratio:>7}", r.op, r.pass, r.shape, r.ms);
        })?;
    }
    let mut models = Vec::new();
    let cases = if args.no_models { &[][..] } else { &args.models[..] };
    if !cases.is_empty() {
        println!(
            "\n{:<12} {:>5} {:>5} {:<9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>7} {:>6}",
            "model", "res", "batch", "mode", "img/s", "ms/step", "gpu ms", "encode%", "GFLOP/s", "ratio", "conv%"
        );
    }
    for case in cases {
        for r in model_rows(&gpu, tuner, case, yardstick)? {
            let gpu_ms = r.gpu_ms.map_or("-".to_string(), |g| format!("{g:.1}"));
            let conv = r.conv_share.map_or("-".to_string(), |c| format!("{:.1}%", 100.0 * c));
            println!(
                "{:<12} {:>5} {:>5} {:<9} {:>9.2} {:>10.1} {gpu_ms:>10} {:>8.2}% {:>9.3} {:>7} {conv:>6}",
                r.model,
                r.resolution,
                r.batch,
                r.mode,
                r.images_per_second,
                r.ms,
                100.0 * r.encode_ms / r.ms,
                r.effective_gflops,
                ratio(r.ratio),
            );
            if !r.profile_ms.is_empty() {
                let total: f64 = r.profile_ms.iter().map(|(_, ms)| ms).sum();
                let top: Vec<String> = (r.profile_ms.iter().take(8))
                    .map(|(op, ms)| format!("{op} {:.1}%", 100.0 * ms / total))
                    .collect();
                println!("    profile: {}", top.join(", "));
            }
            models.push(r);
        }
    }
    let choices = tuner.choices();
    if !choices.is_empty() {
        println!("\nautotune choices:");
        for c in &choices {
            println!("  {} = {} ({})", c.name, c.value, c.source);
        }
    }
    let report = Report {
        adapter: gpu.describe(),
        yardstick,
        autotune: tuner.options().enabled,
        kernels,
        models,
        autotune_choices: choices,
    };
    nfnet::io::write_atomic(&args.json, &serde_json::to_vec_pretty(&report)?)?;
    println!("\nwrote {}", args.json.display());
    Ok(())
}
