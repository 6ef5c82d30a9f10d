//! The convolution beyond its reference (checked in `tests/ops.rs`): every register tile the
//! tuner may pick and both storages (storage buffers, and texels read by the `_textured`
//! kernels) give bitwise the default's output; the paired weight packing gives bitwise the two
//! packings; the activations folded into the texel packing give the values of their own
//! kernels; and the tuner keeps results bitwise, caches its choices and keeps to its budget.

use crate::support::{conv_cases, gpu_or_skip, normal, poisoned, rng, upload};
use nfnet::gpu::{Gpu, GpuTensor};
use nfnet::ops::grouped_conv::{self, standalone, tiles, Conv2d, Packing, Pass, Prologue, Share, Storage, Tile};
use nfnet::ops::scaled_act::{self, Activation, ScaledAct};
use nfnet::tune::{ProgressHook, TuneProgress, TuneStage, DEFAULT_BUDGET};
use nfnet::{TuneOptions, Tuner};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn bits(gpu: &Gpu, t: &GpuTensor) -> Vec<u32> {
    t.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect()
}

/// `w` packed in `packing`'s layout into a new tensor in `storage`.
fn packed(gpu: &Gpu, s: &Conv2d, w: &GpuTensor, packing: Packing, storage: Storage) -> GpuTensor {
    let t = storage.tensor(gpu, "packed", &[grouped_conv::packed_len(s, packing)]).unwrap();
    gpu.run(&[&grouped_conv::pack_weight(gpu, s, w, &t, packing).unwrap()]).unwrap();
    t
}

/// The register tiles the tuner may pick, of the buffer kernels and of the `_textured` kernels
/// (activations packed by the caller or by the launch), give bitwise the default buffer
/// kernel's output: tiles and storage change which invocation computes what, never the order
/// of a sum. The default itself is checked against the reference in `tests/ops.rs`. Each case
/// runs every kernel's default tile and two others, in turn, so that the cases together cover
/// every candidate without compiling each one for every case, and every tile of the kernels
/// that share loads: the workgroup ones, and the 1x1 subgroup ones (on Vulkan in CI, where
/// lavapipe has subgroups, they must run).
#[test]
fn grouped_conv_tiles_and_textured_kernels_agree_bitwise() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("grouped_conv_tiles");
    let some = |tiles: Vec<Tile>, i: usize| {
        let others = (2 * i..2 * i + 2).filter_map(|j| tiles.get(1 + j % (tiles.len() - 1).max(1)).copied());
        let mut some = vec![tiles[0]];
        some.extend(others.filter(|t| *t != tiles[0]));
        some.dedup();
        some
    };
    // Some of the tiles of the kernels that each lane runs alone, and every tile of the kernels
    // that share loads (the subgroup ones where the adapter runs them).
    let some_and_shared = |tiles: Vec<Tile>, i: usize| {
        let (shared, alone): (Vec<Tile>, Vec<Tile>) = tiles.into_iter().partition(|t| t.share != Share::Lane);
        let mut some = some(alone, i);
        some.extend(shared.into_iter().filter(|t| t.share != Share::Subgroup || gpu.shares_subgroups()));
        some
    };
    if std::env::var_os("CI").is_some() && gpu.info.backend == wgpu::Backend::Vulkan {
        assert!(
            gpu.shares_subgroups(),
            "lavapipe over Vulkan has subgroups of 8: {}",
            gpu.describe()
        );
    }
    for (i, case) in conv_cases().into_iter().enumerate() {
        let s = case.spec;
        let x = upload(gpu, "x", &s.x_shape(), &normal(&mut rng, s.x_shape().iter().product(), 1.0));
        let w = upload(gpu, "w", &s.w_shape(), &normal(&mut rng, s.w_shape().iter().product(), 0.3));
        let b = s.bias.then(|| upload(gpu, "b", &[s.k], &normal(&mut rng, s.k, 1.0)));
        let dy = upload(gpu, "dy", &s.y_shape(), &normal(&mut rng, s.y_shape().iter().product(), 1.0));
        let texels = |t: &GpuTensor| {
            let mut launch = nfnet::gpu::Launch::new();
            let texels = standalone::texels(gpu, s.groups, t, &mut launch).unwrap();
            gpu.run(&[&launch]).unwrap();
            texels
        };
        let (x_texels, dy_texels) = (texels(&x), texels(&dy));
        let old_dx = normal(&mut rng, s.x_shape().iter().product(), 1.0);
        let mut reference: [Option<Vec<u32>>; 5] = [None, None, None, None, None];
        let mut agree = |pass: usize, what: String, got: Vec<u32>| match &reference[pass] {
            None => reference[pass] = Some(got),
            Some(want) => {
                let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                assert_eq!(
                    differ, 0,
                    "{} {what} ({seed}): {differ} elements differ from the default",
                    case.name
                );
            }
        };
        for storage in [Storage::Buffer, Storage::Texture] {
            let (out, inp) = (
                packed(gpu, &s, &w, Packing::OutputInner, storage),
                packed(gpu, &s, &w, Packing::InputInner, storage),
            );
            // The textured forward reads x packed by the caller, the textured input gradient
            // packs its buffer dy itself.
            let x_in = if storage == Storage::Texture { &x_texels } else { &x };
            for tile in some_and_shared(tiles(Pass::Forward, &s, storage), i) {
                let y = poisoned(gpu, "y", &s.y_shape());
                gpu.run(&[&grouped_conv::forward(gpu, &s, x_in, &out, b.as_ref(), &y, tile).unwrap()])
                    .unwrap();
                agree(0, format!("forward {tile} {storage}"), bits(gpu, &y));
            }
            for tile in some_and_shared(tiles(Pass::BackwardInput, &s, storage), i) {
                let dx = poisoned(gpu, "dx", &s.x_shape());
                gpu.run(&[&grouped_conv::backward_input(gpu, &s, &dy, &inp, &dx, false, tile).unwrap()])
                    .unwrap();
                agree(1, format!("backward_input {tile} {storage}"), bits(gpu, &dx));
            }
            let dx = upload(gpu, "dx accumulated", &s.x_shape(), &old_dx);
            let dy_in = if storage == Storage::Texture { &dy_texels } else { &dy };
            let tile = tiles(Pass::BackwardInput, &s, storage)[0];
            gpu.run(&[&grouped_conv::backward_input(gpu, &s, dy_in, &inp, &dx, true, tile).unwrap()])
                .unwrap();
            agree(2, format!("backward_input accumulate {storage}"), bits(gpu, &dx));
            // The textured weight gradient with x packed by the caller and dy by the launch.
            for tile in some_and_shared(tiles(Pass::BackwardWeight, &s, storage), i) {
                let (dw, db) = (poisoned(gpu, "dw", &s.w_shape()), poisoned(gpu, "db", &[s.k]));
                let part = grouped_conv::partials_shape(&gpu.limits, &s).map(|shape| GpuTensor::zeros(gpu, "partials", &shape).unwrap());
                let launch = grouped_conv::backward_weight(gpu, &s, x_in, &dy, &dw, s.bias.then_some(&db), part.as_ref(), tile).unwrap();
                gpu.run(&[&launch]).unwrap();
                agree(3, format!("backward_weight {tile} {storage}"), bits(gpu, &dw));
                if s.bias {
                    agree(4, format!("backward_bias {tile} {storage}"), bits(gpu, &db));
                }
            }
        }
    }
}

/// Both packings in one pass give bitwise the two packings, padding included, in buffers and
/// in textures (every conv case: odd channel counts, groups, 1x1 and 3x3).
#[test]
fn grouped_conv_pack_weight_pair_matches_two_packings() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("pack_weight_pair");
    for case in conv_cases() {
        let s = case.spec;
        let w = upload(gpu, "w", &s.w_shape(), &normal(&mut rng, s.w_shape().iter().product(), 1.0));
        for storage in [Storage::Buffer, Storage::Texture] {
            let out = |packing| {
                let len = [grouped_conv::packed_len(&s, packing)];
                match storage {
                    Storage::Texture => GpuTensor::texture(gpu, "packed", &len).unwrap(),
                    Storage::Buffer => poisoned(gpu, "packed", &len),
                }
            };
            let (oi, ii, oi_pair, ii_pair) = (
                out(Packing::OutputInner),
                out(Packing::InputInner),
                out(Packing::OutputInner),
                out(Packing::InputInner),
            );
            let launches = [
                grouped_conv::pack_weight(gpu, &s, &w, &oi, Packing::OutputInner).unwrap(),
                grouped_conv::pack_weight(gpu, &s, &w, &ii, Packing::InputInner).unwrap(),
                grouped_conv::pack_weight_pair(gpu, &s, &w, &oi_pair, &ii_pair).unwrap(),
            ];
            gpu.run(&launches.iter().collect::<Vec<_>>()).unwrap();
            for (what, a, b) in [("output-inner", &oi, &oi_pair), ("input-inner", &ii, &ii_pair)] {
                let (want, got) = (bits(gpu, a), bits(gpu, b));
                let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{} {what} {storage} ({seed}): {differ} floats differ", case.name);
            }
        }
    }
    // Mixed storage is refused.
    let s = conv_cases()[0].spec;
    let w = upload(gpu, "w", &s.w_shape(), &normal(&mut rng, s.w_shape().iter().product(), 1.0));
    let oi = GpuTensor::zeros(gpu, "oi", &[grouped_conv::packed_len(&s, Packing::OutputInner)]).unwrap();
    let ii = GpuTensor::texture(gpu, "ii", &[grouped_conv::packed_len(&s, Packing::InputInner)]).unwrap();
    assert!(grouped_conv::pack_weight_pair(gpu, &s, &w, &oi, &ii).is_err());
}

/// The conv packing's prologues: packing x with the activation applied gives exactly the
/// texels of the activation's output, and packing dy with its backward applied the texels of
/// the activation's input gradient (odd group width: 5 channels, 2 texels).
#[test]
fn pack_activation_prologues_match_two_passes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("pack_activation");
    let (shape, groups) = ([2, 10, 5, 7], 2);
    let texel_shape = grouped_conv::packed_activation_shape(shape, groups);
    let numel = shape.iter().product();
    for act in Activation::ALL {
        let spec = ScaledAct {
            act,
            gamma: act.nfnet_gamma(),
        };
        let (x, dy) = (
            upload(gpu, "x", &shape, &normal(&mut rng, numel, 3.0)),
            upload(gpu, "dy", &shape, &normal(&mut rng, numel, 1.0)),
        );
        let (a, dx) = (poisoned(gpu, "a", &shape), poisoned(gpu, "dx", &shape));
        let texels = |label: &str| GpuTensor::texture(gpu, label, &texel_shape).unwrap();
        let (fused, two_pass, fused_grad, two_pass_grad) = (texels("a fused"), texels("a"), texels("dx fused"), texels("dx"));
        let launches = [
            grouped_conv::pack_activation(gpu, groups, &x, Prologue::Act(spec), None, &fused).unwrap(),
            scaled_act::forward(gpu, &spec, &x, &a).unwrap(),
            grouped_conv::pack_activation(gpu, groups, &a, Prologue::None, None, &two_pass).unwrap(),
            grouped_conv::pack_activation(gpu, groups, &dy, Prologue::ActBackward(spec), Some(&x), &fused_grad).unwrap(),
            scaled_act::backward(gpu, &spec, &x, &dy, &dx, false).unwrap(),
            grouped_conv::pack_activation(gpu, groups, &dx, Prologue::None, None, &two_pass_grad).unwrap(),
        ];
        gpu.run(&launches.iter().collect::<Vec<_>>()).unwrap();
        // Equal as floats: a derivative that underflows to zero may carry either sign of zero
        // as the compiler folds it in one kernel or the other (the value is the same).
        for (what, got, want) in [("forward", &fused, &two_pass), ("backward", &fused_grad, &two_pass_grad)] {
            let (got, want) = (got.read_f32(gpu).unwrap(), want.read_f32(gpu).unwrap());
            let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ, 0,
                "{act:?} ({seed}): packing {what} prologue: {differ} texel floats differ from two passes"
            );
        }
    }
}

/// The tuner times the conv storage and a conv's tiles, keeps the result bitwise equal to the
/// untuned kernel's, records its choices and caches them on disk, where a second tuner finds
/// them; with its budget spent it keeps the defaults.
#[test]
fn autotuned_conv_agrees_with_default_and_is_cached() {
    let Some(gpu) = gpu_or_skip() else { return };
    let dir = std::env::temp_dir().join(format!("nfnet-autotune-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // No bound on time: on a loaded machine the default budget could leave a choice partial.
    let options = TuneOptions {
        cache_dir: Some(dir.clone()),
        budget: None,
        ..TuneOptions::default()
    };
    let tuner = Tuner::new(options.clone());
    let (mut rng, seed) = rng("autotune");
    let s = Conv2d::symmetric([2, 64, 7, 9], 64, 3, 1).groups(2).with_bias(true);
    let x = upload(gpu, "x", &s.x_shape(), &normal(&mut rng, s.x_shape().iter().product(), 1.0));
    let w = upload(gpu, "w", &s.w_shape(), &normal(&mut rng, s.w_shape().iter().product(), 0.1));
    let b = upload(gpu, "b", &[s.k], &normal(&mut rng, s.k, 1.0));
    let run = |storage: Storage, tile: Tile| {
        let y = poisoned(gpu, "y", &s.y_shape());
        let packed = packed(gpu, &s, &w, Packing::OutputInner, storage);
        gpu.run(&[&grouped_conv::forward(gpu, &s, &x, &packed, Some(&b), &y, tile).unwrap()])
            .unwrap();
        bits(gpu, &y)
    };
    let storage = tuner.conv_storage(gpu);
    let tile = tuner.conv_tile(gpu, Pass::Forward, &s, storage);
    let default = run(Storage::Buffer, tiles(Pass::Forward, &s, Storage::Buffer)[0]);
    assert_eq!(run(storage, tile), default, "tuned and default forward differ ({seed})");
    let choices = tuner.choices();
    let timed = |name: &str| choices.iter().any(|c| c.name.starts_with(name) && c.source == "timed");
    assert!(
        timed("conv_storage") && timed("grouped_conv_forward"),
        "choices not timed: {choices:?}"
    );
    let cache = std::fs::read_to_string(dir.join("autotune.json")).expect("the tuner writes its cache");
    assert!(
        cache.contains("grouped_conv_forward"),
        "cache without the forward's choice: {cache}"
    );
    // A second tuner reads the choices from the cache instead of timing them.
    let again = Tuner::new(options);
    assert_eq!(
        (again.conv_storage(gpu), again.conv_tile(gpu, Pass::Forward, &s, storage)),
        (storage, tile)
    );
    assert!(again.choices().iter().all(|c| c.source == "cached"), "{:?}", again.choices());
    // Out of budget, every choice is the default.
    let spent = Tuner::new(TuneOptions {
        budget: Some(Duration::ZERO),
        cache_dir: None,
        ..TuneOptions::default()
    });
    assert_eq!(spent.conv_storage(gpu), Storage::untuned(gpu));
    assert_eq!(
        spent.conv_tile(gpu, Pass::Forward, &s, Storage::Buffer),
        tiles(Pass::Forward, &s, Storage::Buffer)[0]
    );
    assert!(spent.choices().iter().all(|c| c.source == "default"), "{:?}", spent.choices());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The budget bounds tuning inside a choice too: with a budget shorter than one measurement,
/// the first choice measures its default and stops there (the default wins, `partial`), every
/// later choice is the default untimed and not cached, and the progress hook hears the
/// candidate being timed and then, once, that the budget is spent. The choice that alone took
/// the budget is marked in the cache, timed again by the next tuner, and kept when it takes the
/// budget again.
#[test]
fn tuner_stops_at_its_budget_and_reports_progress() {
    let Some(gpu) = gpu_or_skip() else { return };
    assert_eq!(TuneOptions::default().budget, Some(DEFAULT_BUDGET));
    assert_eq!(DEFAULT_BUDGET, Duration::from_secs(30));
    let dir = std::env::temp_dir().join(format!("nfnet-autotune-budget-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let heard: Arc<Mutex<Vec<TuneProgress>>> = Arc::default();
    let log = heard.clone();
    let budget = Duration::from_micros(1);
    let tuner = Tuner::new(TuneOptions {
        cache_dir: Some(dir.clone()),
        // Less than any measurement: the first choice starts (nothing spent yet) and stops
        // after its default.
        budget: Some(budget),
        progress: Some(ProgressHook::new(move |p| log.lock().unwrap().push(p.clone()))),
        ..TuneOptions::default()
    });
    let s = Conv2d::symmetric([2, 64, 7, 9], 64, 3, 1).groups(2);
    assert!(tiles(Pass::Forward, &s, Storage::Buffer).len() > 1, "a choice to make");
    assert_eq!(tuner.conv_storage(gpu), Storage::untuned(gpu));
    assert_eq!(
        tuner.conv_tile(gpu, Pass::Forward, &s, Storage::Buffer),
        tiles(Pass::Forward, &s, Storage::Buffer)[0]
    );
    let choices = tuner.choices();
    let sources: Vec<&str> = choices.iter().map(|c| c.source.as_str()).collect();
    assert_eq!(sources, ["partial", "default"], "{choices:?}");
    assert_eq!(choices[0].timings_ms.len(), 1, "only the default measured: {choices:?}");
    let cache = || std::fs::read_to_string(dir.join("autotune.json")).unwrap_or_default();
    let marked = cache();
    assert!(
        marked.contains(&format!("\"conv_storage\": \"{} (partial)\"", Storage::untuned(gpu))) && !marked.contains("grouped_conv_forward"),
        "the choice that alone took the budget is marked, the one skipped absent: {marked}"
    );
    let heard = heard.lock().unwrap();
    let stages: Vec<(&str, TuneStage)> = heard.iter().map(|p| (p.name.as_str(), p.stage)).collect();
    let timing = TuneStage::Timing {
        candidate: 0,
        candidates: 2,
    };
    assert_eq!(
        stages,
        [("conv_storage", timing), ("conv_storage", TuneStage::BudgetSpent)],
        "{heard:?}"
    );
    let last = heard.last().unwrap();
    assert_eq!((last.choices, last.budget), (1, Some(budget)), "{last:?}");
    assert!(last.spent >= budget && !last.adapter.is_empty(), "{last:?}");
    // Timed again, cut short again: kept, and read back by the next tuner.
    let options = TuneOptions {
        cache_dir: Some(dir.clone()),
        budget: Some(budget),
        ..TuneOptions::default()
    };
    let again = Tuner::new(options.clone());
    assert_eq!(again.conv_storage(gpu), Storage::untuned(gpu));
    assert_eq!(again.choices()[0].source, "partial", "{:?}", again.choices());
    let kept = cache();
    assert!(
        kept.contains(&format!("\"conv_storage\": \"{}\"", Storage::untuned(gpu))),
        "not kept: {kept}"
    );
    let third = Tuner::new(options);
    assert_eq!(third.conv_storage(gpu), Storage::untuned(gpu));
    assert_eq!(third.choices()[0].source, "cached", "{:?}", third.choices());
    let _ = std::fs::remove_dir_all(&dir);
}
