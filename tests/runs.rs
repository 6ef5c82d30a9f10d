//! Nothing lost, no silent NaN: run folders that never mix two runs, an interrupted run that
//! continues as printed, non-finite losses and weights that stop a run before any checkpoint
//! holds them, and options checked before any work.

use crate::support::gpu_or_skip;
use crate::train::{nfnet, options, scratch, small_data};
use nfnet::data::Dataset;
use nfnet::train::{checkpoint, FitEnd, TrainOptions, Trainer};
use nfnet::{Error, Tuner};
use std::path::Path;

/// Run folders: a new run refuses a folder that holds another run (its files unchanged) unless
/// told to replace it, and then starts a fresh metrics.csv; Ctrl-C saves, exits 130 and prints a
/// command that, run as printed, continues in the same folder; a resume that changes the
/// epoch count says what that does to the schedule.
#[test]
fn run_folders_are_never_mixed_and_an_interrupted_run_continues_as_printed() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("folders");
    let train = |extra: &[&str]| {
        let out = nfnet()
            .current_dir(&dir)
            .args(["train", "--data", "synthetic:64:16", "--batch-size", "16", "--out", "run"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = train(&["--epochs", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let run = dir.join("run");
    let snapshot = || nfnet::train::RUN_FILES.map(|f| std::fs::read(run.join(f)).ok());
    let before = snapshot();
    let (code, stderr) = train(&["--epochs", "1", "--seed", "5"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("holds another run") && stderr.contains("--overwrite"), "{stderr}");
    assert!(snapshot() == before, "a refused run touched the folder");
    let (code, stderr) = train(&["--epochs", "1", "--seed", "5", "--overwrite"]);
    assert_eq!(code, Some(0), "{stderr}");
    let rows = || std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows(), 1, "the replaced run's metrics are gone");
    // Interrupted after its first epoch: the checkpoint, exit 130, and the command to go on.
    let child = nfnet()
        .current_dir(&dir)
        .args([
            "train",
            "--data",
            "synthetic:64:16",
            "--batch-size",
            "16",
            "--epochs",
            "40",
            "--out",
            "run2",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !dir.join("run2/last.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 300, "timed out waiting for the first checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let interrupt = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(interrupt.unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let printed = (stderr.lines())
        .find_map(|l| l.split_once("continue with: ").map(|(_, c)| c.to_string()))
        .unwrap_or_else(|| panic!("no resume command printed:\n{stderr}"));
    let words: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(&words[..3], ["nfnet", "train", "--resume"], "{printed}");
    let resumed = checkpoint::read(&dir.join(words[3])).unwrap();
    let out = nfnet()
        .current_dir(&dir)
        .args(&words[1..])
        .args(["--epochs", (resumed.state.epoch + 1).to_string().as_str()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("note: the run planned 40 epochs"), "{stderr}");
    let csv = std::fs::read_to_string(dir.join("run2/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count() - 1, resumed.state.epoch as usize + 1, "{csv}");
    let last = checkpoint::read(&dir.join("run2/last.safetensors")).unwrap();
    assert_eq!(
        last.state.epoch,
        resumed.state.epoch + 1,
        "the resumed run wrote into its own folder"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A trainer of `options()` (one pass per step, the moving average as given) that has trained
/// one epoch into `dir`, untuned.
fn one_epoch_into<'g>(gpu: &'g nfnet::Gpu, data: &Dataset, dir: &Path, ema_decay: Option<f64>) -> Trainer<'g> {
    let options = TrainOptions {
        epochs: 1,
        micro_batches: 1,
        ema_decay,
        ..options()
    };
    let mut t = Trainer::new(gpu, &Tuner::off(), options, data).unwrap();
    assert_eq!(t.fit(data, dir, &mut |_| {}).unwrap(), FitEnd::Finished);
    t
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let Some(gpu) = gpu_or_skip() else { return };
    let data = small_data();
    let dir = scratch("nan");
    let mut t = one_epoch_into(gpu, &data, &dir, None);
    let good_step = t.state.step;
    // Poison a weight, as an exploding update would, and train on.
    t.options.epochs = 2;
    let w = t.params().get("head.fc.weight").unwrap();
    w.write_f32(gpu, &vec![f32::INFINITY; w.numel()]).unwrap();
    match t.fit(&data, &dir, &mut |_| {}) {
        Err(Error::Diverged { step, loss }) => {
            assert!(!loss.is_finite());
            assert_eq!(step, good_step, "the first step after the poison diverges");
        }
        other => panic!("expected divergence, got {other:?}"),
    }
    let ckpt = checkpoint::read(&dir.join("last.safetensors")).unwrap();
    assert_eq!(ckpt.state.step, good_step, "the last checkpoint is the good one");
    assert!(ckpt.tensors.values().all(|t| t.as_f32("t").unwrap().iter().all(|v| v.is_finite())));
    std::fs::remove_dir_all(dir).ok();
}

/// Weights that evaluate to NaN while the training loss stays finite (here the moving average,
/// which evaluation uses, poisoned): the epoch's top-1 counts every NaN row wrong, the run stops
/// with a typed error, and neither `last` nor `best` is touched; no checkpoint with a NaN is
/// ever written.
#[test]
fn a_non_finite_validation_loss_stops_training_and_touches_no_checkpoint() {
    let Some(gpu) = gpu_or_skip() else { return };
    let data = small_data();
    let dir = scratch("nan-val");
    let mut t = one_epoch_into(gpu, &data, &dir, Some(0.9));
    let files = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let (last, best) = (files("last.safetensors"), files("best.safetensors"));
    let (name, ema) = (t.state_tensors().into_iter())
        .find(|(n, _)| n.contains("ema") && n.ends_with("head.fc.weight"))
        .expect("the moving average of the classifier's weight");
    ema.write_f32(gpu, &vec![f32::NAN; ema.numel()]).unwrap();
    let stats = t.evaluate(&data.val).unwrap();
    assert_eq!((stats.non_finite, stats.images), (24, 24), "{stats:?}");
    assert!(
        stats.loss.is_nan() && stats.top1 == 0.0 && stats.top5 == 0.0,
        "NaN logits count as wrong: {stats:?}"
    );
    let refused = dir.join("refused.safetensors");
    match checkpoint::save(&t, &refused) {
        Err(e @ Error::NotFinite { .. }) => assert!(e.to_string().contains(&name), "{e}"),
        other => panic!("expected a non-finite error naming {name}, got {other:?}"),
    }
    assert!(!refused.exists());
    t.options.epochs = 2;
    match t.fit(&data, &dir, &mut |_| {}) {
        Err(e @ Error::NotFinite { .. }) => assert!(e.to_string().contains("validation loss is NaN"), "{e}"),
        other => panic!("expected the run to stop on the NaN validation loss, got {other:?}"),
    }
    assert!(
        files("last.safetensors") == last && files("best.safetensors") == best,
        "a checkpoint was touched"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Every option of a run is checked before any work, and a bad one is named by its flag.
#[test]
fn bad_training_options_name_the_flag() {
    let cases: [(fn(&mut TrainOptions), &str); 8] = [
        (|o| o.lr = f32::NAN, "lr (--lr) NaN"),
        (|o| o.lr = -1.0, "lr (--lr) -1"),
        (|o| o.warmup_epochs = f32::NAN, "--warmup"),
        (|o| o.warmup_epochs = -1.0, "--warmup"),
        (|o| o.augment.mixup = -1.0, "--mixup"),
        (|o| o.augment.crop_scale = 0.0, "--crop-scale"),
        (|o| o.label_smoothing = 2.0, "--label-smoothing"),
        (|o| o.agc.as_mut().unwrap().eps = -1.0, "--agc-eps"),
    ];
    for (change, flag) in cases {
        let mut o = options();
        change(&mut o);
        match o.validate() {
            Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains(flag), "{flag}: {e}"),
            other => panic!("{flag}: expected an invalid-option error, got {other:?}"),
        }
    }
    assert!(options().validate().is_ok());
}

/// Bad input on the command line: each command exits with status 1 and a message naming what
/// was wrong (never 101, a panic), and writes nothing.
#[test]
fn bad_commands_exit_1_with_a_message_naming_the_problem() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("commands");
    let data = |f: &str| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(f);
    let (weights, input) = (data("dm_mini.weights.safetensors"), data("dm_mini.input.safetensors"));
    let (model, out) = (data("dm_mini.json"), dir.join("out.safetensors"));
    let s = |p: &std::path::Path| p.display().to_string();
    // A two-class checkpoint, for `eval` on the ten built-in classes.
    let two = dir.join("two");
    for class in ["a", "b"] {
        std::fs::create_dir_all(two.join(class)).unwrap();
        for i in 0..4 {
            let img = nfnet::data::Source::image(&nfnet::data::synthetic::Synthetic::new(2, i, 1), 0);
            img.save(two.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let trained = nfnet()
        .args([
            "train",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--val-split",
            "0.25",
            "--data",
            &s(&two),
            "--out",
            &s(&dir.join("run")),
        ])
        .output()
        .unwrap();
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let checkpoint = s(&dir.join("run/last.safetensors"));
    let forward = |extra: &[&str]| {
        let mut args = vec!["forward", "--model", &*model.to_str().unwrap(), "--output", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let w = s(&weights);
    let i = s(&input);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["info".into(), "--model".into(), "nano".into(), "--batch".into(), "0".into()],
            "batch size 0",
        ),
        (
            vec!["info".into(), "--model".into(), "nano".into(), "--resolution".into(), "0".into()],
            "resolution 0x0",
        ),
        (vec!["info".into(), "--model".into(), w.clone()], "not a JSON model config"),
        (
            vec![
                "eval".into(),
                "--checkpoint".into(),
                checkpoint.clone(),
                "--data".into(),
                "synthetic".into(),
            ],
            "model's 2",
        ),
        (
            forward(&["--weights", &w, "--input", &i, "--train-steps", "2", "--lr", "-1"]),
            "lr (--lr) -1",
        ),
        (
            forward(&["--weights", &w, "--input", &i, "--train-steps", "2", "--lr", "nan"]),
            "lr (--lr) NaN",
        ),
        (forward(&["--weights", &w, "--input", &w]), "no tensor named `input`"),
        (
            vec!["train".into(), "--warmup".into(), "nan".into(), "--out".into(), s(&dir.join("x"))],
            "--warmup",
        ),
        (
            vec!["train".into(), "--crop-scale".into(), "0".into(), "--out".into(), s(&dir.join("x"))],
            "--crop-scale",
        ),
    ];
    for (args, expected) in cases {
        let run = nfnet().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}:\n{stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{stderr}");
        assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{args:?}: platform noise:\n{stderr}");
    }
    assert!(!out.exists() && !dir.join("x").exists(), "a failed command wrote its output");
    std::fs::remove_dir_all(dir).ok();
}
