//! Training: exact resume, crash-safe checkpoints, image folders with bad files, and a typed
//! error for every kind of bad input.

use crate::support::gpu_or_skip;
use nfnet::data::{self, synthetic::Synthetic, DataSpec, Dataset, OpenOptions};
use nfnet::graph::optim::AgcConfig;
use nfnet::model::ModelConfig;
use nfnet::ops::grouped_conv::Storage;
use nfnet::train::{checkpoint, Event, FitEnd, TrainOptions, TrainOverrides, Trainer};
use nfnet::tune::TuneOptions;
use nfnet::{Error, Tuner};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nfnet-train-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn small_data() -> Dataset {
    Dataset {
        train: Arc::new(Synthetic::new(3, 0, 96)),
        val: Arc::new(Synthetic::new(3, 96, 24)),
        native_size: Some(32),
    }
}

/// A run that exercises every piece of training state: dropout and stochastic depth streams,
/// two micro-batches per step, CutMix, the EMA, AGC, warm-up and cosine decay.
pub(crate) fn options() -> TrainOptions {
    let mut model = ModelConfig::builtin("nano").unwrap();
    model.dropout = 0.2;
    model.stochastic_depth = 0.2;
    TrainOptions {
        model,
        epochs: 2,
        batch_size: 16,
        micro_batches: 2,
        lr: 0.05,
        warmup_epochs: 0.5,
        momentum: 0.9,
        weight_decay: 5e-5,
        agc: Some(AgcConfig {
            clip: 0.01,
            eps: 1e-3,
            style: Default::default(),
        }),
        label_smoothing: 0.1,
        ema_decay: Some(0.99),
        resolution: 32,
        augment: data::augment::Augment {
            crop_scale: 0.35,
            flip: true,
            mixup: 0.0,
            cutmix: 1.0,
        },
        eval_margin: 0,
        seed: 5,
        loss_every: 4,
        threads: 2,
        data: Default::default(),
    }
}

fn state_bits(trainer: &Trainer) -> Vec<(String, Vec<u32>)> {
    let gpu = gpu_or_skip().unwrap();
    trainer
        .state_tensors()
        .iter()
        .map(|(n, t)| (n.clone(), t.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// Interrupted and resumed, or tuned after its first epoch: the same bits as a plain run.
#[test]
fn a_resumed_run_is_bitwise_the_uninterrupted_run() {
    let Some(gpu) = gpu_or_skip() else { return };
    let data = small_data();
    let dir = scratch("resume");

    let tuner = Tuner::off();
    let mut straight = Trainer::new(gpu, &tuner, options(), &data).unwrap();
    assert_eq!(straight.fit(&data, &dir.join("straight"), &mut |_| {}).unwrap(), FitEnd::Finished);
    let want = state_bits(&straight);
    let steps = straight.state.step;
    drop(straight);

    // Interrupt in the middle of the first epoch, as Ctrl-C would, then continue from the checkpoint.
    let mut first = Trainer::new(gpu, &tuner, options(), &data).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    first.set_interrupt(flag.clone());
    let end = first
        .fit(&data, &dir.join("split"), &mut |e| {
            if let Event::Step { step: 2, .. } = e {
                flag.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
    let FitEnd::Interrupted(path) = end else {
        panic!("expected an interruption, got {end:?}")
    };
    assert_eq!(first.state.step, 2);
    drop(first);
    let checkpoint = checkpoint::read(&path).unwrap();
    let mut resumed = Trainer::resume(gpu, &tuner, &checkpoint, &TrainOverrides::default(), &data).unwrap();
    assert_eq!(resumed.state.step, 2);
    assert_eq!(resumed.fit(&data, &dir.join("split"), &mut |_| {}).unwrap(), FitEnd::Finished);
    assert_eq!(resumed.state.step, steps);
    let got = state_bits(&resumed);
    assert_eq!(got.len(), want.len());
    for ((name, a), (_, b)) in got.iter().zip(&want) {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(
            differ,
            0,
            "{name}: {differ} of {} values differ from the uninterrupted run",
            a.len()
        );
    }
    // The epoch records of both runs agree too.
    let csv = |run: &str| std::fs::read_to_string(dir.join(run).join("metrics.csv")).unwrap();
    let strip_timing = |s: String| {
        s.lines()
            .map(|l| l.split(',').take(7).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip_timing(csv("split")), strip_timing(csv("straight")));

    // Started on untimed kernels, then tuned after the first epoch and rebuilt with other
    // kernels (buffers where lavapipe's default is textures): still the same bits.
    let cached = Tuner::new(TuneOptions {
        cached_only: true,
        cache_dir: None,
        ..TuneOptions::default()
    });
    let mut deferred = Trainer::new(gpu, &cached, options(), &data).unwrap();
    assert!(cached.untimed() > 0, "a tuner with no cache left nothing untimed");
    deferred.tune_after_first_epoch(Tuner::new(TuneOptions {
        conv_storage: Some(Storage::Buffer),
        cache_dir: None,
        budget: Some(Duration::from_secs(3)),
        ..TuneOptions::default()
    }));
    let mut events = Vec::new();
    let end = deferred.fit(&data, &dir.join("deferred"), &mut |e| match e {
        Event::Epoch(s) => events.push(format!("epoch {}", s.epoch + 1)),
        Event::Tuning => events.push("tuning".into()),
        Event::Tuned => events.push("tuned".into()),
        _ => {}
    });
    assert_eq!(end.unwrap(), FitEnd::Finished);
    assert_eq!(events, ["epoch 1", "tuning", "tuned", "epoch 2"]);
    for ((name, a), (_, b)) in state_bits(&deferred).iter().zip(&want) {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{name}: {differ} of {} values differ from the untuned run", a.len());
    }
    std::fs::remove_dir_all(dir).ok();
}

/// The CLI, untuned: these tests are about checkpoints and data, not kernel choice.
pub(crate) fn nfnet() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nfnet"));
    cmd.env("NFNET_AUTOTUNE", "0");
    cmd
}

#[test]
fn a_process_killed_while_writing_a_checkpoint_leaves_the_last_one_loadable() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("kill");
    let last = dir.join("last.safetensors");
    let tmp = dir.join("last.safetensors.tmp");
    let mut child = nfnet()
        .args(["train", "--data", "synthetic:64:16", "--epochs", "4", "--batch-size", "16", "--out"])
        .arg(&dir)
        .env("NFNET_TEST_WRITE_PAUSE_MS", "1500")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |what: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !what() {
            assert!(start.elapsed().as_secs() < 300, "timed out waiting for the training process");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // The first checkpoint is complete; kill the process while it writes the second.
    wait_for(&|| last.exists());
    wait_for(&|| tmp.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(tmp.exists(), "the interrupted write should have left its temporary file");
    let ckpt = checkpoint::read(&last).expect("the last complete checkpoint loads");
    assert_eq!(ckpt.state.epoch, 1, "the checkpoint of the first epoch");
    std::fs::remove_dir_all(dir).ok();
}

/// A small image folder of PNG and JPEG files, with one grayscale image and one corrupt file.
fn image_folder(root: &Path) -> PathBuf {
    let source = Synthetic::new(9, 0, 60);
    for class in ["disk", "square", "triangle"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    let mut written = 0;
    for i in 0..60 {
        let label = nfnet::data::Source::label(&source, i) as usize;
        if label > 2 {
            continue;
        }
        let class = ["disk", "square", "triangle"][label];
        let img = nfnet::data::Source::image(&source, i);
        let name = root.join(class).join(format!("{i:03}"));
        match written % 3 {
            0 => img.save(name.with_extension("png")).unwrap(),
            1 => img.save(name.with_extension("jpg")).unwrap(),
            _ => image::DynamicImage::ImageRgb8(img)
                .to_luma8()
                .save(name.with_extension("png"))
                .unwrap(),
        }
        written += 1;
    }
    let broken = root.join("square").join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    broken
}

#[test]
fn an_image_folder_with_a_corrupt_and_grayscale_files_trains_and_names_the_bad_file() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("folder");
    let broken = image_folder(&dir.join("images"));
    let out = nfnet()
        .args(["train", "--epochs", "1", "--batch-size", "8", "--resolution", "32", "--data"])
        .arg(dir.join("images"))
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "training failed:\n{stderr}");
    assert!(
        stderr.contains(&format!("warning: skipping {}", broken.display())),
        "no warning naming the corrupt file:\n{stderr}"
    );
    assert!(
        stderr.contains("1 unreadable files skipped"),
        "the epoch summary should count the skipped file:\n{stderr}"
    );
    let csv = std::fs::read_to_string(dir.join("run").join("metrics.csv")).unwrap();
    assert!(
        csv.lines().nth(1).is_some_and(|l| l.ends_with(",1")),
        "metrics.csv should record the skipped file:\n{csv}"
    );
    assert!(dir.join("run").join("metrics.png").exists() && dir.join("run").join("last.safetensors").exists());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_training_input_gets_clear_errors() {
    let Some(gpu) = gpu_or_skip() else { return };
    let dir = scratch("bad");
    // A missing folder, and an empty one.
    let open = |source: &str| data::open(&DataSpec::new(source), &OpenOptions::default());
    let msg = open(dir.join("absent").to_str().unwrap()).err().unwrap().to_string();
    assert!(msg.contains("no such folder"), "{msg}");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let msg = open(dir.join("empty").to_str().unwrap()).err().unwrap().to_string();
    assert!(msg.contains("holds no images"), "{msg}");
    // Images without class folders; one class; truncated JPEGs (skipped, with the reason).
    let img = nfnet::data::Source::image(&Synthetic::new(1, 0, 1), 0);
    let loose = dir.join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    for i in 0..2 {
        img.save(loose.join(format!("{i}.png"))).unwrap();
    }
    let msg = open(loose.to_str().unwrap()).err().unwrap().to_string();
    assert!(msg.contains("holds 2 files but no class folders"), "{msg}");
    let one = dir.join("one");
    std::fs::create_dir_all(one.join("cats")).unwrap();
    img.save(one.join("cats/a.png")).unwrap();
    let msg = open(one.to_str().unwrap()).err().unwrap().to_string();
    assert!(
        msg.contains("one class folder (\"cats\")") && msg.contains("at least two classes"),
        "{msg}"
    );
    let cut = dir.join("cut");
    for class in ["a", "b"] {
        std::fs::create_dir_all(cut.join(class)).unwrap();
        img.save(cut.join(class).join("whole.jpg")).unwrap();
    }
    let jpeg = std::fs::read(cut.join("a/whole.jpg")).unwrap();
    std::fs::write(cut.join("a/eighty.jpg"), &jpeg[..jpeg.len() * 4 / 5]).unwrap();
    std::fs::write(cut.join("b/short.jpg"), &jpeg[..jpeg.len() - 10]).unwrap();
    let folder = nfnet::data::folder::Folder::open(&cut, None, 64).unwrap();
    let skipped = nfnet::data::Source::skipped(&folder);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().all(|s| s.contains("truncated JPEG")), "{skipped:?}");
    assert_eq!(nfnet::data::Source::len(&folder), 2, "the whole JPEGs are kept");
    let msg = nfnet::data::load_image(&cut.join("b/short.jpg")).err().unwrap().to_string();
    assert!(msg.contains("truncated JPEG"), "{msg}");
    // A CIFAR-10 file of the wrong size.
    let cifar = dir.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::write(cifar.join(name), vec![1u8; 3073 * 4]).unwrap();
    }
    std::fs::write(cifar.join("data_batch_3.bin"), vec![1u8; 3073 * 4 + 100]).unwrap();
    match open(&format!("cifar10:{}", cifar.display())) {
        Err(e @ Error::Format { .. }) => assert!(
            e.to_string().contains("data_batch_3.bin") && e.to_string().contains("not a whole number of CIFAR-10 records"),
            "{e}"
        ),
        other => panic!("expected a format error, got {:?}", other.err()),
    }
    // A batch size of 0.
    let (data, tuner) = (small_data(), Tuner::off());
    let msg = Trainer::new(
        gpu,
        &tuner,
        TrainOptions {
            batch_size: 0,
            ..options()
        },
        &data,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(msg.contains("batch size must be at least 1"), "{msg}");
    // A checkpoint of another model config.
    let mut t = Trainer::new(
        gpu,
        &tuner,
        TrainOptions {
            epochs: 1,
            micro_batches: 1,
            ..options()
        },
        &data,
    )
    .unwrap();
    let path = dir.join("nano.safetensors");
    checkpoint::save(&t, &path).unwrap();
    t.state.step = 0;
    drop(t);
    let other = TrainOverrides {
        model: Some(ModelConfig::builtin("nano_timm").unwrap()),
        ..Default::default()
    };
    let checkpoint = checkpoint::read(&path).unwrap();
    let msg = Trainer::resume(gpu, &tuner, &checkpoint, &other, &data).err().unwrap().to_string();
    assert!(
        msg.contains("is a checkpoint of model \"nano\", not of the requested model \"nano_timm\""),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_schedule_warms_up_then_decays_to_zero() {
    let o = TrainOptions {
        epochs: 10,
        warmup_epochs: 1.0,
        lr: 0.4,
        ..options()
    };
    assert!((o.lr_at(0, 100) - 0.004).abs() < 1e-7);
    assert!((o.lr_at(99, 100) - 0.4).abs() < 1e-6);
    assert!(
        (o.lr_at(550, 100) - 0.2).abs() < 1e-6,
        "half way through the decay: {}",
        o.lr_at(550, 100)
    );
    assert!(o.lr_at(999, 100) < 1e-5);
    // Warm-up that ends inside the first step never overshoots the peak.
    let one_step = TrainOptions {
        epochs: 4,
        warmup_epochs: 0.5,
        lr: 0.1,
        ..options()
    };
    assert!(
        (0..4).all(|s| one_step.lr_at(s, 1) <= 0.1),
        "{:?}",
        (0..4).map(|s| one_step.lr_at(s, 1)).collect::<Vec<_>>()
    );
}

#[test]
fn cifar10_records_read_as_labelled_images() {
    let dir = scratch("cifar");
    // Two records per file: label, then the red, green and blue planes.
    let record = |label: u8, r: u8, g: u8, b: u8| [vec![label], vec![r; 1024], vec![g; 1024], vec![b; 1024]].concat();
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ] {
        std::fs::write(dir.join(name), [record(3, 10, 20, 30), record(9, 200, 100, 0)].concat()).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), record(1, 7, 8, 9)).unwrap();
    let data = data::open(&DataSpec::new(&format!("cifar10:{}", dir.display())), &OpenOptions::default()).unwrap();
    assert_eq!((data.train.len(), data.val.len()), (10, 1));
    assert_eq!(data.classes()[3], "cat");
    assert_eq!((data.train.label(1), data.val.label(0)), (9, 1));
    let img = data.train.image(1);
    assert_eq!((img.width(), img.height(), img.get_pixel(5, 7).0), (32, 32, [200, 100, 0]));
    std::fs::remove_dir_all(dir).ok();
}

/// `nfnet bench` measures a kernel row and a model's training step and inference pass, prints
/// them, and writes them (with the autotune setting) to its JSON file. Structure only: speed is
/// never asserted in a test.
#[test]
fn the_bench_command_writes_kernel_and_model_rows_to_json() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("bench");
    let json = dir.join("bench.json");
    let out = nfnet()
        .args(["bench", "--models", "nano@32x4", "--filter", "c3_g1", "forward", "--yardstick"])
        .arg("matmul_gflops=1.0 copy_gbs=1.0")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nfnet bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let kernels = report["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 1, "one kernel row matches the filter: {kernels:?}");
    assert_eq!(kernels[0]["shape"], "n8_c3_g1_192x192_k3_s2_o16");
    assert!(kernels[0]["rate"].as_f64().unwrap() > 0.0 && kernels[0]["ratio"].as_f64().is_some());
    let models = report["models"].as_array().unwrap();
    let modes: Vec<&str> = models.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["train", "inference"]);
    for m in models {
        assert!(m["images_per_second"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["encode_ms"].as_f64().unwrap() > 0.0, "{m}");
    }
    let share = models[0]["conv_share"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 1.0, "conv share {share}");
    assert_eq!(report["autotune"], false, "the test runs untuned (NFNET_AUTOTUNE=0)");
    assert!(stdout.contains("nano") && stdout.contains("grouped_conv"), "{stdout}");
    std::fs::remove_dir_all(dir).ok();
}

/// A checkpoint of `options()` in memory (no tensors): what `--resume` merges with.
fn checkpoint_of(options: TrainOptions) -> checkpoint::Checkpoint {
    checkpoint::Checkpoint {
        source: "runs/x/last.safetensors".into(),
        options,
        state: Default::default(),
        classes: vec![],
        tensors: Default::default(),
    }
}

/// The rules of `nfnet train`'s command line, in the library: a new run takes the defaults for
/// what was not given (the resolution from the data, the crop and margin from the resolution,
/// `agc_clip 0` as AGC off); a resumed run takes the checkpoint's options, its epochs and data
/// as given, and refuses another model.
#[test]
fn the_command_line_merges_with_the_defaults_and_a_checkpoint() {
    let data = small_data();
    let fresh = TrainOverrides::default().new_run(&data).unwrap();
    let nano = ModelConfig::builtin("nano").unwrap();
    assert_eq!(fresh, TrainOptions::new(nano.clone()), "nothing given: the defaults");
    let big = Dataset {
        native_size: None,
        ..small_data()
    };
    let asked = TrainOverrides {
        resolution: Some(128),
        lr: Some(0.3),
        agc_clip: Some(0.0),
        dropout: Some(0.25),
        flip: Some(false),
        ..Default::default()
    };
    let o = asked.new_run(&big).unwrap();
    assert_eq!((o.resolution, o.lr, o.agc, o.model.dropout), (128, 0.3, None, 0.25));
    assert_eq!(
        (o.augment.crop_scale, o.augment.flip, o.eval_margin),
        (0.08, false, 32),
        "128 px: ImageNet's crops"
    );
    assert_eq!(
        TrainOverrides::default().new_run(&big).unwrap().resolution,
        32,
        "no native size: 32"
    );
    // Augmentation presets, each setting given changing the preset.
    use nfnet::data::augment::AugmentPreset;
    let preset = |augment: AugmentPreset, crop_scale: Option<f32>| {
        let o = TrainOverrides {
            augment: Some(augment),
            crop_scale,
            ..Default::default()
        }
        .new_run(&data)
        .unwrap()
        .augment;
        (o.crop_scale, o.flip)
    };
    assert_eq!(preset(AugmentPreset::Light, None), (0.8, false));
    assert_eq!(preset(AugmentPreset::Light, Some(0.6)), (0.6, false));
    assert_eq!(preset(AugmentPreset::None, None), (1.0, false));
    assert_eq!(preset(AugmentPreset::Standard, None), (0.35, true));
    assert!("heavy".parse::<AugmentPreset>().is_err());

    let saved = checkpoint_of(options());
    let resumed = TrainOverrides {
        epochs: Some(7),
        lr: Some(9.0),
        ..Default::default()
    }
    .resumed(&saved)
    .unwrap();
    assert_eq!(
        resumed,
        TrainOptions { epochs: 7, ..options() },
        "the checkpoint's options, run to 7 epochs"
    );
    let given = TrainOverrides {
        epochs: Some(7),
        lr: Some(9.0),
        flip: Some(false),
        ..Default::default()
    };
    assert_eq!(given.ignored_on_resume(), ["--lr", "--no-flip"], "a resume says what it ignores");
    let same_model = TrainOverrides {
        model: Some(nano),
        ..Default::default()
    };
    assert!(
        same_model.resumed(&saved).is_ok(),
        "the checkpoint's own model (dropout and classes aside)"
    );
    let other = TrainOverrides {
        model: Some(ModelConfig::builtin("nano_timm").unwrap()),
        ..Default::default()
    };
    let msg = other.resumed(&saved).err().unwrap().to_string();
    assert!(msg.contains("runs/x/last.safetensors is a checkpoint of model \"nano\""), "{msg}");
    // The data: as given, else the checkpoint's (opened with its seed), else the embedded set.
    let saved = checkpoint_of(TrainOptions {
        data: DataSpec::new("synthetic:40:10"),
        ..options()
    });
    let sizes = |d: Dataset| (d.train.len(), d.val.len());
    assert_eq!(sizes(TrainOverrides::default().open_data(Some(&saved)).unwrap()), (40, 10));
    let given = TrainOverrides {
        data: Some(DataSpec::new("synthetic:20:5")),
        ..Default::default()
    };
    assert_eq!(sizes(given.open_data(Some(&saved)).unwrap()), (20, 5));
    let seeded = |seed| data::open(&DataSpec::new("synthetic:40:10"), &OpenOptions { seed, keep_side: 64 }).unwrap();
    let reopened = TrainOverrides::default().open_data(Some(&saved)).unwrap();
    assert_eq!(
        reopened.train.image(3),
        seeded(options().seed).train.image(3),
        "the checkpoint's seed"
    );
    assert_ne!(reopened.train.image(3), seeded(0).train.image(3));
    // An older checkpoint's folder, saved relative and not found from here: the error says so.
    let relative = checkpoint_of(TrainOptions {
        data: DataSpec::new("no/such/relative/folder"),
        ..options()
    });
    let msg = TrainOverrides::default().open_data(Some(&relative)).err().unwrap().to_string();
    assert!(
        msg.contains("relative path \"no/such/relative/folder\"") && msg.contains("--data"),
        "{msg}"
    );
}
