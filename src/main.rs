//! The `nfnet` command line.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nfnet::graph::optim::{AgcConfig, AgcStyle, Optimizer};
use nfnet::nfnet::{forward, weights, NfnetConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "nfnet", version, about = "NFNets on any GPU that wgpu reaches")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Run the default kernels instead of autotuned ones, for reproducible timings (the same as
    /// NFNET_AUTOTUNE=0). Results are bitwise the same either way.
    #[arg(long, global = true)]
    no_autotune: bool,
    /// Where conv kernels read weights and activations: `buffer` (storage buffers) or `texture`
    /// (4-channel texels; fast on software devices). Default: the autotuner's timed choice,
    /// `buffer` with autotuning off. The same as NFNET_CONV_STORAGE.
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

#[derive(clap::Args)]
struct TrainArgs {
    /// `synthetic` (embedded, no download; `synthetic:TRAIN:VAL` for other sizes), an image folder
    /// root/<class>/<image>, or `cifar10:DIR` (default: synthetic; with --resume, the checkpoint's data).
    #[arg(long)]
    data: Option<String>,
    /// A separate validation folder (default: a seeded --val-split of the training folder).
    #[arg(long)]
    val_data: Option<PathBuf>,
    /// Fraction of an image folder held out for validation when --val-data is not given.
    #[arg(long, default_value_t = 0.1)]
    val_split: f64,
    /// A built-in model or a JSON config (default: nano; with --resume, the checkpoint's).
    #[arg(long)]
    model: Option<String>,
    /// Epochs to train (default 4; with --resume, the checkpoint's, or this many in all).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per optimizer step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Split each step into this many passes (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accum: usize,
    /// Peak learning rate (after the warm-up; cosine decay to 0).
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Epochs of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0.5)]
    warmup: f32,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Coupled weight decay on the *.weight tensors.
    #[arg(long, default_value_t = 5e-5)]
    weight_decay: f32,
    /// AGC's lambda (0 turns it off).
    #[arg(long, default_value_t = 0.01)]
    agc_clip: f32,
    #[arg(long, default_value_t = 1e-3)]
    agc_eps: f32,
    #[arg(long, default_value_t = 0.1)]
    label_smoothing: f32,
    /// Evaluate an exponential moving average of the weights with this decay (e.g. 0.999).
    #[arg(long)]
    ema: Option<f64>,
    /// Input resolution (default 32; higher is more accurate and slower: 64 costs 4x the time).
    #[arg(long)]
    resolution: Option<u32>,
    /// Smallest area fraction of the random-resized crop (default 0.08 from 128 px, else 0.35).
    #[arg(long)]
    crop_scale: Option<f32>,
    /// No random horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// MixUp with Beta(alpha, alpha) (0: off; DeepMind uses 0.2).
    #[arg(long, default_value_t = 0.0)]
    mixup: f32,
    /// CutMix with Beta(alpha, alpha) (0: off; DeepMind uses 1).
    #[arg(long, default_value_t = 0.0)]
    cutmix: f32,
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
    #[arg(long)]
    init: Option<PathBuf>,
    /// Output folder: checkpoints, metrics.csv, metrics.png.
    #[arg(long, default_value = "runs/nfnet")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps between loss read-backs.
    #[arg(long, default_value_t = 10)]
    loss_every: usize,
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
    models: Vec<nfnet::bench::ModelCase>,
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
    /// Input resolution for --weights (default 224).
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
    // Errors are for people: the message and its causes, no backtrace.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.no_autotune {
        // Read by Gpu::new; set before any thread starts.
        std::env::set_var("NFNET_AUTOTUNE", "0");
    }
    if let Some(storage) = &cli.conv_storage {
        std::env::set_var("NFNET_CONV_STORAGE", storage);
    }
    match cli.command {
        Command::Devices => devices(),
        Command::Info { model, resolution, batch } => {
            let config = NfnetConfig::load(&model)?;
            print!("{}", nfnet::nfnet::describe(&config, resolution, batch)?);
            Ok(())
        }
        Command::Forward(args) => run_forward(&args),
        Command::Train(args) => run_train(&args),
        Command::Eval(args) => run_eval(&args),
        Command::Predict(args) => run_predict(&args),
        Command::Bench(args) => run_bench(&args),
    }
}

fn devices() -> anyhow::Result<()> {
    let adapters = nfnet::gpu::list_adapters();
    if adapters.is_empty() {
        // The same typed error the library gives, with its installation hint.
        nfnet::Gpu::new()?;
    }
    for a in &adapters {
        println!("{a}");
    }
    match nfnet::Gpu::new() {
        Ok(gpu) => println!("\nselected: {}", gpu.describe()),
        Err(e) => println!("\nselected: none ({e})"),
    }
    Ok(())
}

fn run_forward(args: &ForwardArgs) -> anyhow::Result<()> {
    let config = NfnetConfig::load(&args.model)?;
    let weights_file = weights::read_safetensors(&args.weights)?;
    let input_file = weights::read_safetensors(&args.input)?;
    let input = input_file
        .get("input")
        .ok_or_else(|| anyhow::anyhow!("{}: no tensor named `input` (N,3,H,W f32)", args.input.display()))?;
    let agc = (args.agc_clip > 0.0).then_some(AgcConfig {
        clip: args.agc_clip,
        eps: args.agc_eps,
        style: if args.agc_deepmind { AgcStyle::DeepMind } else { AgcStyle::Timm },
    });
    let options = forward::ForwardOptions {
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
    let gpu = nfnet::Gpu::new()?;
    let weights_name = args.weights.display().to_string();
    let out = forward::forward(
        &gpu,
        &config,
        &weights_file,
        &weights_name,
        input,
        input_file.get("labels"),
        &options,
    )?;
    weights::write_safetensors(&args.output, &out, None)?;
    let loss = out
        .get("loss")
        .and_then(|l| l.as_f32("loss").ok())
        .map(|v| format!(", loss {:.6}", v[0]))
        .unwrap_or_default();
    eprintln!("wrote {} tensors to {}{loss}", out.len(), args.output.display());
    Ok(())
}

/// The default training resolution: the embedded set's and CIFAR-10's size, and fast enough on a
/// software device for an image folder to train in minutes.
const DEFAULT_RESOLUTION: u32 = 32;

fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    use nfnet::train::{checkpoint, DataSpec, Event, FitEnd, TrainOptions, Trainer};
    let gpu = nfnet::Gpu::new()?;
    eprintln!("adapter: {}", gpu.describe());
    // Decoded folder images are kept with their shorter side at twice the training resolution:
    // enough for random-resized crops, small enough to keep thousands in memory.
    let keep_side = 2 * args.resolution.unwrap_or(DEFAULT_RESOLUTION);
    // A resumed run reopens the data it was started on, unless told otherwise.
    let resumed = args.resume.as_deref().map(nfnet::train::checkpoint::read).transpose()?;
    let spec = match (&args.data, &resumed) {
        (Some(d), _) => DataSpec {
            spec: d.clone(),
            val_data: args.val_data.clone(),
            val_split: args.val_split,
        },
        (None, Some(c)) if !c.options.data.spec.is_empty() => c.options.data.clone(),
        (None, _) => DataSpec {
            spec: "synthetic".into(),
            val_data: args.val_data.clone(),
            val_split: args.val_split,
        },
    };
    let seed = resumed.as_ref().map_or(args.seed, |c| c.options.seed);
    let data = nfnet::data::open(&spec.spec, spec.val_data.as_deref(), spec.val_split, seed, keep_side)?;
    let skipped = data.train.skipped().len();
    eprintln!(
        "data: {} training and {} validation images in {} classes{}",
        data.train.len(),
        data.val.len(),
        data.classes().len(),
        if skipped > 0 {
            format!(" ({skipped} unreadable files skipped)")
        } else {
            String::new()
        }
    );
    let mut trainer = match &args.resume {
        Some(path) => {
            let model = args.model.as_deref().map(NfnetConfig::load).transpose()?;
            let t = checkpoint::resume(&gpu, path, &data, model.as_ref(), args.epochs)?;
            eprintln!("resuming {} at epoch {}, step {}", path.display(), t.state.epoch + 1, t.state.step);
            t
        }
        None => {
            let mut model = NfnetConfig::load(args.model.as_deref().unwrap_or("nano"))?;
            if let Some(d) = args.dropout {
                model.dropout = d;
            }
            if let Some(d) = args.drop_path {
                model.stochastic_depth = d;
            }
            let resolution = args.resolution.unwrap_or(data.native_size.unwrap_or(DEFAULT_RESOLUTION));
            let defaults = TrainOptions::new(model);
            let options = TrainOptions {
                epochs: args.epochs.unwrap_or(defaults.epochs),
                batch_size: args.batch_size,
                micro_batches: args.accum,
                lr: args.lr,
                warmup_epochs: args.warmup,
                momentum: args.momentum,
                weight_decay: args.weight_decay,
                agc: (args.agc_clip > 0.0).then_some(AgcConfig {
                    clip: args.agc_clip,
                    eps: args.agc_eps,
                    style: AgcStyle::Timm,
                }),
                label_smoothing: args.label_smoothing,
                ema_decay: args.ema,
                resolution,
                augment: nfnet::data::augment::Augment {
                    crop_scale: args
                        .crop_scale
                        .unwrap_or(if resolution >= 128 { 0.08 } else { defaults.augment.crop_scale }),
                    flip: !args.no_flip,
                    mixup: args.mixup,
                    cutmix: args.cutmix,
                },
                eval_margin: args.eval_margin.unwrap_or(nfnet::train::default_eval_margin(resolution)),
                seed: args.seed,
                loss_every: args.loss_every,
                threads: args.threads.unwrap_or(defaults.threads).max(1),
                data: spec,
                ..defaults
            };
            Trainer::new(&gpu, options, &data, args.init.as_deref())?
        }
    };
    let o = &trainer.options;
    eprintln!(
        "model {} at {}x{}, batch {} ({} pass{} per step), {} epochs of {} steps, lr {} (warm-up {} epochs, cosine), out {}",
        o.model.name,
        o.resolution,
        o.resolution,
        o.batch_size,
        o.micro_batches,
        if o.micro_batches == 1 { "" } else { "es" },
        o.epochs,
        trainer.steps_per_epoch(),
        o.lr,
        o.warmup_epochs,
        args.out.display()
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
    let end = trainer.fit(&data, &args.out, &mut |event| match event {
        Event::Step {
            epoch,
            batch,
            batches,
            step,
            lr,
            loss,
            images_per_second,
        } => {
            if let Some(l) = loss {
                last_loss = l;
            }
            bar.set_length(batches as u64);
            bar.set_position(batch as u64);
            bar.set_prefix(format!("{}", epoch + 1));
            bar.set_message(format!("step {step} loss {last_loss:.4} lr {lr:.4} {images_per_second:.1} img/s"));
        }
        Event::Evaluating { epoch } => bar.set_message(format!("evaluating epoch {}", epoch + 1)),
        Event::Epoch(s) => {
            // Printed past the bar, so the line also reaches logs when stderr is not a terminal.
            bar.suspend(|| {
                eprintln!(
                    "epoch {:>3}: train loss {:.4}  val loss {:.4}  top-1 {:.2}%  top-5 {:.2}%  {:.1} img/s  {:.0} s{}",
                    s.epoch + 1,
                    s.train_loss,
                    s.val.loss,
                    100.0 * s.val.top1,
                    100.0 * s.val.top5,
                    s.images_per_second,
                    s.seconds,
                    if s.skipped > 0 {
                        format!("  ({} unreadable files skipped)", s.skipped)
                    } else {
                        String::new()
                    }
                )
            });
        }
        Event::Checkpoint(_) => {}
    });
    bar.finish_and_clear();
    match end {
        Ok(FitEnd::Finished) => {
            eprintln!("done: {} (best top-1 {:.2}%)", args.out.display(), 100.0 * trainer.state.best_top1);
            Ok(())
        }
        Ok(FitEnd::Interrupted(path)) => {
            eprintln!("stopped; continue with: nfnet train --resume {}", path.display());
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    let gpu = nfnet::Gpu::new()?;
    // Read once: the weights and the seed that split the data.
    let ckpt = nfnet::train::checkpoint::read(&args.checkpoint)?;
    let name = args.checkpoint.display().to_string();
    let classifier = nfnet::classify::Classifier::from_read_checkpoint(&gpu, &ckpt, &name, args.batch_size)?;
    let ckpt_seed = ckpt.options.seed;
    drop(ckpt); // its host copy of the weights is no longer needed
    let source: Arc<dyn nfnet::data::Source> = if args.data.starts_with("synthetic") || args.data.starts_with("cifar10:") {
        nfnet::data::open(&args.data, None, 0.1, ckpt_seed, 64)?.val
    } else {
        Arc::new(nfnet::data::folder::Folder::open(
            std::path::Path::new(&args.data),
            Some(&classifier.classes),
            2 * classifier.resolution.max(64),
        )?)
    };
    let stats = classifier.evaluate(&source, nfnet::train::default_threads())?;
    println!(
        "{} images: loss {:.4}, top-1 {:.2}%, top-5 {:.2}%",
        stats.images,
        stats.loss,
        100.0 * stats.top1,
        100.0 * stats.top5
    );
    println!("\nper class (recall, and the class it is most often mistaken for):");
    for (i, row) in stats.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let confused = row.iter().enumerate().filter(|&(j, _)| j != i).max_by_key(|&(_, &c)| c);
        let mistake = match confused {
            Some((j, &c)) if c > 0 => format!("{} ({c})", classifier.classes[j]),
            _ => "-".into(),
        };
        println!(
            "  {:<16} {:>6.2}% of {:>5}   {mistake}",
            classifier.classes[i],
            100.0 * row[i] as f64 / total.max(1) as f64,
            total
        );
    }
    Ok(())
}

fn run_predict(args: &PredictArgs) -> anyhow::Result<()> {
    use nfnet::classify::{load_image, top_k, Classifier};
    let gpu = nfnet::Gpu::new()?;
    let classifier = match (&args.checkpoint, &args.weights) {
        (Some(ckpt), _) => Classifier::from_checkpoint(&gpu, ckpt, args.images.len().min(32))?,
        (None, Some(w)) => {
            let config = NfnetConfig::load(args.model.as_deref().expect("clap requires --model with --weights"))?;
            let tensors = weights::read_safetensors(w)?;
            let classes = (0..config.num_classes).map(|i| i.to_string()).collect();
            let resolution = args.resolution.unwrap_or(224);
            Classifier::new(
                &gpu,
                &config,
                &tensors,
                &w.display().to_string(),
                classes,
                resolution,
                nfnet::train::default_eval_margin(resolution),
                args.images.len().min(32),
            )?
        }
        (None, None) => anyhow::bail!("give --checkpoint, or --weights with --model"),
    };
    let mut names = classifier.classes.clone();
    if let Some(path) = &args.labels {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let given: Vec<String> = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        anyhow::ensure!(
            given.len() == names.len(),
            "{}: {} class names for a model of {} classes",
            path.display(),
            given.len(),
            names.len()
        );
        names = given;
    }
    let images = args.images.iter().map(|p| load_image(p)).collect::<Result<Vec<_>, _>>()?;
    for (path, probs) in args.images.iter().zip(classifier.classify(&images)?) {
        println!("{}", path.display());
        for (class, p) in top_k(&probs, 5) {
            println!("  {:>6.2}%  {}", 100.0 * p, names[class]);
        }
    }
    Ok(())
}

fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    use nfnet::bench::{kernel_rows, model_rows, Report, Yardstick};
    let gpu = nfnet::Gpu::new()?;
    let yardstick = match &args.yardstick {
        Some(s) => Some(Yardstick::parse(s).ok_or_else(|| anyhow::anyhow!("--yardstick {s:?}: expected `matmul_gflops=X copy_gbs=Y`"))?),
        None => Yardstick::from_env(),
    };
    println!("adapter: {}", gpu.describe());
    match yardstick {
        Some(y) => println!("yardstick: matmul {:.2} GFLOP/s, copy {:.2} GB/s", y.matmul_gflops, y.copy_gbs),
        None => println!("yardstick: not given (no ratios); see tools/bench_vs_yardstick.sh"),
    }
    println!("autotune: {}", if gpu.autotune() { "on" } else { "off" });
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
    let mut kernels = Vec::new();
    if !args.no_kernels {
        println!(
            "\n{:<16} {:<16} {:<32} {:>10} {:>16} {:>7}",
            "op", "pass", "shape", "ms", "rate", "ratio"
        );
        kernels = kernel_rows(&gpu, &args.filter, yardstick, &mut |r| {
            println!(
                "{:<16} {:<16} {:<32} {:>10.1} {:>8.3} {:<7} {:>7}",
                r.op,
                r.pass,
                r.shape,
                r.ms,
                r.rate,
                r.unit,
                ratio(r.ratio)
            );
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
        for r in model_rows(&gpu, case, yardstick)? {
            println!(
                "{:<12} {:>5} {:>5} {:<9} {:>9.2} {:>10.1} {:>10} {:>8.2}% {:>9.3} {:>7} {:>6}",
                r.model,
                r.resolution,
                r.batch,
                r.mode,
                r.images_per_second,
                r.ms,
                r.gpu_ms.map_or("-".to_string(), |g| format!("{g:.1}")),
                100.0 * r.encode_ms / r.ms,
                r.effective_gflops,
                ratio(r.ratio),
                r.conv_share.map_or("-".to_string(), |c| format!("{:.1}%", 100.0 * c)),
            );
            if !r.profile_ms.is_empty() {
                let total: f64 = r.profile_ms.iter().map(|(_, ms)| ms).sum();
                let top: Vec<String> = r
                    .profile_ms
                    .iter()
                    .take(8)
                    .map(|(op, ms)| format!("{op} {:.1}%", 100.0 * ms / total))
                    .collect();
                println!("    profile: {}", top.join(", "));
            }
            models.push(r);
        }
    }
    let choices = nfnet::tune::choices();
    if !choices.is_empty() {
        println!("\nautotune choices:");
        for c in &choices {
            println!("  {} = {} ({})", c.name, c.value, c.source);
        }
    }
    let report = Report {
        adapter: gpu.describe(),
        yardstick,
        autotune: gpu.autotune(),
        kernels,
        models,
        autotune_choices: choices,
    };
    let json = serde_json::to_vec_pretty(&report)?;
    nfnet::nfnet::weights::write_atomic(&args.json, &json)?;
    println!("\nwrote {}", args.json.display());
    Ok(())
}
