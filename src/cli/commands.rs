//! The commands: each calls the library and renders what comes back (tables on stdout,
//! progress and notes on stderr).

use super::args::{BenchArgs, EvalArgs, ForwardArgs, PredictArgs, TrainArgs};
use super::ranks::Ranks;
use indicatif::{ProgressBar, ProgressStyle};
use nfnet::bench::{kernel_rows, model_rows, Report, Yardstick};
use nfnet::classify::{top_k, Classifier, ClassifierOptions};
use nfnet::data::{self, DataSpec, OpenOptions};
use nfnet::gpu::GpuOptions;
use nfnet::graph::optim::{AgcConfig, AgcStyle, Optimizer};
use nfnet::model::checkpoint::CheckpointFile;
use nfnet::model::forward::{forward as run_forward, ForwardOptions};
use nfnet::model::weights::Weights;
use nfnet::train::{checkpoint, default_threads, Event, FitEnd, Trainer};
use nfnet::tune::{ProgressHook, TuneProgress, TuneStage};
use nfnet::{Gpu, ModelConfig, TuneOptions, Tuner};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The tuner's status on stderr while it times kernels (a first run on an adapter): one line
/// that updates (on a terminal; elsewhere one line when it starts), then one line saying how it
/// ended. Nothing when every choice comes from the cache.
#[derive(Default)]
pub struct TuneStatus {
    line: Mutex<StatusLine>,
}

#[derive(Default)]
struct StatusLine {
    /// Shown while choices are being timed.
    bar: Option<ProgressBar>,
    /// The last report.
    last: Option<TuneProgress>,
}

impl TuneStatus {
    /// The hook for [`nfnet::TuneOptions::progress`] that drives this status.
    pub fn hook(self: &Arc<Self>) -> ProgressHook {
        let status = self.clone();
        ProgressHook::new(move |p| status.update(p))
    }

    fn update(&self, p: &TuneProgress) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if p.stage == TuneStage::BudgetSpent {
            if let Some(bar) = line.bar.take() {
                bar.finish_and_clear();
            }
            let budget = p.budget.map_or("the".into(), |b| format!("the {} s", b.as_secs_f64()));
            eprintln!("tuning stopped at {budget} budget; the rest use defaults; the next run continues");
            line.last = None;
            return;
        }
        let bar = line.bar.get_or_insert_with(|| {
            // Redrawn on each report, with no ticking thread (that could perturb `bench`).
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
            if bar.is_hidden() {
                // Not a terminal (a log): say once what is happening.
                let bound = p.budget.map_or(String::new(), |b| format!(", at most {} s", b.as_secs_f64()));
                eprintln!("tuning kernels for {} (first run; cached afterwards{bound})", p.adapter);
            }
            bar
        });
        let of = p.budget.map_or(String::new(), |b| format!(" of {} s", b.as_secs_f64()));
        let choices = if p.choices == 1 { "choice" } else { "choices" };
        bar.set_message(format!(
            "tuning kernels for {} (first run; cached afterwards): {} {choices}, {:.1} s{of}",
            p.adapter,
            p.choices,
            p.spent.as_secs_f64()
        ));
        line.last = Some(p.clone());
    }

    /// Runs `print` (which writes a line) with the status line out of its way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        let line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        match &line.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Ends the status line, once the plans are built: how many choices were timed, and in
    /// what time (nothing when none was, or when the budget ran out, said already).
    pub fn done(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = line.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(p) = line.last.take() {
            let choices = if p.choices == 1 { "choice" } else { "choices" };
            eprintln!(
                "tuned {} {choices} in {:.1} s for {}; cached for the next run",
                p.choices,
                p.spent.as_secs_f64(),
                p.adapter
            );
        }
    }
}

pub fn devices() -> anyhow::Result<()> {
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

pub fn forward(args: &ForwardArgs, tuner: &Tuner, status: &TuneStatus) -> anyhow::Result<()> {
    let mut config = ModelConfig::load(&args.model)?;
    if let Some(n) = args.num_classes {
        config.num_classes = n;
        config.validate()?;
    }
    let weights = Weights::read(&args.weights)?;
    let input_file = nfnet::io::read_safetensors(&args.input)?;
    let input =
        (input_file.get("input")).ok_or_else(|| anyhow::anyhow!("{}: no tensor named `input` (N,3,H,W f32)", args.input.display()))?;
    anyhow::ensure!(
        input.as_f32("input").is_ok(),
        "{}: `input` holds integers, expected f32 images (N,3,H,W, normalised)",
        args.input.display()
    );
    let agc = (args.agc_clip != 0.0).then_some(AgcConfig {
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
    let out = run_forward(&gpu, tuner, &config, &weights, input, input_file.get("labels"), &options);
    status.done();
    let out = out?;
    nfnet::io::write_safetensors(&args.output, &out, None)?;
    let loss = (out.get("loss").and_then(|l| l.as_f32("loss").ok()))
        .map(|v| format!(", loss {:.6}", v[0]))
        .unwrap_or_default();
    eprintln!("wrote {} tensors to {}{loss}", out.len(), args.output.display());
    Ok(())
}

pub fn train(args: &TrainArgs, tuner: &Tuner, status: &TuneStatus) -> anyhow::Result<()> {
    let ranks = Ranks::start()?;
    let interrupted = match train_as(&ranks, args, tuner, status) {
        Err(e) if ranks.size > 1 => ranks.fail(&e),
        result => result?,
    };
    drop(ranks); // MPI ends here, before the exit code of an interrupt
    if interrupted {
        std::process::exit(130);
    }
    Ok(())
}

/// [`train`] as rank `ranks.rank`: rank 0 alone prints (and writes, in the library); returns
/// whether Ctrl-C stopped the run.
fn train_as(ranks: &Ranks, args: &TrainArgs, tuner: &Tuner, status: &TuneStatus) -> anyhow::Result<bool> {
    let root = ranks.is_root();
    macro_rules! say {
        ($($t:tt)*) => { if root { eprintln!($($t)*) } };
    }
    let overrides = args.overrides()?;
    let resumed = args.resume.as_deref().map(checkpoint::read).transpose()?;
    let out = args.out_dir();
    if root {
        check_run_folder(&out, args)?;
    }
    let gpu = Gpu::with_options(&GpuOptions {
        adapter: ranks.adapter(),
        ..Default::default()
    })?;
    match ranks.size {
        1 => say!("adapter: {}", gpu.describe()),
        n => eprintln!("rank {} of {n}: adapter {}", ranks.rank, gpu.describe()),
    }
    let data = overrides.open_data(resumed.as_ref())?;
    let skipped = data.train.skipped();
    for file in skipped {
        say!("warning: skipping {file}");
    }
    let (train, val, classes) = (data.train.len(), data.val.len(), data.classes().len());
    let note = if skipped.is_empty() {
        String::new()
    } else {
        format!(" ({} unreadable files skipped)", skipped.len())
    };
    say!("data: {train} training and {val} validation images in {classes} classes{note}");
    // The first epoch starts at once on the cached kernel choices and the defaults; the rest
    // are timed after it (on a first run on a software device, compiling the candidates alone
    // takes longer than the nano model's epoch).
    // Ranks other than 0 tune without a status line.
    let tune = TuneOptions {
        progress: tuner.options().progress.clone().filter(|_| root),
        ..tuner.options().clone()
    };
    let cached = Tuner::new(TuneOptions {
        cached_only: true,
        ..tune.clone()
    });
    let built = match (&resumed, ranks.group()) {
        (Some(ckpt), None) => Trainer::resume(&gpu, &cached, ckpt, &overrides, &data),
        (Some(ckpt), Some(group)) => Trainer::resume_in(&gpu, &cached, ckpt, &overrides, &data, group),
        (None, group) => overrides.new_run(&data).and_then(|options| match group {
            None => Trainer::new(&gpu, &cached, options, &data),
            Some(group) => Trainer::new_in(&gpu, &cached, options, &data, group),
        }),
    };
    let mut trainer = built?;
    if cached.untimed() > 0 {
        trainer.tune_after_first_epoch(Tuner::new(tune));
    }
    if let (Some(ckpt), true) = (&resumed, root) {
        report_resume(ckpt, &trainer, &overrides);
    }
    if let Some(path) = &args.init {
        let report = trainer.load_weights(&Weights::read(path)?)?;
        if !report.reinitialised.is_empty() {
            let classes = trainer.options.model.num_classes;
            say!("note: {} re-initialised for {classes} classes", report.reinitialised.join(", "));
        }
    }
    let o = &trainer.options;
    let passes = match (o.micro_batches, ranks.size) {
        (1, 1) => "1 pass".to_string(),
        (k, 1) => format!("{k} passes"),
        (k, n) => format!("{n} ranks x {k} passes of {}", o.batch_size / (n * k)),
    };
    say!(
        "model {} at {r}x{r}, batch {} ({passes} per step), {} epochs of {} steps, lr {} (warm-up {} epochs, cosine), out {}",
        o.model.name,
        o.batch_size,
        o.epochs,
        trainer.steps_per_epoch(),
        o.lr,
        o.warmup_epochs,
        out.display(),
        r = o.resolution,
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C: stop now
        }
        say!("\ninterrupted: saving a checkpoint at the end of this step (Ctrl-C again to quit at once)");
    })?;
    trainer.set_interrupt(interrupted);
    let bar = if root { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut last_loss = f32::NAN;
    let end = trainer.fit(&data, &out, &mut |event| {
        if root {
            show(&bar, status, &mut last_loss, event)
        }
    });
    bar.finish_and_clear();
    match end? {
        FitEnd::Finished => {
            say!("done: {} (best top-1 {:.2}%)", out.display(), 100.0 * trainer.state.best_top1);
            Ok(false)
        }
        FitEnd::Interrupted(path) => {
            // Resuming writes to the checkpoint's folder: the command works as printed.
            say!("stopped; continue with: nfnet train --resume {}", path.display());
            Ok(true)
        }
    }
}

/// What a resumed run says before it goes on: where it resumes, the flags it does not take, and
/// a schedule stretched to more epochs.
fn report_resume(ckpt: &checkpoint::Checkpoint, trainer: &Trainer, overrides: &nfnet::train::TrainOverrides) {
    eprintln!(
        "resuming {} at epoch {}, step {}",
        ckpt.source,
        trainer.state.epoch + 1,
        trainer.state.step
    );
    let ignored = overrides.ignored_on_resume();
    if !ignored.is_empty() {
        eprintln!(
            "warning: {} ignored: a resumed run continues with the checkpoint's settings, bit for bit \
             (a new run can change them)",
            ignored.join(", ")
        );
    }
    let (before, now) = (ckpt.options.epochs, trainer.options.epochs);
    if before != now {
        eprintln!(
            "note: the run planned {before} epochs and now trains {now}: the cosine decay of the learning rate \
             is stretched to end at epoch {now}, so the result differs from a run planned for {now} from the start"
        );
    }
}

/// A new run into a folder that holds another run's files would mix two runs' checkpoints and
/// metrics: refused unless --overwrite, which removes them first. A resumed run may write into
/// its own checkpoint's folder.
fn check_run_folder(out: &std::path::Path, args: &TrainArgs) -> anyhow::Result<()> {
    let found = Trainer::run_files(out);
    let own = args.resume.as_deref().and_then(|ckpt| {
        let folder = |p: &std::path::Path| std::fs::canonicalize(p).ok();
        let parent = ckpt
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        Some(folder(parent)? == folder(out)?)
    });
    if found.is_empty() || own == Some(true) {
        return Ok(());
    }
    if !args.overwrite {
        let names: Vec<String> = found
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into())
            .collect();
        anyhow::bail!(
            "{} holds another run ({}); choose another --out, continue that run with --resume {}, \
             or pass --overwrite to replace its files",
            out.display(),
            names.join(", "),
            out.join("last.safetensors").display()
        );
    }
    for file in found {
        std::fs::remove_file(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// Renders one training event on the progress bar (`last_loss`: the last loss read back).
fn show(bar: &ProgressBar, status: &TuneStatus, last_loss: &mut f32, event: Event) {
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
            let mut notes = String::new();
            if s.exchange_seconds > 0.0 {
                notes += &format!("  (gradient exchange {:.0}%)", 100.0 * s.exchange_seconds / s.seconds.max(1e-9));
            }
            if s.skipped > 0 {
                notes += &format!("  ({} unreadable files skipped)", s.skipped);
            }
            eprintln!(
                "epoch {:>3}: train loss {:.4}  val loss {:.4}  top-1 {:.2}%  top-5 {:.2}%  {:.1} img/s  {:.0} s{notes}",
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
        // The tuner's status line takes the bar's place meanwhile.
        Event::Tuning => bar.finish_and_clear(),
        Event::Tuned => {
            status.done();
            bar.reset();
        }
    }
}

pub fn eval(args: &EvalArgs, tuner: &Tuner, status: &TuneStatus) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    // Read once: the weights, and the seed that split the data.
    let ckpt = CheckpointFile::read(&args.checkpoint)?;
    let options = ClassifierOptions {
        batch: args.batch_size,
        ..Default::default()
    };
    let classifier = Classifier::from_checkpoint(&gpu, tuner, &ckpt, &options);
    status.done();
    let classifier = classifier?;
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
    if stats.non_finite > 0 {
        eprintln!(
            "warning: {} images gave NaN or infinite logits (counted wrong, left out of the table below): \
             the checkpoint's weights are not usable",
            stats.non_finite
        );
    }
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

pub fn predict(args: &PredictArgs, tuner: &Tuner, status: &TuneStatus) -> anyhow::Result<()> {
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
    status.done();
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

pub fn bench(args: &BenchArgs, tuner: &Tuner, status: &TuneStatus) -> anyhow::Result<()> {
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
            status.suspend(|| println!("{:<16} {:<16} {:<32} {:>10.1} {rate} {ratio:>7}", r.op, r.pass, r.shape, r.ms));
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
        let rows = model_rows(&gpu, tuner, case, yardstick);
        status.done();
        for r in rows? {
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
    status.done();
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
