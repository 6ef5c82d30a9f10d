//! Same inputs, same adapter: bitwise the same outputs, for every kernel with a reduction
//! (conv weight gradients over split rows, WS statistics, skip-gain and loss sums, AGC norms),
//! both when one launch is replayed and when the launches are rebuilt.

use crate::support::{gpu_or_skip, poisoned, upload, Rng};
use nfnet::gpu::{Gpu, GpuTensor, Launch};
use nfnet::ops::agc::Agc;
use nfnet::ops::grouped_conv::{standalone, Conv2d, Storage};
use nfnet::ops::residual::{self, Residual};
use nfnet::ops::sgd::{self, Sgd};
use nfnet::ops::softmax_xent::{self, SoftmaxXent};
use nfnet::ops::step_info::{self, StepInfo};
use nfnet::ops::weight_std::{self, WeightStd, WsForm};

struct Run {
    outputs: Vec<GpuTensor>,
    launches: Vec<Launch>,
}

/// Builds the launches over fixed inputs (seed 11) and returns them with their outputs.
fn build(gpu: &Gpu) -> Run {
    let mut rng = Rng::new(11);
    let spec = Conv2d::symmetric([4, 32, 9, 9], 32, 3, 1).groups(2).with_bias(true);
    let x = upload(gpu, "x", &spec.x_shape(), &rng.normal(spec.x_shape().iter().product()));
    let dy = upload(gpu, "dy", &spec.y_shape(), &rng.normal(spec.y_shape().iter().product()));
    let w = upload(gpu, "w", &spec.w_shape(), &rng.normal(spec.w_shape().iter().product()));
    let gain = upload(gpu, "gain", &[spec.k], &rng.normal(spec.k));
    let ws = WeightStd {
        k: spec.k,
        fan_in: 16 * 9,
        eps: 1e-5,
        form: WsForm::Timm,
        multiplier: 1.0,
    };
    let (dw, db, w_hat, stats, dw_raw, dgain, dw_sq) = (
        poisoned(gpu, "dw", &spec.w_shape()),
        poisoned(gpu, "db", &[spec.k]),
        poisoned(gpu, "w_hat", &spec.w_shape()),
        poisoned(gpu, "stats", &[spec.k, 2]),
        poisoned(gpu, "dw raw", &spec.w_shape()),
        poisoned(gpu, "dgain", &[spec.k]),
        poisoned(gpu, "dw_sq", &[spec.k]),
    );
    let r = upload(gpu, "r", &[5000], &rng.normal(5000));
    let dres = upload(gpu, "dres", &[5000], &rng.normal(5000));
    let skip = upload(gpu, "skip", &[], &[0.5]);
    let (dr, dskip) = (poisoned(gpu, "dr", &[5000]), poisoned(gpu, "dskip", &[]));
    let xent = SoftmaxXent {
        n: 33,
        classes: 10,
        smoothing: 0.1,
        mixed: false,
    };
    let z = upload(gpu, "logits", &[33, 10], &rng.normal(330));
    let labels = GpuTensor::from_u32(gpu, "labels", &[33], &rng.below(33, 10)).unwrap();
    let (loss, dz) = (poisoned(gpu, "loss", &[1]), poisoned(gpu, "dz", &[33, 10]));
    // The update reads dw_raw as its gradient and changes its own copy of w and the momentum.
    let info = step_info::tensor(
        gpu,
        StepInfo {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    let w_upd = upload(gpu, "w updated", &spec.w_shape(), &rng.normal(spec.w_shape().iter().product()));
    let momentum = upload(gpu, "momentum", &spec.w_shape(), &rng.normal(spec.w_shape().iter().product()));
    let sgd = Sgd {
        momentum: 0.9,
        weight_decay: 2e-5,
        nesterov: true,
    };
    let launches = vec![
        standalone::backward_weight(gpu, &spec, Storage::Buffer, &x, &dy, &dw, Some(&db)).unwrap(),
        weight_std::forward(gpu, &ws, &w, &gain, &w_hat, &stats).unwrap(),
        weight_std::backward(gpu, &ws, &w, &gain, &stats, &dw, &dw_raw, &dgain, &dw_sq).unwrap(),
        sgd::agc_update(
            gpu,
            &Agc::for_shape(&spec.w_shape(), 0.01, 1e-3),
            &sgd,
            &info,
            &dw_raw,
            &w_upd,
            &momentum,
            Some((&stats, &dw_sq)),
        )
        .unwrap(),
        residual::backward(gpu, &Residual { alpha: 0.2 }, &dres, &r, Some((&skip, &dskip)), &dr).unwrap(),
        softmax_xent::forward_backward(gpu, &xent, &z, &labels, &loss, &dz).unwrap(),
    ];
    assert!(
        launches[0].steps.len() > 2,
        "the weight gradient should be split into partial sums here"
    );
    Run {
        outputs: vec![dw, db, w_hat, stats, dw_raw, dgain, dw_sq, w_upd, momentum, dr, dskip, loss, dz],
        launches,
    }
}

fn bits(gpu: &Gpu, run: &Run) -> Vec<Vec<u32>> {
    gpu.run(&run.launches.iter().collect::<Vec<_>>()).unwrap();
    run.outputs
        .iter()
        .map(|t| t.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn same_inputs_give_bitwise_same_outputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let first = build(gpu);
    let a = bits(gpu, &first);
    let b = bits(gpu, &build(gpu));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "rebuilt run differs in output {}", first.outputs[i].label());
    }
    // The update changes its inputs, so replaying the same launches is only identical for the pure ones.
    let pure = Run {
        outputs: first.outputs.into_iter().take(4).collect(),
        launches: first.launches.into_iter().take(2).collect(),
    };
    let c = bits(gpu, &pure);
    for (i, (x, y)) in c.iter().zip(&a).enumerate() {
        assert_eq!(x, y, "replayed run differs in output {}", pure.outputs[i].label());
    }
}
