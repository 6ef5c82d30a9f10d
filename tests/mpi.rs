//! `nfnet train` under `mpirun -np 2` (the `mpi` feature; OpenMPI here): the single-process
//! result, bitwise repeatable, resumable across rank counts, and a failed or killed rank ends the
//! job with an error naming it.

use crate::support::gpu_or_skip;
use crate::train::{nfnet, scratch};
use nfnet::io::HostTensor;
use nfnet::ops::selfcheck::errors;
use nfnet::train::checkpoint;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `mpirun` starting `ranks` copies of `nfnet train args` (untuned, as [`nfnet`] is).
fn mpirun(ranks: usize, args: &[String]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", &ranks.to_string()])
        .arg(env!("CARGO_BIN_EXE_nfnet"))
        .arg("train")
        .args(args)
        .env("NFNET_AUTOTUNE", "0");
    cmd
}

/// `nfnet train args` in one process, or on `ranks` under `mpirun`; its stderr. Fails the test
/// with that stderr when the run fails.
fn train_on(ranks: usize, args: &[String]) -> String {
    let mut cmd = match ranks {
        1 => nfnet(),
        n => mpirun(n, args),
    };
    if ranks == 1 {
        cmd.arg("train").args(args);
    }
    let out: Output = cmd.output().expect("mpirun or nfnet starts");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    stderr
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn tensors(run: &Path) -> BTreeMap<String, HostTensor> {
    checkpoint::read(&run.join("last.safetensors")).unwrap().tensors
}

/// The largest relative L2 difference of the weights (not the momentum) of two runs.
fn worst_weight_error(a: &Path, b: &Path) -> (f64, String) {
    let (a, b) = (tensors(a), tensors(b));
    let mut worst = (0.0, String::new());
    for (name, x) in a.iter().filter(|(n, _)| !n.starts_with("momentum.") && !n.starts_with("ema.")) {
        let (x, y) = (x.as_f32(name).unwrap(), b[name].as_f32(name).unwrap());
        let err = errors(x, y.iter().map(|&q| q as f64)).rel_l2;
        if !(err <= worst.0) {
            worst = (err, name.clone());
        }
    }
    worst
}

fn assert_bitwise(a: &Path, b: &Path, what: &str) {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: other tensors");
    for (name, x) in &a {
        let (x, y) = (x.as_f32(name).unwrap(), b[name].as_f32(name).unwrap());
        let differ = x.iter().zip(y).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
        assert_eq!(differ, 0, "{what}: {name}: {differ} of {} values differ", x.len());
    }
}

/// The acceptance run: 20 steps of the nano model on 2 ranks against one process.
#[test]
fn two_ranks_match_one_process_and_repeat_bitwise() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("mpi");
    let (one, two, again) = (dir.join("one"), dir.join("two"), dir.join("again"));
    for (ranks, out) in [(1, &one), (2, &two), (2, &again)] {
        let out = out.display().to_string();
        let args = [
            "--data",
            "synthetic:640:100",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--seed",
            "0",
            "--out",
            &out,
        ];
        let stderr = train_on(ranks, &strings(&args));
        if ranks == 2 {
            assert!(stderr.contains("2 ranks x 1 passes of 16"), "{stderr}");
            assert_eq!(stderr.matches("epoch   1:").count(), 1, "rank 0 alone reports:\n{stderr}");
        }
    }
    assert_bitwise(&two, &again, "two runs on 2 ranks");
    let (err, name) = worst_weight_error(&two, &one);
    eprintln!("2 ranks against 1 process after 20 steps: worst weight relative L2 {err:.2e} ({name})");
    assert!(err <= 1e-5, "2 ranks against 1 process: {name} relative L2 {err:.2e}");
    std::fs::remove_dir_all(dir).ok();
}

/// One process with two micro-batches makes the passes two ranks make, and its gradient mean is
/// theirs bitwise: so a run moved from 2 ranks to 1 process, or back, ends bitwise where a run
/// on one process ends.
#[test]
fn a_run_resumes_from_two_ranks_on_one_process_and_back() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("mpi-resume");
    let first = |out: &Path, accum: &str| {
        let out = out.display().to_string();
        strings(&[
            "--data",
            "synthetic:320:50",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--seed",
            "3",
            "--accum",
            accum,
            "--out",
            &out,
        ])
    };
    let resume = |out: &Path, accum: &str| {
        let ckpt = out.join("last.safetensors").display().to_string();
        strings(&["--resume", &ckpt, "--epochs", "2", "--accum", accum])
    };
    let (one, two_one, one_two) = (dir.join("one"), dir.join("two-one"), dir.join("one-two"));
    train_on(1, &first(&one, "2"));
    train_on(1, &resume(&one, "2"));
    train_on(2, &first(&two_one, "1"));
    train_on(1, &resume(&two_one, "2"));
    train_on(1, &first(&one_two, "2"));
    train_on(2, &resume(&one_two, "1"));
    assert_bitwise(&two_one, &one, "2 ranks, then 1 process");
    assert_bitwise(&one_two, &one, "1 process, then 2 ranks");
    std::fs::remove_dir_all(dir).ok();
}
/// A rank that cannot start (no such adapter) or is killed ends every rank within seconds, with
/// an error naming it; a killed run leaves rank 0's last checkpoint as it was.
#[test]
fn a_failed_or_killed_rank_ends_the_job_naming_it() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = scratch("mpi-faults");
    let out = dir.join("run");
    let out_s = out.display().to_string();
    let args = ["--data", "synthetic:640:100", "--batch-size", "32", "--out", &out_s];
    let bin = env!("CARGO_BIN_EXE_nfnet");

    // Rank 1 asks for an adapter that does not exist.
    let started = Instant::now();
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", "1", bin, "train"])
        .args(args)
        .args([":", "-np", "1", "env", "NFNET_ADAPTER=no-such-adapter", bin, "train"])
        .args(args)
        .env("NFNET_AUTOTUNE", "0");
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the job must fail:\n{stderr}");
    assert!(
        stderr.contains("error: rank 1 of 2: no adapter matches \"no-such-adapter\""),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the job took {:?} to end",
        started.elapsed()
    );

    // One epoch, then a longer run from it whose rank 1 is killed after a few seconds.
    train_on(2, &strings(&[&args[..], &["--epochs", "1"]].concat()));
    let saved = std::fs::read(out.join("last.safetensors")).unwrap();
    let ckpt = out.join("last.safetensors").display().to_string();
    let started = Instant::now();
    let script =
        format!("if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (sleep 6; kill -9 $$) & fi; exec {bin} train --resume {ckpt} --epochs 20");
    let output = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2", "sh", "-c", &script])
        .env("NFNET_AUTOTUNE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the job must fail:\n{stderr}");
    assert!(stderr.contains("rank 1"), "mpirun names the killed rank:\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the job took {:?} to end",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read(out.join("last.safetensors")).unwrap(),
        saved,
        "the last checkpoint changed"
    );
    checkpoint::read(&out.join("last.safetensors")).unwrap();
    std::fs::remove_dir_all(dir).ok();
}
