//! Data-parallel training on ranks that are threads ([`LocalGroup`]): the same sums as one
//! device, resumable across rank counts, and an error, not a hang, when a rank stops. The MPI
//! transport runs the same code between processes (`mpi` below, with the `mpi` feature).

use crate::support::gpu_or_skip;
use crate::train::{options, scratch, small_data};
use nfnet::gpu::Gpu;
use nfnet::ops::selfcheck::errors;
use nfnet::train::collective::{check_same_everywhere, mean_over_ranks, Collective};
use nfnet::train::{checkpoint, Event, FitEnd, LocalGroup, TrainOptions, TrainOverrides, Trainer};
use nfnet::{Error, Tuner};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Bits = Vec<(String, Vec<u32>)>;

fn bits(gpu: &Gpu, trainer: &Trainer) -> Bits {
    (trainer.state_tensors().iter())
        .map(|(n, t)| (n.clone(), t.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// The model's weights: not the momentum or moving averages, whose sums are other sums.
fn is_weight(name: &str) -> bool {
    !name.starts_with("momentum.") && !name.starts_with("ema.")
}

fn assert_bitwise(got: &Bits, want: &Bits, what: &str) {
    assert_eq!(got.len(), want.len());
    for ((name, a), (_, b)) in got.iter().zip(want) {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{what}: {name}: {differ} of {} values differ", a.len());
    }
}

/// Runs `ranks` trainers on threads sharing `gpu`, each made by `start` with its group handle,
/// fitting into `out`; returns every rank's end and state bits.
fn on_ranks<'g>(
    gpu: &'g Gpu,
    ranks: usize,
    out: &Path,
    start: impl Fn(Box<dyn Collective>) -> nfnet::Result<Trainer<'g>> + Sync,
    interrupt_at: Option<u64>,
) -> Vec<nfnet::Result<(FitEnd, Bits)>> {
    let data = small_data();
    std::thread::scope(|s| {
        let handles: Vec<_> = LocalGroup::new(ranks)
            .into_iter()
            .map(|group| {
                let (start, data) = (&start, &data);
                s.spawn(move || {
                    let rank = group.rank();
                    let mut trainer = start(Box::new(group))?;
                    // Only rank 0 is told to stop: every rank must stop at the same step.
                    let flag = Arc::new(AtomicBool::new(false));
                    trainer.set_interrupt(flag.clone());
                    let end = trainer.fit(data, out, &mut |e| {
                        if let Event::Step { step, .. } = e {
                            if rank == 0 && Some(step) == interrupt_at {
                                flag.store(true, Ordering::SeqCst);
                            }
                        }
                    })?;
                    Ok((end, bits(gpu, &trainer)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two ranks of one micro-batch split each step as one device with two micro-batches does (the
/// same passes, images, CutMix, dropout and drop-path draws), and the mean over the ranks,
/// (g0 + g1) / 2, is bitwise the device's 0.5 g0 + 0.5 g1: so the runs are bitwise equal,
/// straight and interrupted, resumed on the other count of ranks either way.
#[test]
fn two_ranks_train_bitwise_as_one_device_and_resume_across_rank_counts() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (data, dir, tuner) = (small_data(), scratch("data-parallel"), Tuner::off());
    let two_ranks = TrainOptions {
        micro_batches: 1,
        ..options()
    };
    let mut device = Trainer::new(gpu, &tuner, options(), &data).unwrap();
    device.fit(&data, &dir.join("device"), &mut |_| {}).unwrap();
    let want = bits(gpu, &device);
    let steps = device.state.step;
    drop(device);

    // Buckets of 16 KiB: the gradients leave in dozens of pieces as the backward pass goes.
    let new = |g| {
        let mut trainer = Trainer::new_in(gpu, &tuner, two_ranks.clone(), &data, g)?;
        trainer.set_bucket_bytes(16 << 10)?;
        Ok(trainer)
    };
    for (rank, r) in on_ranks(gpu, 2, &dir.join("ranks"), new, None).into_iter().enumerate() {
        let (end, got) = r.unwrap();
        assert_eq!(end, FitEnd::Finished);
        assert_bitwise(&got, &want, &format!("rank {rank} of 2 against one device"));
    }
    assert!(dir.join("ranks/last.safetensors").exists() && dir.join("ranks/metrics.csv").exists());
    let csv = |run: &str| std::fs::read_to_string(dir.join(run).join("metrics.csv")).unwrap();
    let column = |s: String, c: usize| s.lines().map(|l| l.split(',').nth(c).unwrap().to_string()).collect::<Vec<_>>();
    // The sharded evaluation's top-1 column (counts added over the ranks) is one device's.
    let header = csv("device").lines().next().unwrap().to_string();
    let top1 = header.split(',').position(|h| h.contains("top1")).expect("a top-1 column");
    assert_eq!(column(csv("ranks"), top1), column(csv("device"), top1));

    // Two ranks stopped (rank 0 asked during step 2; they agree on it in step 3's exchange),
    // resumed on one device.
    let split = dir.join("two-then-one");
    for r in on_ranks(gpu, 2, &split, new, Some(2)) {
        assert!(matches!(r.unwrap().0, FitEnd::Interrupted(_)), "every rank stops when rank 0 does");
    }
    let saved = checkpoint::read(&split.join("last.safetensors")).unwrap();
    assert_eq!(saved.state.step, 3);
    // Two micro-batches on one device: the same passes as the two ranks'.
    let overrides = TrainOverrides {
        micro_batches: Some(2),
        ..Default::default()
    };
    let mut one = Trainer::resume(gpu, &tuner, &saved, &overrides, &data).unwrap();
    one.fit(&data, &split, &mut |_| {}).unwrap();
    assert_eq!(one.state.step, steps);
    assert_bitwise(&bits(gpu, &one), &want, "2 ranks, then resumed on one device");
    drop(one);

    // One device stopped at step 3, resumed on two ranks.
    let split = dir.join("one-then-two");
    let mut first = Trainer::new(gpu, &tuner, options(), &data).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    first.set_interrupt(flag.clone());
    first
        .fit(&data, &split, &mut |e| {
            if let Event::Step { step: 3, .. } = e {
                flag.store(true, Ordering::SeqCst)
            }
        })
        .unwrap();
    drop(first);
    let saved = checkpoint::read(&split.join("last.safetensors")).unwrap();
    let overrides = TrainOverrides {
        micro_batches: Some(1),
        ..Default::default()
    };
    let resume = |g| Trainer::resume_in(gpu, &tuner, &saved, &overrides, &data, g);
    for (rank, r) in on_ranks(gpu, 2, &split, resume, None).into_iter().enumerate() {
        assert_bitwise(&r.unwrap().1, &want, &format!("one device, then resumed on 2 ranks (rank {rank})"));
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Split over two ranks, a batch is one device's batch up to the order of the sums (no CutMix:
/// it mixes within a pass); and two runs on two ranks are bitwise equal.
#[test]
fn two_ranks_agree_with_one_device_of_the_whole_batch_and_with_themselves() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (data, dir, tuner) = (small_data(), scratch("data-parallel-whole"), Tuner::off());
    let mut whole = TrainOptions {
        micro_batches: 1,
        epochs: 1,
        ..options()
    };
    whole.augment.cutmix = 0.0;
    let mut device = Trainer::new(gpu, &tuner, whole.clone(), &data).unwrap();
    device.fit(&data, &dir.join("device"), &mut |_| {}).unwrap();
    let want = bits(gpu, &device);
    drop(device);
    let new = |g| Trainer::new_in(gpu, &tuner, whole.clone(), &data, g);
    let first: Vec<Bits> = (on_ranks(gpu, 2, &dir.join("a"), new, None).into_iter())
        .map(|r| r.unwrap().1)
        .collect();
    let again: Vec<Bits> = (on_ranks(gpu, 2, &dir.join("b"), new, None).into_iter())
        .map(|r| r.unwrap().1)
        .collect();
    assert_bitwise(&first[1], &first[0], "rank 1 against rank 0");
    assert_bitwise(&again[0], &first[0], "a second run on 2 ranks");
    // How far each weight tensor moves when one device trains from weights one ulp off. Where
    // a tensor's values are sums that cancel (a zero-initialized bias behind a skipinit gain
    // still near 0 ends at ~1e-11), no two orders of the sums agree to 1e-5, and the ranks are
    // held to that tensor's own sensitivity instead.
    let mut nudged = Trainer::new(gpu, &tuner, whole.clone(), &data).unwrap();
    for (name, t) in nudged.state_tensors().iter().filter(|(name, _)| is_weight(name)) {
        let one_off: Vec<f32> = t.read_f32(gpu).unwrap().iter().map(|v| f32::from_bits(v.to_bits() + 1)).collect();
        t.write_f32(gpu, &one_off).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    nudged.fit(&data, &dir.join("nudged"), &mut |_| {}).unwrap();
    let moved = bits(gpu, &nudged);
    drop(nudged);
    let as_f32 = |b: &[u32]| b.iter().map(|&v| f32::from_bits(v)).collect::<Vec<_>>();
    let rel_l2 = |got: &[u32], want: &[u32]| errors(&as_f32(got), as_f32(want).iter().map(|&v| v as f64)).rel_l2;
    let weights = first[0].iter().zip(&want).zip(&moved).filter(|(((name, _), _), _)| is_weight(name));
    for (((name, got), (_, want)), (_, moved)) in weights {
        let (err, sensitivity) = (rel_l2(got, want), rel_l2(moved, want));
        assert!(
            err <= sensitivity.max(1e-5),
            "{name}: relative L2 {err:.2e} against one device (one ulp off moves it by {sensitivity:.2e})"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Bad splits are typed errors before any work; weights that differ between ranks are an error
/// naming the rank; a rank that stops makes the others' next exchange an error naming it.
#[test]
fn a_batch_that_does_not_split_and_a_rank_that_leaves_are_errors() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (data, tuner) = (small_data(), Tuner::off());
    let odd = TrainOptions {
        batch_size: 6,
        micro_batches: 2,
        ..options()
    };
    let mut group = LocalGroup::new(2).into_iter();
    let err = Trainer::new_in(gpu, &tuner, odd, &data, Box::new(group.next().unwrap()))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("--batch-size 6 does not split into 2 ranks x 2 micro-batches"),
        "{err}"
    );

    // Weights that differ on rank 1: both ranks stop with an error naming it.
    let errors: Vec<_> = std::thread::scope(|s| {
        let ranks: Vec<_> = (LocalGroup::new(2).into_iter())
            .map(|g| s.spawn(move || check_same_everywhere(&g, "the weights", 7 + g.rank() as u64)))
            .collect();
        ranks.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in errors {
        match e {
            Err(Error::Rank { rank: 1, message }) => assert!(message.contains("the weights differ from rank 0's"), "{message}"),
            other => panic!("expected rank 1 named as differing, got {other:?}"),
        }
    }

    let mut group = LocalGroup::new(3);
    let (third, second) = (group.pop().unwrap(), group.pop().unwrap());
    drop(third);
    let mut x = vec![1.0f32; 10];
    match mean_over_ranks(&second, &mut x) {
        Err(Error::Rank { rank: 2, .. }) => {}
        other => panic!("expected rank 2 named as gone, got {other:?}"),
    }
}

/// The mean over 3 ranks is ((x0 + x1) + x2) / 3 on every rank, bitwise, for lengths that do not
/// split evenly over the ranks (no GPU).
#[test]
fn the_mean_over_ranks_sums_in_rank_order_on_every_rank() {
    let (mut rng, seed) = crate::support::rng("mean_over_ranks");
    let len = 1001;
    // Magnitudes far apart, so that another order of the sum rounds differently.
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|r| {
            (crate::support::normal(&mut rng, len, 1.0).iter())
                .map(|v| (*v * 10f64.powi(4 * r)) as f32)
                .collect()
        })
        .collect();
    let want: Vec<u32> = (0..len)
        .map(|i| (((inputs[0][i] + inputs[1][i]) + inputs[2][i]) / 3.0).to_bits())
        .collect();
    let reordered = (0..len)
        .filter(|&i| ((inputs[2][i] + inputs[1][i]) + inputs[0][i]) / 3.0 != f32::from_bits(want[i]))
        .count();
    assert!(reordered > 0, "the inputs must tell the orders apart (seed {seed})");
    let got: Vec<Vec<f32>> = std::thread::scope(|s| {
        let ranks: Vec<_> = (LocalGroup::new(3).into_iter())
            .map(|g| {
                let mut x = inputs[g.rank()].clone();
                s.spawn(move || {
                    mean_over_ranks(&g, &mut x).unwrap();
                    x
                })
            })
            .collect();
        ranks.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, x) in got.iter().enumerate() {
        let differ = x.iter().zip(&want).filter(|(a, b)| a.to_bits() != **b).count();
        assert_eq!(
            differ, 0,
            "rank {rank}: {differ} of {len} values are not the rank-order mean (seed {seed})"
        );
    }
}

/// In a data-parallel plan each gradient's sum is written as soon as the backward pass has made
/// it, the last layers' first: the head's bucket can leave while most of the backward pass is
/// still to run.
#[test]
fn a_data_parallel_plan_completes_the_last_layers_sums_first() {
    let Some(gpu) = gpu_or_skip() else { return };
    let config = nfnet::ModelConfig::builtin("nano").unwrap();
    let setup = nfnet::model::recipe::TrainingSetup {
        data_parallel: true,
        ..nfnet::model::recipe::TrainingSetup::new(4, (32, 32))
    };
    let store = nfnet::model::recipe::param_store(gpu, &config).unwrap();
    let train = nfnet::model::recipe::TrainingPlan::new(gpu, &Tuner::off(), &config, &setup, &store).unwrap();
    let plan = train.plan();
    let at = |name: &str| plan.written_after(&[name]).unwrap_or_else(|| panic!("the step writes no {name}"));
    let (head, stem, update) = (at("accum.head.fc.weight"), at("accum.stem.conv1.weight"), plan.update_from());
    assert!(
        head < stem && stem <= update,
        "head's sum at launch {head}, stem's at {stem}, update from {update}"
    );
    assert!(
        head < update / 2,
        "the head's sum waits until launch {head} of {update}: the backward pass is not half done"
    );
}

/// A build without the `mpi` feature started as one of several ranks refuses to train: each
/// rank would train alone, into the same folder.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_a_launch_of_several_ranks() {
    let out = crate::train::nfnet()
        .args(["train", "--data", "synthetic:64:16", "--epochs", "1", "--out"])
        .arg(scratch("no-mpi").join("run"))
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("built without the `mpi` feature"), "{stderr}");
}
