//! The CPU references define the ops; here their backward passes are checked against central
//! finite differences of `L = <dy, forward(x)>` in f64 (so a wrong reference cannot make a
//! wrong kernel pass).

use crate::support::{check, conv_cases, dot, finite_diff, Rng};
use nfnet::ops::agc::Agc;
use nfnet::ops::avg_pool::{self, AvgPool};
use nfnet::ops::dropout::{self, Dropout, Granularity};
use nfnet::ops::global_pool::{self, GlobalPool};
use nfnet::ops::grouped_conv::{self, Padding};
use nfnet::ops::linear::{self, Linear};
use nfnet::ops::residual::{self, Residual};
use nfnet::ops::scaled_act::{self, Activation, ScaledAct};
use nfnet::ops::se_gate::{self, SeGate};
use nfnet::ops::se_residual::{self, SeResidual};
use nfnet::ops::softmax_xent::{self, SoftmaxXent};
use nfnet::ops::weight_std::{self, WeightStd, WsForm};

/// Compares `analytic` with central differences of `f` at up to 48 coordinates of `x`.
fn check_grad(what: &str, analytic: &[f64], f: impl Fn(&[f64]) -> f64, x: &[f64]) {
    assert_eq!(analytic.len(), x.len(), "{what}: gradient length");
    let step = (x.len() / 48).max(1);
    let at: Vec<usize> = (0..x.len()).step_by(step).collect();
    let fd = finite_diff(f, x, &at, 1e-5);
    let an: Vec<f64> = at.iter().map(|&i| analytic[i]).collect();
    check(what, &an, &fd, 1e-6);
}

#[test]
fn grouped_conv_reference_gradients() {
    let mut rng = Rng::new(1);
    // The smaller cases of the table, plus stride 2 with symmetric padding, keep this fast.
    for case in conv_cases().into_iter().filter(|c| c.spec.macs() < 50_000) {
        let s = case.spec;
        let x = rng.normal(s.x_shape().iter().product());
        let w = rng.normal(s.w_shape().iter().product());
        let b = rng.normal(s.k);
        let dy = rng.normal(s.y_shape().iter().product());
        let bias = s.bias.then_some(b.as_slice());
        let dx = grouped_conv::cpu::backward_input(&s, &dy, &w);
        let (dw, db) = grouped_conv::cpu::backward_weight(&s, &x, &dy);
        check_grad(
            &format!("{} dx", case.name),
            &dx,
            |x| dot(&dy, &grouped_conv::cpu::forward(&s, x, &w, bias)),
            &x,
        );
        check_grad(
            &format!("{} dw", case.name),
            &dw,
            |w| dot(&dy, &grouped_conv::cpu::forward(&s, &x, w, bias)),
            &w,
        );
        check_grad(
            &format!("{} db", case.name),
            &db,
            |b| dot(&dy, &grouped_conv::cpu::forward(&s, &x, &w, Some(b))),
            &b,
        );
    }
}

#[test]
fn same_padding_matches_tensorflow() {
    // TF 'SAME': 3x3 stride 2 on even input pads 0 before and 1 after; stride 1 pads 1/1;
    // 1x1 pads nothing; odd input with stride 2 pads 1/1.
    assert_eq!(
        Padding::same(8, 8, 3, 3, (2, 2)),
        Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1
        }
    );
    assert_eq!(
        Padding::same(7, 7, 3, 3, (2, 2)),
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
    assert_eq!(
        Padding::same(5, 5, 3, 3, (1, 1)),
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
    assert_eq!(Padding::same(5, 5, 1, 1, (1, 1)), Padding::default());
    assert_eq!(
        Padding::symmetric(3, 3, (2, 2)),
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
}

#[test]
fn weight_std_reference_gradients() {
    let mut rng = Rng::new(2);
    for (form, eps, scale) in [
        (WsForm::Timm, 1e-5, 1.0),
        (WsForm::DeepMind, 1e-4, 1.0),
        (WsForm::DeepMind, 1e-4, 1e-3),
    ] {
        // scale 1e-3 puts fan_in * var below DeepMind's floor, where the floor holds the scale.
        let spec = WeightStd {
            k: 4,
            fan_in: 27,
            eps,
            form,
            multiplier: 1.7,
        };
        let w: Vec<f64> = rng.normal(4 * 27).iter().map(|v| v * scale).collect();
        let gain = rng.normal(4);
        let dy = rng.normal(4 * 27);
        let (dw, dgain) = weight_std::cpu::backward(&spec, &w, &gain, &dy);
        let what = format!("{form:?} x{scale}");
        check_grad(
            &format!("weight_std {what} dw"),
            &dw,
            |w| dot(&dy, &weight_std::cpu::forward(&spec, w, &gain)),
            &w,
        );
        check_grad(
            &format!("weight_std {what} dgain"),
            &dgain,
            |g| dot(&dy, &weight_std::cpu::forward(&spec, &w, g)),
            &gain,
        );
    }
}

#[test]
fn scaled_act_reference_gradients() {
    let mut rng = Rng::new(3);
    let x: Vec<f64> = rng.normal(200).iter().map(|v| v * 3.0).collect();
    let dy = rng.normal(200);
    for act in Activation::ALL {
        let spec = ScaledAct {
            act,
            gamma: act.nfnet_gamma(),
        };
        let dx = scaled_act::cpu::backward(&spec, &x, &dy);
        check_grad(&format!("{act:?}"), &dx, |x| dot(&dy, &scaled_act::cpu::forward(&spec, x)), &x);
    }
}

#[test]
fn pool_reference_gradients() {
    let mut rng = Rng::new(4);
    for spec in [AvgPool { n: 2, c: 3, h: 5, w: 4 }, AvgPool { n: 1, c: 2, h: 1, w: 3 }] {
        let x = rng.normal(spec.x_shape().iter().product());
        let dy = rng.normal(spec.y_shape().iter().product());
        let dx = avg_pool::cpu::backward(&spec, &dy);
        check_grad(
            &format!("avg_pool {spec:?}"),
            &dx,
            |x| dot(&dy, &avg_pool::cpu::forward(&spec, x)),
            &x,
        );
    }
    let spec = GlobalPool { n: 2, c: 3, h: 3, w: 5 };
    let x = rng.normal(90);
    let dy = rng.normal(6);
    let dx = global_pool::cpu::backward(&spec, &dy);
    check_grad("global_pool", &dx, |x| dot(&dy, &global_pool::cpu::forward(&spec, x)), &x);
}

#[test]
fn se_gate_reference_gradients() {
    let mut rng = Rng::new(5);
    let spec = SeGate {
        n: 2,
        c: 3,
        h: 2,
        w: 3,
        gain: 2.0,
    };
    let s = rng.normal(6);
    let r = rng.normal(36);
    let dy = rng.normal(36);
    let (dr, ds) = se_gate::cpu::backward(&spec, &s, &r, &dy);
    check_grad("se_gate dr", &dr, |r| dot(&dy, &se_gate::cpu::forward(&spec, &s, r)), &r);
    check_grad("se_gate ds", &ds, |s| dot(&dy, &se_gate::cpu::forward(&spec, s, &r)), &s);
}

#[test]
fn residual_reference_gradients() {
    let mut rng = Rng::new(6);
    let spec = Residual { alpha: 0.2 };
    let r = rng.normal(50);
    let sc = rng.normal(50);
    let dy = rng.normal(50);
    let gain = 0.7;
    let (dr, dsc, dgain) = residual::cpu::backward(&spec, &dy, &r, Some(gain));
    check_grad(
        "residual dr",
        &dr,
        |r| dot(&dy, &residual::cpu::forward(&spec, r, &sc, Some(gain))),
        &r,
    );
    check_grad(
        "residual dshortcut",
        &dsc,
        |s| dot(&dy, &residual::cpu::forward(&spec, &r, s, Some(gain))),
        &sc,
    );
    check_grad(
        "residual dgain",
        &[dgain],
        |g| dot(&dy, &residual::cpu::forward(&spec, &r, &sc, Some(g[0]))),
        &[gain],
    );
}

#[test]
fn se_residual_reference_gradients() {
    let mut rng = Rng::new(9);
    let spec = SeResidual {
        gate: SeGate {
            n: 2,
            c: 3,
            h: 2,
            w: 3,
            gain: 2.0,
        },
        residual: Residual { alpha: 0.2 },
    };
    let (s, r, sc, dy) = (rng.normal(6), rng.normal(36), rng.normal(36), rng.normal(36));
    let gain = 0.7;
    let f = |s: &[f64], r: &[f64], g: f64| dot(&dy, &se_residual::cpu::forward(&spec, s, r, &sc, Some(g)));
    let (dr, ds, dgain) = se_residual::cpu::backward(&spec, &dy, &s, &r, Some(gain));
    check_grad("se_residual dr", &dr, |r| f(&s, r, gain), &r);
    check_grad("se_residual ds", &ds, |s| f(s, &r, gain), &s);
    check_grad("se_residual dgain", &[dgain], |g| f(&s, &r, g[0]), &[gain]);
}

#[test]
fn linear_reference_gradients() {
    let mut rng = Rng::new(7);
    let spec = Linear {
        n: 3,
        in_features: 5,
        out_features: 4,
        bias: true,
    };
    let x = rng.normal(15);
    let w = rng.normal(20);
    let b = rng.normal(4);
    let dy = rng.normal(12);
    let dx = linear::cpu::backward_input(&spec, &dy, &w);
    let (dw, db) = linear::cpu::backward_weight(&spec, &x, &dy);
    check_grad("linear dx", &dx, |x| dot(&dy, &linear::cpu::forward(&spec, x, &w, Some(&b))), &x);
    check_grad("linear dw", &dw, |w| dot(&dy, &linear::cpu::forward(&spec, &x, w, Some(&b))), &w);
    check_grad("linear db", &db, |b| dot(&dy, &linear::cpu::forward(&spec, &x, &w, Some(b))), &b);
}

#[test]
fn softmax_xent_reference_gradient() {
    let mut rng = Rng::new(8);
    for (smoothing, mixed) in [(0.0, false), (0.1, false), (0.1, true)] {
        let spec = SoftmaxXent {
            n: 4,
            classes: 6,
            smoothing,
            mixed,
        };
        let z: Vec<f64> = rng.normal(24).iter().map(|v| v * 2.0).collect();
        let labels: Vec<u32> = if mixed {
            (0..4)
                .flat_map(|i| [i as u32, (i as u32 + 2) % 6, (0.3f32 + 0.1 * i as f32).to_bits()])
                .collect()
        } else {
            rng.below(4, 6)
        };
        let (_, dz) = softmax_xent::cpu::forward_backward(&spec, &z, &labels);
        let what = format!("softmax_xent smoothing {smoothing} mixed {mixed}");
        check_grad(&what, &dz, |z| softmax_xent::cpu::forward_backward(&spec, z, &labels).0, &z);
    }
}

#[test]
fn dropout_reference_is_linear_and_philox_matches_known_answers() {
    // Random123's known-answer tests for philox4x32-10.
    assert_eq!(
        dropout::cpu::philox([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        dropout::cpu::philox([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        dropout::cpu::philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
    let mut rng = Rng::new(9);
    let spec = Dropout {
        keep: 0.7,
        rescale: true,
        granularity: Granularity::Sample { per_sample: 5 },
        seed: 42,
        stream: 3,
    };
    let x = rng.normal(40);
    let dy = rng.normal(40);
    let dx = dropout::cpu::apply(&spec, 4, 1, &dy);
    check_grad("dropout", &dx, |x| dot(&dy, &dropout::cpu::apply(&spec, 4, 1, x)), &x);
}

#[test]
fn agc_units_follow_timm() {
    assert_eq!(
        Agc::for_shape(&[8, 4, 3, 3], 0.01, 1e-3),
        Agc {
            units: 8,
            unit_len: 36,
            clip: 0.01,
            eps: 1e-3
        }
    );
    assert_eq!(
        Agc::for_shape(&[8, 1, 1, 1], 0.01, 1e-3),
        Agc {
            units: 8,
            unit_len: 1,
            clip: 0.01,
            eps: 1e-3
        }
    );
    assert_eq!(
        Agc::for_shape(&[10, 7], 0.01, 1e-3),
        Agc {
            units: 10,
            unit_len: 7,
            clip: 0.01,
            eps: 1e-3
        }
    );
    assert_eq!(
        Agc::for_shape(&[10], 0.01, 1e-3),
        Agc {
            units: 1,
            unit_len: 10,
            clip: 0.01,
            eps: 1e-3
        }
    );
    assert_eq!(
        Agc::for_shape(&[], 0.01, 1e-3),
        Agc {
            units: 1,
            unit_len: 1,
            clip: 0.01,
            eps: 1e-3
        }
    );
}
