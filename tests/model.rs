//! The model family, its plan and its weights: DeepMind's published counts, the planned memory
//! of an F0 training step, one submit and no allocation per step, the full-size F0, and a typed
//! error for every kind of bad input.

use crate::support::{gpu_or_skip, Rng};
use nfnet::gpu::GpuTensor;
use nfnet::graph::plan::Plan;
use nfnet::graph::ParamStore;
use nfnet::io::{read_safetensors, write_safetensors, HostTensor};
use nfnet::model::forward::{forward, ForwardOptions};
use nfnet::model::recipe::{inference_graph, param_store, training_memory, InferencePlan, TrainingPlan, TrainingSetup};
use nfnet::model::weights::{self, Head, Weights};
use nfnet::model::{describe, ModelConfig};
use nfnet::ops::grouped_conv::{Prologue, Storage};
use nfnet::{Error, TuneOptions, Tuner};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file)
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nfnet-test-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn f0_counts_match_deepmind() {
    let f0 = ModelConfig::builtin("f0").unwrap();
    let text = describe(&f0, 256, 8).unwrap();
    assert!(text.contains("parameters:      71,489,284 in 233 tensors"), "{text}");
    assert!(text.contains("multiply-adds:   12.38 G per image at 256x256"), "{text}");
    // F1 from the published table too (params; MACs at its test resolution 320: 35.54 G).
    let f1 = inference_graph(&ModelConfig::builtin("f1").unwrap(), 1, (320, 320)).unwrap();
    let params: usize = f1.graph.params().map(|(_, d, _)| d.numel()).sum();
    assert_eq!(params, 132_634_256);
    assert_eq!(format!("{:.2}", f1.graph.macs() as f64 / 1e9), "35.54");
}

#[test]
fn f0_training_step_plans_shared_memory_below_six_tenths_of_all_tensors() {
    let f0 = ModelConfig::builtin("f0").unwrap();
    let m = training_memory(&f0, &TrainingSetup::new(8, (192, 192)), &wgpu::Limits::default(), Storage::Buffer).unwrap();
    let ratio = m.shared as f64 / m.all_tensors as f64;
    eprintln!("dm_nfnet_f0 training step, batch 8, 192x192: planned activations, gradients and workspaces {} MiB; sum of all tensor sizes {} MiB; ratio {ratio:.3}", m.shared >> 20, m.all_tensors >> 20);
    assert!(ratio <= 0.6, "planned {} of {} bytes ({ratio:.3})", m.shared, m.all_tensors);
}

/// The nano model's training plan over a fixed random batch, its conv operands where `tuner`
/// puts them.
fn nano_training_plan(gpu: &nfnet::Gpu, tuner: &Tuner) -> (TrainingPlan, ParamStore) {
    let cfg = ModelConfig::builtin("nano").unwrap();
    let setup = TrainingSetup {
        label_smoothing: 0.1,
        seed: 1,
        optimizer: Some(nfnet::graph::optim::Optimizer {
            momentum: 0.9,
            weight_decay: 2e-5,
            nesterov: true,
            agc: Some(nfnet::graph::optim::AgcConfig {
                clip: 0.01,
                eps: 1e-3,
                style: Default::default(),
            }),
        }),
        ..TrainingSetup::new(4, (32, 32))
    };
    let store = param_store(gpu, &cfg).unwrap();
    let plan = TrainingPlan::new(gpu, tuner, &cfg, &setup, &store).unwrap();
    weights::init(gpu, plan.plan().graph(), &store, 3).unwrap();
    let mut rng = Rng::new(5);
    plan.input()
        .write_f32(gpu, &rng.normal(4 * 3 * 32 * 32).iter().map(|&v| v as f32).collect::<Vec<_>>())
        .unwrap();
    plan.labels().unwrap().write_u32(gpu, &[1, 7, 3, 9]).unwrap();
    let info = nfnet::ops::step_info::StepInfo {
        lr: 0.05,
        ema_decay: 0.0,
        ..Default::default()
    };
    nfnet::ops::step_info::write(gpu, plan.step_info().unwrap(), info).unwrap();
    (plan, store)
}

#[test]
fn a_training_step_is_one_submit_and_allocates_nothing_after_the_first() {
    let Some(_) = gpu_or_skip() else { return };
    // A context of its own: the counters would see other tests' work on the shared one.
    let own = nfnet::Gpu::new().unwrap();
    let gpu = &own;
    let (plan, _store) = nano_training_plan(gpu, &Tuner::off());
    let plan = plan.plan();
    // Each standardized conv weight's update takes its unit norms from the standardization's
    // statistics and its backward's sums (inputs [step_info, g, stats, g_sq]).
    use nfnet::graph::Op;
    let standardized = plan.step_nodes().filter(|n| matches!(n.op, Op::WeightStd(_))).count();
    let given = plan
        .step_nodes()
        .filter(|n| matches!(n.op, Op::SgdAgcUpdate(..)) && n.inputs.len() == 4)
        .count();
    assert!(
        standardized > 0 && given == standardized,
        "{given} of {standardized} conv weight updates take given norms"
    );
    // And each conv's two weight packings are one pass (every conv of nano has an input
    // gradient but the stem's first).
    let pairs = plan.step_nodes().filter(|n| matches!(n.op, Op::PackWeightPair(_))).count();
    let unpaired = plan
        .step_nodes()
        .filter(|n| matches!(n.op, Op::PackWeight(_, nfnet::ops::grouped_conv::Packing::InputInner)))
        .count();
    assert!(
        pairs == standardized - 1 && unpaired == 0,
        "{pairs} paired packings of {standardized}, {unpaired} unpaired"
    );
    let loss_id = plan.graph().find("loss.loss").unwrap();
    let loss = |plan: &Plan| plan.tensor_id(loss_id).unwrap().read_f32(gpu).unwrap()[0];
    plan.step(gpu).unwrap();
    let first = loss(plan);
    gpu.wait().unwrap();
    let before = gpu.counters();
    for _ in 0..5 {
        plan.step(gpu).unwrap();
    }
    gpu.wait().unwrap();
    let after = gpu.counters();
    assert_eq!(after.submits - before.submits, 5, "one submit per step");
    assert_eq!(after.buffers, before.buffers, "no buffer created after the first step");
    assert_eq!(after.bind_groups, before.bind_groups, "no bind group created after the first step");
    // And it learns: the loss on the (fixed) batch falls.
    for _ in 0..30 {
        plan.step(gpu).unwrap();
    }
    let last = loss(plan);
    assert!(
        last.is_finite() && last < 0.5 * first,
        "the loss should fall when fitting one batch: {first} -> {last}"
    );
}

/// Conv operands packed in textures (the `_textured` kernels, activation packing inserted by
/// the plan) train bitwise like storage buffers: same loss, same parameters after three steps,
/// still one submit per step and nothing allocated after the first. The activations that only
/// feed convs run in their packings' prologues there.
#[test]
fn textured_conv_plan_trains_bitwise_like_buffers() {
    let Some(gpu) = gpu_or_skip() else { return };
    let textured = nfnet::Gpu::new().unwrap();
    let in_textures = Tuner::new(TuneOptions {
        conv_storage: Some(Storage::Texture),
        ..TuneOptions::off()
    });
    let in_buffers = Tuner::new(TuneOptions {
        conv_storage: Some(Storage::Buffer),
        ..TuneOptions::off()
    });
    let (plan, store) = nano_training_plan(gpu, &in_buffers);
    let (tplan, tstore) = nano_training_plan(&textured, &in_textures);
    let (plan, tplan) = (plan.plan(), tplan.plan());
    let packs = tplan
        .step_nodes()
        .filter(|n| matches!(n.op, nfnet::graph::Op::PackActivation(..)))
        .count();
    assert!(packs > 0, "the textured plan packs conv activations");
    assert!(plan.step_nodes().all(|n| !matches!(n.op, nfnet::graph::Op::PackActivation(..))));
    // Activations that only feed convs, and the backward passes of those whose input gradient
    // is a conv's dy, live on in their packings' prologues.
    use nfnet::graph::Op;
    let count = |p: &Plan, f: fn(&Op) -> bool| p.step_nodes().filter(|n| f(&n.op)).count();
    let forward_prologues = count(tplan, |op| matches!(op, Op::PackActivation(_, Prologue::Act(_))));
    let backward_prologues = count(tplan, |op| matches!(op, Op::PackActivation(_, Prologue::ActBackward(_))));
    assert!(forward_prologues > 0 && backward_prologues > 0);
    // An activation only convs read is packed once; its texels serve the weight gradient too.
    assert!(
        forward_prologues <= count(plan, |op| matches!(op, Op::Act(_))),
        "{forward_prologues} activation packings"
    );
    let (acts, act_backwards): (fn(&Op) -> bool, fn(&Op) -> bool) = (|op| matches!(op, Op::Act(_)), |op| matches!(op, Op::ActBackward(..)));
    assert!(count(tplan, acts) < count(plan, acts), "the textured plan keeps every activation");
    assert!(
        count(tplan, act_backwards) < count(plan, act_backwards),
        "the textured plan keeps every activation backward"
    );
    tplan.step(&textured).unwrap();
    textured.wait().unwrap();
    let before = textured.counters();
    for _ in 0..2 {
        tplan.step(&textured).unwrap();
    }
    textured.wait().unwrap();
    let after = textured.counters();
    assert_eq!(after.submits - before.submits, 2, "one submit per step");
    assert_eq!((after.buffers, after.bind_groups), (before.buffers, before.bind_groups));
    for _ in 0..3 {
        plan.step(gpu).unwrap();
    }
    let bits = |g: &nfnet::Gpu, t: &GpuTensor| t.read_f32(g).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let loss = |p: &Plan| p.tensor("loss.loss").unwrap().clone();
    assert_eq!(bits(gpu, &loss(plan)), bits(&textured, &loss(tplan)), "loss");
    for ((name, a), (_, b)) in store.iter().zip(tstore.iter()) {
        assert_eq!(bits(gpu, a), bits(&textured, b), "{name} differs after three steps");
    }
}

#[test]
fn full_size_f0_runs_from_all_233_timm_tensors() {
    let Some(gpu) = gpu_or_skip() else { return };
    let f0 = ModelConfig::builtin("f0").unwrap();
    let model = inference_graph(&f0, 1, (64, 64)).unwrap();
    // A safetensors file with every tensor of timm's dm_nfnet_f0 (random values).
    let mut tensors = BTreeMap::new();
    for (_, def, info) in model.graph.params() {
        let init = match info.init {
            nfnet::graph::Init::Const(_) => nfnet::graph::Init::Normal(0.1),
            other => other,
        };
        let mut values = weights::init_values(&def.name, &def.shape, init, 42);
        if def.name.ends_with(".gain") || def.name.ends_with("skipinit_gain") {
            values.iter_mut().for_each(|v| *v += 1.0);
        }
        tensors.insert(def.name.clone(), HostTensor::f32(&def.shape, values));
    }
    assert_eq!(tensors.len(), 233);
    let path = scratch_dir("f0").join("dm_nfnet_f0.safetensors");
    write_safetensors(&path, &tensors, None).unwrap();
    let loaded = Weights::read(&path).unwrap();
    let store = param_store(gpu, &f0).unwrap();
    weights::load(gpu, &model.graph, &store, &loaded, Head::Strict).unwrap();
    let plan = InferencePlan::new(gpu, &Tuner::off(), &f0, 1, (64, 64), &store).unwrap();
    // Inference standardizes and packs the weights once, in the prepare phase, not per call.
    assert!(plan
        .plan()
        .step_nodes()
        .all(|n| !matches!(n.op, nfnet::graph::Op::WeightStd(_) | nfnet::graph::Op::PackWeight(..))));
    plan.prepare(gpu).unwrap();
    let mut rng = Rng::new(1);
    let images: Vec<f32> = rng.normal(3 * 64 * 64).iter().map(|&v| v as f32).collect();
    let logits = plan.logits(gpu, &images).unwrap();
    assert_eq!(logits.len(), 1000);
    assert!(logits.iter().all(|v| v.is_finite()), "F0 logits must be finite");
    assert!(logits.iter().any(|&v| v != logits[0]), "F0 logits must depend on the class");
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

fn fixture_weights() -> Weights {
    Weights::read(&data("test_nfnet.weights.safetensors")).unwrap()
}

#[test]
fn weights_that_do_not_fit_list_every_problem() {
    let Some(gpu) = gpu_or_skip() else { return };
    let config = ModelConfig::load(data("test_nfnet.json").to_str().unwrap()).unwrap();
    let model = inference_graph(&config, 1, (32, 32)).unwrap();
    let store = param_store(gpu, &config).unwrap();
    let mut w = fixture_weights();
    w.source = "broken.safetensors".into();
    w.tensors.remove("stages.2.0.conv2.weight");
    w.tensors.insert("stages.9.0.conv1.weight".into(), HostTensor::f32(&[1], vec![0.0]));
    w.tensors.insert("stem.conv1.bias".into(), HostTensor::f32(&[3], vec![0.0; 3]));
    match weights::load(gpu, &model.graph, &store, &w, Head::Strict) {
        Err(e @ Error::Weights { .. }) => {
            let msg = e.to_string();
            for part in [
                "broken.safetensors",
                "1 missing tensor(s): stages.2.0.conv2.weight",
                "1 unexpected tensor(s): stages.9.0.conv1.weight",
                "stem.conv1.bias (expected [16], got [3])",
            ] {
                assert!(msg.contains(part), "{part:?} not in: {msg}");
            }
        }
        other => panic!("expected a weights error, got {:?}", other.err()),
    }
}

#[test]
fn a_new_class_count_reinitialises_the_head_only_when_asked() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut config = ModelConfig::load(data("test_nfnet.json").to_str().unwrap()).unwrap();
    config.num_classes = 5;
    let model = inference_graph(&config, 1, (32, 32)).unwrap();
    let store = param_store(gpu, &config).unwrap();
    let w = fixture_weights();
    let strict = weights::load(gpu, &model.graph, &store, &w, Head::Strict);
    assert!(
        matches!(strict, Err(Error::Weights { ref misshaped, .. }) if misshaped.len() == 2),
        "{:?}",
        strict.err()
    );
    let report = weights::load(gpu, &model.graph, &store, &w, Head::Fresh(9)).unwrap();
    assert_eq!(report.reinitialised, ["head.fc.weight", "head.fc.bias"]);
    let conv = store.get("stem.conv1.weight").unwrap().read_f32(gpu).unwrap();
    assert_eq!(
        conv,
        w.tensors["stem.conv1.weight"].as_f32("w").unwrap(),
        "the backbone is loaded as it is"
    );
    let head = store.get("head.fc.weight").unwrap().read_f32(gpu).unwrap();
    let std = (head.iter().map(|v| v * v).sum::<f32>() / head.len() as f32).sqrt();
    assert!((0.005..0.02).contains(&std), "a fresh head is N(0, 0.01): std {std}");
}

#[test]
fn saved_weights_load_back_bit_for_bit() {
    let Some(gpu) = gpu_or_skip() else { return };
    let config = ModelConfig::builtin("nano_timm").unwrap();
    let model = inference_graph(&config, 1, (32, 32)).unwrap();
    let store = param_store(gpu, &config).unwrap();
    weights::init(gpu, &model.graph, &store, 77).unwrap();
    let saved = Weights::from_store(gpu, &store, "nano").unwrap();
    let path = scratch_dir("save").join("nano.safetensors");
    write_safetensors(&path, &saved.tensors, None).unwrap();
    assert_eq!(read_safetensors(&path).unwrap(), saved.tensors);
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

#[test]
fn bad_files_get_format_errors() {
    let dir = scratch_dir("files");
    let good = std::fs::read(data("test_nfnet.weights.safetensors")).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "these are not tensors").unwrap();
    for path in [truncated, text] {
        match read_safetensors(&path) {
            Err(e @ Error::Format { .. }) => assert!(e.to_string().contains("not a valid safetensors file"), "{e}"),
            other => panic!("{}: expected a format error, got {:?}", path.display(), other.err()),
        }
    }
    assert!(matches!(read_safetensors(&dir.join("absent.safetensors")), Err(Error::Io { .. })));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn impossible_configs_are_refused() {
    let mut cfg = ModelConfig::builtin("nano").unwrap();
    cfg.widths[2] = 60; // not a multiple of the group width 8
    match ModelConfig::from_json(&cfg.to_json()) {
        Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains("the width 60 is not divisible by the group width 8"), "{e}"),
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
    cfg.widths[2] = 64;
    cfg.group_width = 32; // the 32-wide stages' bottleneck of 16 is narrower than one group
    match ModelConfig::from_json(&cfg.to_json()) {
        Err(e @ Error::Invalid { .. }) => assert!(
            e.to_string()
                .contains("bottleneck width 16 (width 32 x bottleneck 0.5) is narrower than one group of 32"),
            "{e}"
        ),
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
    match ModelConfig::from_json(r#"{"name": "x", "flavour": "deepmind"}"#) {
        Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains("missing field"), "{e}"),
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
    assert!(ModelConfig::load("no_such_model")
        .unwrap_err()
        .to_string()
        .contains("neither a built-in model"));
}

#[test]
fn bad_images_and_labels_are_refused() {
    let Some(gpu) = gpu_or_skip() else { return };
    let config = ModelConfig::load(data("test_nfnet.json").to_str().unwrap()).unwrap();
    let w = fixture_weights();
    let opts = ForwardOptions {
        grads: false,
        train_steps: 0,
        lr: 0.1,
        optimizer: crate_optimizer(),
    };
    let run = |shape: &[usize], labels: Option<HostTensor>| {
        let n: usize = shape.iter().product();
        forward(
            gpu,
            &Tuner::off(),
            &config,
            &w,
            &HostTensor::f32(shape, vec![0.0; n]),
            labels.as_ref(),
            &opts,
        )
    };
    let msg = run(&[1, 4, 40, 40], None).unwrap_err().to_string();
    assert!(msg.contains("3 channels") && msg.contains("4 channels"), "{msg}");
    let msg = run(&[1, 3, 16, 40], None).unwrap_err().to_string();
    assert!(msg.contains("at least 32x32") && msg.contains("16x40"), "{msg}");
    let msg = run(&[2, 3, 32, 32], Some(HostTensor::i64(&[2], vec![1, 10])))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("label 10 at index 1") && msg.contains("10 classes"), "{msg}");
    // An unusual but valid batch runs.
    let logits = run(&[1, 3, 32, 33], None).unwrap();
    assert_eq!(logits["logits"].shape, [1, 10]);
    let _ = GpuTensor::zeros(gpu, "unused", &[1]);
}

fn crate_optimizer() -> nfnet::graph::optim::Optimizer {
    nfnet::graph::optim::Optimizer {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: true,
        agc: None,
    }
}

/// The nano model's logits for a fixed batch on `gpu`, from seeded weights.
fn nano_logits(gpu: &nfnet::Gpu) -> Vec<f32> {
    let cfg = ModelConfig::builtin("nano").unwrap();
    let store = param_store(gpu, &cfg).unwrap();
    let plan = InferencePlan::new(gpu, &Tuner::off(), &cfg, 2, (32, 32), &store).unwrap();
    weights::init(gpu, plan.plan().graph(), &store, 11).unwrap();
    plan.prepare(gpu).unwrap();
    let images: Vec<f32> = Rng::new(12).normal(2 * 3 * 32 * 32).iter().map(|&v| v as f32).collect();
    plan.logits(gpu, &images).unwrap()
}

#[test]
fn a_model_runs_on_a_device_the_application_opened() {
    let Some(shared) = gpu_or_skip() else { return };
    // What an application (a Bevy or egui renderer) does before the engine exists: its own
    // instance, adapter (the one the shared context uses), device and queue.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .find(|a| a.get_info() == shared.info)
        .expect("the shared context's adapter, found again");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("the application's device"),
        required_limits: shared.limits.clone(),
        ..Default::default()
    }))
    .unwrap();
    let app_errors = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = app_errors.clone();
    device.on_uncaptured_error(std::sync::Arc::new(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));

    let gpu = nfnet::Gpu::from_device(adapter.get_info(), device.clone(), queue.clone(), &Default::default()).unwrap();
    assert_eq!(gpu.limits, shared.limits);
    let got = nano_logits(&gpu);
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    // Same adapter, limits and kernels: bitwise the engine's own device's result.
    let want = nano_logits(shared);
    assert!(
        got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
        "app device {got:?}\nown device {want:?}"
    );

    // The engine's errors are its own (typed, through error scopes), and the application's
    // handler stays in place and silent.
    let bad = GpuTensor::zeros(&gpu, "x", &[4]).unwrap().write_f32(&gpu, &[1.0; 3]);
    assert!(matches!(bad, Err(Error::Shape { .. })), "{bad:?}");
    assert_eq!(app_errors.load(std::sync::atomic::Ordering::SeqCst), 0);
    // The application's device is usable by the application afterwards.
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
}
