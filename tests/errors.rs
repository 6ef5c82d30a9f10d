//! Each kind of bad input gets a typed error that names the op, what was expected and what was
//! given, before any GPU work, never a panic or a wgpu validation abort.

use crate::support::gpu_or_skip;
use nfnet::gpu::{Gpu, GpuTensor};
use nfnet::ops::dropout::{self, Dropout, Granularity};
use nfnet::ops::grouped_conv::{standalone, Conv2d, Storage};
use nfnet::ops::softmax_xent::{self, check_labels, SoftmaxXent};
use nfnet::ops::weight_std::{self, WeightStd, WsForm};
use nfnet::Error;

fn conv(c: usize, k: usize, groups: usize) -> Conv2d {
    Conv2d::symmetric([1, c, 4, 4], k, 3, 1).groups(groups)
}

fn tensors(gpu: &Gpu, spec: &Conv2d) -> (GpuTensor, GpuTensor, GpuTensor) {
    let z = |label: &str, shape: &[usize]| GpuTensor::zeros(gpu, label, shape).unwrap();
    let w_shape = [spec.k, (spec.c / spec.groups).max(1), spec.r, spec.s];
    (z("x", &spec.x_shape()), z("w", &w_shape), z("y", &spec.y_shape()))
}

/// The error's message, after checking it is a shape error.
fn shape_error<T>(r: nfnet::Result<T>) -> String {
    match r {
        Err(e @ Error::Shape { .. }) => e.to_string(),
        Err(e) => panic!("expected a shape error, got {e:?}"),
        Ok(_) => panic!("expected a shape error, got Ok"),
    }
}

#[test]
fn channels_not_divisible_by_groups() {
    let Some(gpu) = gpu_or_skip() else { return };
    let spec = conv(12, 8, 5);
    let (x, w, y) = tensors(gpu, &spec);
    let msg = shape_error(standalone::forward(gpu, &spec, Storage::Buffer, &x, &w, None, &y));
    assert!(
        msg.contains("grouped_conv_forward") && msg.contains("divisible by groups = 5") && msg.contains("C = 12"),
        "{msg}"
    );
}

#[test]
fn zero_sized_dimensions() {
    let Some(gpu) = gpu_or_skip() else { return };
    let msg = shape_error(GpuTensor::zeros(gpu, "activations", &[2, 0, 5, 5]));
    assert!(msg.contains("activations") && msg.contains("[2, 0, 5, 5]"), "{msg}");
    let spec = Conv2d { n: 0, ..conv(4, 4, 1) };
    let (_, w, y) = tensors(gpu, &conv(4, 4, 1));
    let msg = shape_error(standalone::backward_input(gpu, &spec, Storage::Buffer, &y, &w, &y, false));
    assert!(msg.contains("all > 0"), "{msg}");
}

#[test]
fn mismatched_shapes_name_the_argument() {
    let Some(gpu) = gpu_or_skip() else { return };
    let spec = conv(4, 6, 2);
    let (_, w, y) = tensors(gpu, &spec);
    let wrong_x = GpuTensor::zeros(gpu, "image batch", &[1, 3, 4, 4]).unwrap();
    let msg = shape_error(standalone::forward(gpu, &spec, Storage::Buffer, &wrong_x, &w, None, &y));
    assert!(
        msg.contains("x (image batch)") && msg.contains("[1, 4, 4, 4]") && msg.contains("[1, 3, 4, 4]"),
        "{msg}"
    );

    let ws = WeightStd {
        k: 6,
        fan_in: 18,
        eps: 1e-5,
        form: WsForm::Timm,
        multiplier: 1.0,
    };
    let short_gain = GpuTensor::zeros(gpu, "gain", &[5]).unwrap();
    let stats = GpuTensor::zeros(gpu, "stats", &[6, 2]).unwrap();
    let msg = shape_error(weight_std::forward(gpu, &ws, &w, &short_gain, &w, &stats));
    assert!(msg.contains("weight_std_forward") && msg.contains("6 elements"), "{msg}");

    // A bias given to a conv declared without one is an argument error, not a silent ignore.
    let b = GpuTensor::zeros(gpu, "b", &[6]).unwrap();
    let (x, _, _) = tensors(gpu, &spec);
    assert!(matches!(
        standalone::forward(gpu, &spec, Storage::Buffer, &x, &w, Some(&b), &y),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn bad_arguments() {
    let Some(gpu) = gpu_or_skip() else { return };
    let x = GpuTensor::zeros(gpu, "x", &[10]).unwrap();
    let drop = Dropout {
        keep: 0.0,
        rescale: true,
        granularity: Granularity::Element,
        seed: 1,
        stream: 0,
    };
    let info = nfnet::ops::step_info::tensor(gpu, Default::default()).unwrap();
    match dropout::apply(gpu, &drop, &info, &x, &x) {
        Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains("keep probability"), "{e}"),
        other => panic!("expected an invalid-argument error, got {:?}", other.err()),
    }
    match check_labels(&[1, 9, 10], 10) {
        Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains("label 10 at index 2"), "{e}"),
        other => panic!("expected an invalid-argument error, got {other:?}"),
    }
    let logits = GpuTensor::zeros(gpu, "logits", &[2, 3]).unwrap();
    let float_labels = GpuTensor::zeros(gpu, "labels", &[2]).unwrap();
    let loss = GpuTensor::zeros(gpu, "loss", &[1]).unwrap();
    let spec = SoftmaxXent {
        n: 2,
        classes: 3,
        smoothing: 0.0,
        mixed: false,
    };
    let msg = shape_error(softmax_xent::forward_backward(gpu, &spec, &logits, &float_labels, &loss, &logits));
    assert!(msg.contains("u32"), "{msg}");
}

#[test]
fn tensor_larger_than_any_buffer() {
    let Some(gpu) = gpu_or_skip() else { return };
    let elements = (gpu.limits.max_buffer_size / 4 + 1) as usize;
    match GpuTensor::zeros(gpu, "huge activations", &[elements]) {
        Err(e @ Error::Limit { .. }) => assert!(
            e.to_string().contains("huge activations") && e.to_string().contains("max_buffer_size"),
            "{e}"
        ),
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn adapter_selection() {
    use nfnet::gpu::GpuOptions;
    if gpu_or_skip().is_none() {
        return;
    }
    match Gpu::with_options(&GpuOptions {
        adapter: Some("no-such-adapter-anywhere".into()),
        ..Default::default()
    }) {
        Err(e @ Error::AdapterNotFound { .. }) => assert!(
            e.to_string().contains("no-such-adapter-anywhere") && e.to_string().contains("[0]"),
            "{e}"
        ),
        other => panic!("expected an adapter-not-found error, got {:?}", other.err()),
    }
    let first = &nfnet::gpu::list_adapters()[0];
    let by_index = Gpu::with_options(&GpuOptions {
        adapter: Some("0".into()),
        ..Default::default()
    })
    .expect("adapter 0");
    assert_eq!(by_index.info.name, first.name);
    let by_name = Gpu::with_options(&GpuOptions {
        adapter: Some(first.name.to_uppercase()),
        ..Default::default()
    })
    .expect("adapter by name");
    assert_eq!(by_name.info.name, first.name);
}

/// Numbers a run cannot use: a NaN in the images or the weights, a learning rate that is not a
/// finite non-negative number, a batch or resolution of 0, data of other classes than the
/// model's. Each is a typed error that names it, never NaN outputs or a panic.
#[test]
fn bad_numbers_and_mismatched_classes_get_typed_errors() {
    use nfnet::graph::optim::Optimizer;
    use nfnet::io::read_safetensors;
    use nfnet::model::forward::{forward, ForwardOptions};
    use nfnet::model::{describe, ModelConfig, Weights};
    use nfnet::Tuner;
    let Some(gpu) = gpu_or_skip() else { return };
    let data = |f: &str| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(f);
    let config = ModelConfig::load(data("dm_mini.json").to_str().unwrap()).unwrap();
    let weights = Weights {
        source: "dm_mini".into(),
        tensors: read_safetensors(&data("dm_mini.weights.safetensors")).unwrap(),
    };
    let input = read_safetensors(&data("dm_mini.input.safetensors")).unwrap();
    let options = ForwardOptions {
        grads: false,
        train_steps: 2,
        lr: 0.1,
        optimizer: Optimizer::paper(),
    };
    let run = |weights: &Weights, images: &nfnet::io::HostTensor, options: &ForwardOptions| {
        forward(gpu, &Tuner::off(), &config, weights, images, Some(&input["labels"]), options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no error".into())
    };
    for lr in [f32::NAN, f32::INFINITY, -1.0] {
        let msg = run(&weights, &input["input"], &ForwardOptions { lr, ..options });
        assert!(msg.contains(&format!("lr (--lr) {lr}")), "{lr}: {msg}");
    }
    let mut images = input["input"].clone();
    let nan_at = |t: &mut nfnet::io::HostTensor, i: usize, v: f32| match &mut t.data {
        nfnet::io::HostData::F32(values) => values[i] = v,
        _ => unreachable!("f32 fixtures"),
    };
    nan_at(&mut images, 7, f32::NAN);
    let msg = run(&weights, &images, &options);
    assert!(msg.contains("1 of") && msg.contains("index 7: NaN"), "{msg}");
    let mut poisoned = weights.clone();
    nan_at(poisoned.tensors.get_mut("head.fc.bias").unwrap(), 0, f32::INFINITY);
    let msg = run(&poisoned, &input["input"], &options);
    assert!(msg.contains("head.fc.bias") && msg.contains("NaN or infinite"), "{msg}");
    // `nfnet info` with a batch or a resolution of 0.
    for (batch, resolution, what) in [(0, 64, "batch size 0"), (8, 0, "resolution 0x0")] {
        match describe(&config, resolution, batch) {
            Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains(what), "{e}"),
            other => panic!("{what}: expected an invalid-argument error, got {:?}", other.err()),
        }
    }
    // A model of 2 classes (a checkpoint of another dataset) evaluated on the 10 built-in ones.
    use nfnet::classify::{Classifier, ClassifierOptions};
    use nfnet::data::synthetic::Synthetic;
    let nano = ModelConfig {
        num_classes: 2,
        ..ModelConfig::builtin("nano").unwrap()
    };
    let store = nfnet::model::recipe::param_store(gpu, &nano).unwrap();
    let options = ClassifierOptions {
        resolution: Some(32),
        batch: 4,
        ..Default::default()
    };
    let classifier = Classifier::over(gpu, &Tuner::off(), &nano, &store, &options).unwrap();
    let ten: std::sync::Arc<dyn nfnet::data::Source> = std::sync::Arc::new(Synthetic::new(0, 0, 8));
    match classifier.evaluate(&ten, 1) {
        Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains("10 classes") && e.to_string().contains("model's 2"), "{e}"),
        other => panic!("expected a class mismatch error, got {:?}", other.err()),
    }
}
