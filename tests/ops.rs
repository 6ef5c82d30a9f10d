//! GPU kernels against the f64 references, one case table per op run through one check
//! ([`Check`]). Inputs are fresh seeded random data each run (the seed is in every failure
//! message; `NFNET_TEST_SEED` replays it); every output buffer starts as NaN, so an element a
//! kernel fails to write cannot pass. Tolerance: relative L2 1e-5, or 1e-4 for results that sum
//! more than 10^5 terms. The convolution's own tests (tiles, storages, the tuner) are in
//! `tests/conv.rs`.

use crate::support::{add, conv_cases, gpu_or_skip, normal, reduce_width_gpus, rng, round_f32, tol_for_terms, Check};
use nfnet::gpu::GpuTensor;
use nfnet::ops::agc::{self, Agc};
use nfnet::ops::avg_pool::{self, AvgPool};
use nfnet::ops::dropout::{self, Dropout, Granularity};
use nfnet::ops::ema;
use nfnet::ops::global_pool::{self, GlobalPool};
use nfnet::ops::grad_accumulate;
use nfnet::ops::grouped_conv::{self, standalone, Storage};
use nfnet::ops::linear::{self, Linear};
use nfnet::ops::residual::{self, Residual};
use nfnet::ops::scaled_act::{self, Activation, ScaledAct};
use nfnet::ops::se_gate::{self, SeGate};
use nfnet::ops::se_residual::{self, SeResidual};
use nfnet::ops::sgd::{self, Sgd};
use nfnet::ops::softmax_xent::{self, SoftmaxXent};
use nfnet::ops::step_info::{self, StepInfo};
use nfnet::ops::weight_std::{self, WeightStd, WsForm};

#[test]
fn grouped_conv_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("grouped_conv");
    for case in conv_cases() {
        let s = case.spec;
        let fan = s.w_shape()[1..].iter().product::<usize>();
        let (xs, ws, ys) = (s.x_shape(), s.w_shape(), s.y_shape());
        let x = normal(&mut rng, xs.iter().product(), 1.0);
        let w = normal(&mut rng, ws.iter().product(), 1.0 / (fan as f64).sqrt());
        let b = normal(&mut rng, s.k, 1.0);
        let dy = normal(&mut rng, ys.iter().product(), 1.0);
        let old_dx = normal(&mut rng, xs.iter().product(), 1.0);
        let (p, q) = s.out_hw();
        let dx = grouped_conv::cpu::backward_input(&s, &dy, &w);
        let (dw, db) = grouped_conv::cpu::backward_weight(&s, &x, &dy);
        let mut c = Check::new(gpu, format!("{} ({seed})", case.name));
        let (tx, tw, tdy) = (c.input("x", &xs, &x), c.input("w", &ws, &w), c.input("dy", &ys, &dy));
        let tb = s.bias.then(|| c.input("b", &[s.k], &b));
        let y = grouped_conv::cpu::forward(&s, &x, &w, s.bias.then_some(&b[..]));
        let ty = c.output("forward", &ys, y, tol_for_terms(fan));
        let tdx = c.output("backward_input", &xs, dx.clone(), tol_for_terms(s.k / s.groups * s.r * s.s));
        let tdx_acc = c.in_place("backward_input accumulate", &xs, &old_dx, add(&dx, &old_dx), 1e-5);
        let tdw = c.output("backward_weight", &ws, dw, tol_for_terms(s.n * p * q));
        let tdb = s.bias.then(|| c.output("backward_bias", &[s.k], db, tol_for_terms(s.n * p * q)));
        let buffers = Storage::Buffer;
        c.run([
            standalone::forward(gpu, &s, buffers, &tx, &tw, tb.as_ref(), &ty),
            standalone::backward_input(gpu, &s, buffers, &tdy, &tw, &tdx, false),
            standalone::backward_input(gpu, &s, buffers, &tdy, &tw, &tdx_acc, true),
            standalone::backward_weight(gpu, &s, buffers, &tx, &tdy, &tdw, tdb.as_ref()),
        ]);
    }
}

#[test]
fn weight_std_matches_reference() {
    for gpu in reduce_width_gpus() {
        let (mut rng, seed) = rng("weight_std");
        let cases = [
            (WsForm::Timm, 5, 27, 1e-5, 1.0, 1.0, 0.0),
            (WsForm::Timm, 70, 1152, 1e-5, 1.0, 1.7015043, 0.0),
            (WsForm::DeepMind, 33, 128, 1e-4, 1.0, 1.0, 0.0),
            (WsForm::DeepMind, 6, 27, 1e-4, 1e-3, 1.0, 0.0), // fan_in * var below the floor
            (WsForm::Timm, 3, 1, 1e-5, 1.0, 1.0, 0.0),       // one element per unit: var = 0
            (WsForm::Timm, 9, 576, 1e-5, 0.05, 1.0, 4.0),    // a mean far from zero: var by shifted sums
            (WsForm::Timm, 3, 1602, 1e-5, 1.0, 1.0, 0.0),    // a unit too long for the backward to keep with 8 lanes
        ];
        for (form, k, fan, eps, scale, multiplier, offset) in cases {
            let spec = WeightStd {
                k,
                fan_in: fan,
                eps,
                form,
                multiplier,
            };
            let lanes = gpu.reduce_lanes();
            let mut c = Check::new(
                gpu,
                format!("weight_std {form:?} {k}x{fan} x{scale} + {offset}, {lanes} lanes ({seed})"),
            );
            // The references take the inputs as the GPU gets them, rounded to f32: around a mean
            // of 4, rounding moves w - mean by up to 5e-6 of the spread, more than the kernel's
            // own error.
            let w = round_f32(&normal(&mut rng, k * fan, scale).iter().map(|v| v + offset).collect::<Vec<_>>());
            let gain = round_f32(&normal(&mut rng, k, 1.0));
            let dw_hat = round_f32(&normal(&mut rng, k * fan, 1.0));
            let (tw, tgain, tdw_hat) = (
                c.input("w", &[k, fan], &w),
                c.input("gain", &[k, 1, 1, 1], &gain),
                c.input("dw_hat", &[k, fan], &dw_hat),
            );
            let (mut dw, mut dgain) = weight_std::cpu::backward(&spec, &w, &gain, &dw_hat);
            if fan == 1 {
                // A unit of one element standardizes to 0 whatever w and gain are: the
                // gradients vanish (exactly: a zero reference passes only zeros).
                (dw, dgain) = (vec![0.0; k], vec![0.0; k]);
            }
            let dw_sq: Vec<f64> = dw.chunks(fan).map(|u| u.iter().map(|v| v * v).sum()).collect();
            let tw_hat = c.output("forward", &[k, fan], weight_std::cpu::forward(&spec, &w, &gain), 1e-5);
            let tstats = crate::support::poisoned(gpu, "stats", &[k, 2]);
            let (tdw, tdgain, tdw_sq) = (
                c.output("dw", &[k, fan], dw, 1e-5),
                c.output("dgain", &[k], dgain, 1e-5),
                c.output("dw_sq", &[k], dw_sq, 1e-5),
            );
            c.run([
                weight_std::forward(gpu, &spec, &tw, &tgain, &tw_hat, &tstats),
                weight_std::backward(gpu, &spec, &tw, &tgain, &tstats, &tdw_hat, &tdw, &tdgain, &tdw_sq),
            ]);
        }
    }
}

#[test]
fn scaled_act_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("scaled_act");
    let n = 1000; // not a multiple of the workgroup size
    for act in Activation::ALL {
        let spec = ScaledAct {
            act,
            gamma: act.nfnet_gamma(),
        };
        let (x, dy, old) = (normal(&mut rng, n, 3.0), normal(&mut rng, n, 1.0), normal(&mut rng, n, 1.0));
        let dx = scaled_act::cpu::backward(&spec, &x, &dy);
        let mut c = Check::new(gpu, format!("scaled_act {act:?} ({seed})"));
        let (tx, tdy) = (c.input("x", &[n], &x), c.input("dy", &[n], &dy));
        let ty = c.output("forward", &[n], scaled_act::cpu::forward(&spec, &x), 1e-5);
        let tdx = c.output("backward", &[n], dx.clone(), 1e-5);
        let tacc = c.in_place("backward accumulate", &[n], &old, add(&dx, &old), 1e-5);
        c.run([
            scaled_act::forward(gpu, &spec, &tx, &ty),
            scaled_act::backward(gpu, &spec, &tx, &tdy, &tdx, false),
            scaled_act::backward(gpu, &spec, &tx, &tdy, &tacc, true),
        ]);
    }
}

#[test]
fn pools_match_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("pools");
    for spec in [
        AvgPool { n: 2, c: 3, h: 7, w: 5 },
        AvgPool { n: 1, c: 2, h: 1, w: 1 },
        AvgPool { n: 3, c: 5, h: 6, w: 8 },
    ] {
        let (xs, ys) = (spec.x_shape(), spec.y_shape());
        let x = normal(&mut rng, xs.iter().product(), 1.0);
        let dy = normal(&mut rng, ys.iter().product(), 1.0);
        let old = normal(&mut rng, xs.iter().product(), 1.0);
        let dx = avg_pool::cpu::backward(&spec, &dy);
        let mut c = Check::new(gpu, format!("avg_pool {xs:?} ({seed})"));
        let (tx, tdy) = (c.input("x", &xs, &x), c.input("dy", &ys, &dy));
        let ty = c.output("forward", &ys, avg_pool::cpu::forward(&spec, &x), 1e-5);
        let tdx = c.output("backward", &xs, dx.clone(), 1e-5);
        let tacc = c.in_place("backward accumulate", &xs, &old, add(&dx, &old), 1e-5);
        c.run([
            avg_pool::forward(gpu, &spec, &tx, &ty),
            avg_pool::backward(gpu, &spec, &tdy, &tdx, false),
            avg_pool::backward(gpu, &spec, &tdy, &tacc, true),
        ]);
    }
    for spec in [
        GlobalPool { n: 2, c: 5, h: 3, w: 7 },
        GlobalPool { n: 3, c: 70, h: 1, w: 1 },
        GlobalPool { n: 1, c: 3, h: 17, w: 19 },
    ] {
        let (xs, ys) = (spec.x_shape(), [spec.n, spec.c]);
        let (x, dy) = (normal(&mut rng, xs.iter().product(), 1.0), normal(&mut rng, spec.n * spec.c, 1.0));
        let mut c = Check::new(gpu, format!("global_pool {xs:?} ({seed})"));
        let (tx, tdy) = (c.input("x", &xs, &x), c.input("dy", &ys, &dy));
        let ty = c.output("forward", &ys, global_pool::cpu::forward(&spec, &x), 1e-5);
        let tdx = c.output("backward", &xs, global_pool::cpu::backward(&spec, &dy), 1e-5);
        c.run([
            global_pool::forward(gpu, &spec, &tx, &ty),
            global_pool::backward(gpu, &spec, &tdy, &tdx, false),
        ]);
    }
}

#[test]
fn se_residual_matches_reference() {
    let (mut rng, seed) = rng("se_residual");
    let gates = [(2, 5, 3, 7), (3, 70, 1, 1), (1, 3, 13, 11)].map(|(n, c, h, w)| SeGate { n, c, h, w, gain: 2.0 });
    for gpu in reduce_width_gpus() {
        for (gate, (with_gain, accumulate)) in gates.into_iter().zip([(true, true), (false, true), (true, false)]) {
            let spec = SeResidual {
                gate,
                residual: Residual { alpha: 0.2 },
            };
            let (rs, planes) = (gate.r_shape(), gate.n * gate.c);
            let len = rs.iter().product();
            let (s, r, sc) = (
                normal(&mut rng, planes, 2.0),
                normal(&mut rng, len, 1.0),
                normal(&mut rng, len, 1.0),
            );
            // dy leans on the gated branch so that dgain's sum is well-conditioned (see the residual test).
            let gated = se_gate::cpu::forward(&gate, &s, &r);
            let noise = normal(&mut rng, len, 1.0);
            let dy: Vec<f64> = round_f32(&gated.iter().zip(&noise).map(|(g, n)| 0.5 * g + n).collect::<Vec<_>>());
            let old = normal(&mut rng, len, 1.0);
            let gain = round_f32(&[0.37])[0];
            let g = with_gain.then_some(gain);
            let (dr, ds, dgain) = se_residual::cpu::backward(&spec, &dy, &s, &r, g);
            let lanes = gpu.reduce_lanes();
            let mut c = Check::new(gpu, format!("se_residual {rs:?} gain {with_gain}, {lanes} lanes ({seed})"));
            let (ts, tr, tsc, tdy) = (
                c.input("s", &[gate.n, gate.c], &s),
                c.input("r", &rs, &r),
                c.input("shortcut", &rs, &sc),
                c.input("dy", &rs, &dy),
            );
            let tgain = c.input("skip gain", &[], &[gain]);
            let ty = c.output("forward", &rs, se_residual::cpu::forward(&spec, &s, &r, &sc, g), 1e-5);
            let tdr = match accumulate {
                true => c.in_place("dr (accumulate true)", &rs, &old, add(&dr, &old), 1e-5),
                false => c.output("dr (accumulate false)", &rs, dr, 1e-5),
            };
            let tds = c.output("ds", &[gate.n, gate.c], ds, 1e-5);
            let tdgain = match with_gain {
                true => c.output("dgain", &[], vec![dgain], 1e-5),
                false => crate::support::poisoned(gpu, "dgain", &[]),
            };
            let gains = with_gain.then_some((&tgain, &tdgain));
            c.run([
                se_residual::forward(gpu, &spec, &ts, &tr, &tsc, with_gain.then_some(&tgain), &ty),
                se_residual::backward(gpu, &spec, &tdy, &ts, &tr, gains, &tdr, &tds, accumulate),
            ]);
        }
    }
}

#[test]
fn se_gate_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("se_gate");
    for (n, c, h, w) in [(2, 5, 3, 7), (3, 70, 1, 1)] {
        let spec = SeGate { n, c, h, w, gain: 2.0 };
        let rs = spec.r_shape();
        let len = rs.iter().product();
        let s = normal(&mut rng, n * c, 2.0);
        let (r, dy, old) = (normal(&mut rng, len, 1.0), normal(&mut rng, len, 1.0), normal(&mut rng, len, 1.0));
        let (dr, ds) = se_gate::cpu::backward(&spec, &s, &r, &dy);
        let mut check = Check::new(gpu, format!("se_gate {rs:?} ({seed})"));
        let (ts, tr, tdy) = (
            check.input("s", &[n, c], &s),
            check.input("r", &rs, &r),
            check.input("dy", &rs, &dy),
        );
        let ty = check.output("forward", &rs, se_gate::cpu::forward(&spec, &s, &r), 1e-5);
        let tdr = check.in_place("dr (accumulated)", &rs, &old, add(&dr, &old), 1e-5);
        let tds = check.output("ds", &[n, c], ds, 1e-5);
        check.run([
            se_gate::forward(gpu, &spec, &ts, &tr, &ty),
            se_gate::backward(gpu, &spec, &ts, &tr, &tdy, &tdr, &tds, true),
        ]);
    }
}

#[test]
fn residual_matches_reference() {
    for gpu in reduce_width_gpus() {
        let (mut rng, seed) = rng("residual");
        for (len, with_gain) in [(3001, true), (70, false), (1, true)] {
            let spec = Residual { alpha: 0.2 };
            let (r, sc) = (normal(&mut rng, len, 1.0), normal(&mut rng, len, 1.0));
            // dgain is one sum of len products: with dy independent of r it cancels to a small
            // number whose f32 rounding, not the kernel, sets the relative error. A dy that leans on
            // r (a loss that wants the branch larger, as in training) keeps the sum well-conditioned.
            let noise = normal(&mut rng, len, 1.0);
            let dy: Vec<f64> = round_f32(&r.iter().zip(&noise).map(|(r, n)| 0.5 * r + n).collect::<Vec<_>>());
            let gain = round_f32(&[0.37])[0];
            let g = with_gain.then_some(gain);
            let (dr, _, dgain) = residual::cpu::backward(&spec, &dy, &r, g);
            let lanes = gpu.reduce_lanes();
            let mut c = Check::new(gpu, format!("residual len {len} gain {with_gain}, {lanes} lanes ({seed})"));
            let (tr, tsc, tdy) = (
                c.input("r", &[len], &r),
                c.input("shortcut", &[len], &sc),
                c.input("dy", &[len], &dy),
            );
            let tgain = c.input("skip gain", &[], &[gain]);
            let ty = c.output("forward", &[len], residual::cpu::forward(&spec, &r, &sc, g), 1e-5);
            let tdr = c.output("dr", &[len], dr, 1e-5);
            let tdgain = match with_gain {
                true => c.output("dgain", &[], vec![dgain], 1e-5),
                false => crate::support::poisoned(gpu, "dgain", &[]),
            };
            c.run([
                residual::forward(gpu, &spec, &tr, &tsc, with_gain.then_some(&tgain), &ty),
                residual::backward(gpu, &spec, &tdy, &tr, with_gain.then_some((&tgain, &tdgain)), &tdr),
            ]);
        }
    }
}

#[test]
fn linear_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("linear");
    let linear = |n, in_features, out_features, bias| Linear {
        n,
        in_features,
        out_features,
        bias,
    };
    let cases = [
        linear(5, 70, 33, true),
        linear(1, 3, 1000, true),
        linear(9, 17, 5, false),
        // More columns (with the bias's) than one weight-gradient workgroup covers (8 x 64),
        // rows not a multiple of its 16.
        linear(8, 530, 21, true),
        // Tiles that divide the outputs: no store guarded (EDGES = 0).
        linear(8, 64, 48, true),
        linear(16, 24, 32, false),
    ];
    for spec in cases {
        let (n, i, o) = (spec.n, spec.in_features, spec.out_features);
        let x = normal(&mut rng, n * i, 1.0);
        let w = normal(&mut rng, o * i, 1.0 / (i as f64).sqrt());
        let b = normal(&mut rng, o, 1.0);
        let dy = normal(&mut rng, n * o, 1.0);
        let old = normal(&mut rng, n * i, 1.0);
        let dx = linear::cpu::backward_input(&spec, &dy, &w);
        let (dw, db) = linear::cpu::backward_weight(&spec, &x, &dy);
        let mut c = Check::new(gpu, format!("linear {spec:?} ({seed})"));
        let (tx, tw, tdy) = (c.input("x", &[n, i], &x), c.input("w", &[o, i], &w), c.input("dy", &[n, o], &dy));
        let tb = spec.bias.then(|| c.input("b", &[o], &b));
        let ty = c.output(
            "forward",
            &[n, o],
            linear::cpu::forward(&spec, &x, &w, spec.bias.then_some(&b[..])),
            1e-5,
        );
        let tdx = c.output("dx", &[n, i], dx.clone(), 1e-5);
        let tacc = c.in_place("dx accumulate", &[n, i], &old, add(&dx, &old), 1e-5);
        let tdw = c.output("dw", &[o, i], dw, 1e-5);
        let tdb = spec.bias.then(|| c.output("db", &[o], db, 1e-5));
        c.run([
            linear::forward(gpu, &spec, &tx, &tw, tb.as_ref(), &ty),
            linear::backward_input(gpu, &spec, &tdy, &tw, &tdx, false),
            linear::backward_input(gpu, &spec, &tdy, &tw, &tacc, true),
            linear::backward_weight(gpu, &spec, &tx, &tdy, &tdw, tdb.as_ref()),
        ]);
    }
}

#[test]
fn softmax_xent_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("softmax_xent");
    for (n, classes, smoothing, mixed) in [(5, 7, 0.0, false), (3, 1000, 0.1, false), (70, 10, 0.1, false), (6, 9, 0.1, true)] {
        let spec = SoftmaxXent {
            n,
            classes,
            smoothing,
            mixed,
        };
        let z = normal(&mut rng, n * classes, 3.0);
        let labels: Vec<u32> = if mixed {
            // (a, b, lambda) per row: MixUp/CutMix targets, one of them a pure label (lambda 1).
            (0..n)
                .flat_map(|i| {
                    [
                        rng.below(1, classes as u32)[0],
                        rng.below(1, classes as u32)[0],
                        if i == 0 { 1.0f32 } else { rng.uniform(1, 0.0, 1.0)[0] as f32 }.to_bits(),
                    ]
                })
                .collect()
        } else {
            rng.below(n, classes as u32)
        };
        let (loss, dz) = softmax_xent::cpu::forward_backward(&spec, &z, &labels);
        let mut c = Check::new(
            gpu,
            format!("softmax_xent {n}x{classes} smoothing {smoothing} mixed {mixed} ({seed})"),
        );
        let tz = c.input("logits", &[n, classes], &z);
        let tl = GpuTensor::from_u32(gpu, "labels", &spec.labels_shape(), &labels).unwrap();
        let (tloss, tdz) = (
            c.output("loss", &[1], vec![loss], 1e-5),
            c.output("dlogits", &[n, classes], dz, 1e-5),
        );
        c.run([softmax_xent::forward_backward(gpu, &spec, &tz, &tl, &tloss, &tdz)]);
    }
}

#[test]
fn dropout_matches_reference_bit_for_bit() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("dropout");
    let n = 100_003;
    let cases = [
        (0.8, true, Granularity::Element, 7, 0),
        (0.5, false, Granularity::Element, u64::MAX - 3, 9),
        (0.75, true, Granularity::Sample { per_sample: 1 }, 1 << 40, 1),
    ];
    let (step, pass) = (17, 2);
    let info = StepInfo {
        step,
        pass_index: pass,
        ..Default::default()
    };
    let info = step_info::tensor(gpu, info).unwrap();
    for (keep, rescale, granularity, mask_seed, stream) in cases {
        let spec = Dropout {
            keep,
            rescale,
            granularity,
            seed: mask_seed,
            stream,
        };
        let x = normal(&mut rng, n, 1.0);
        let want = dropout::cpu::apply(&spec, step, pass, &x);
        // A new step or pass draws a new mask.
        let next = dropout::cpu::apply(&spec, step + 1, pass, &x);
        let other = dropout::cpu::apply(&spec, step, pass + 1, &x);
        let differs = |a: &[f64], b: &[f64]| a.iter().zip(b).filter(|(x, y)| (**x == 0.0) != (**y == 0.0)).count() > n / 100;
        assert!(
            differs(&want, &next) && differs(&want, &other),
            "masks must change with the step and pass"
        );
        let name = format!("dropout {spec:?} ({seed})");
        let mut c = Check::new(gpu, &name);
        let tx = c.input("x", &[n], &x);
        let ty = c.output("y", &[n], want.clone(), 1e-6);
        c.run([dropout::apply(gpu, &spec, &info, &tx, &ty)]);
        // The mask must match exactly: every zero where the reference has a zero.
        let got = crate::support::read(gpu, &ty);
        let mismatched = got.iter().zip(&want).filter(|(g, w)| (**g == 0.0) != (**w == 0.0)).count();
        assert_eq!(mismatched, 0, "{name}: masks differ in {mismatched} places");
        // And the kept fraction is keep, within 5 standard deviations.
        let kept = want.iter().filter(|v| **v != 0.0).count() as f64 / n as f64;
        let sd = (keep as f64 * (1.0 - keep as f64) / n as f64).sqrt();
        assert!((kept - keep as f64).abs() < 5.0 * sd, "{name}: kept {kept}, expected {keep}");
    }
    // Drop path: one mask per sample of 3*5*7 elements.
    let spec = Dropout {
        keep: 0.6,
        rescale: false,
        granularity: Granularity::Sample { per_sample: 105 },
        seed: 3,
        stream: 4,
    };
    let x = normal(&mut rng, 64 * 105, 1.0);
    let mut c = Check::new(gpu, format!("drop path ({seed})"));
    let tx = c.input("x", &[64, 3, 5, 7], &x);
    let ty = c.output("y", &[64, 3, 5, 7], dropout::cpu::apply(&spec, step, pass, &x), 1e-6);
    c.run([dropout::apply(gpu, &spec, &info, &tx, &ty)]);
    for sample in crate::support::read(gpu, &ty).chunks(105) {
        let zeros = sample.iter().filter(|v| **v == 0.0).count();
        assert!(zeros == 0 || zeros == 105, "drop path dropped part of a sample");
    }
}

/// `sgd_update` and `sgd_agc_update` (the same update after clipping) on the same parameters,
/// the latter summing the unit norms itself and taking them given (as a standardized conv
/// weight's update does: the mean and variance of w, the squared norms of g).
#[test]
fn sgd_updates_match_reference() {
    let (mut rng, seed) = rng("sgd_update");
    // Units of 36 (whole 4-element chunks), 130 (a tail of 2), 1 (gains: one lane per unit,
    // 37 of them over several workgroups), whole tensors, and 1602 (too long for a CPU
    // adapter's 8 lanes to keep between the norms' pass and the update's).
    let shapes: [&[usize]; 6] = [&[6, 4, 3, 3], &[70, 130], &[37, 1, 1, 1], &[301], &[], &[3, 1602]];
    for gpu in reduce_width_gpus() {
        let info = step_info::tensor(
            gpu,
            StepInfo {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        for (shape, nesterov) in shapes.into_iter().zip([true, true, false, true, false, true]) {
            let numel = shape.iter().product::<usize>();
            let spec = Agc::for_shape(shape, 0.01, 1e-3);
            let sgd = Sgd {
                momentum: 0.9,
                weight_decay: 2e-5,
                nesterov,
            };
            // Gradients spanning norms far below and far above the clipping threshold, so both
            // branches run; a zero weight unit exercises the eps floor.
            let mut g: Vec<f64> = Vec::with_capacity(numel);
            for u in 0..spec.units {
                let scale = [1e-4, 1e-2, 1.0][u % 3];
                g.extend(normal(&mut rng, spec.unit_len, scale));
            }
            let mut w = normal(&mut rng, numel, 1.0);
            w[..spec.unit_len].iter_mut().for_each(|v| *v = 0.0);
            let b = normal(&mut rng, numel, 1.0);
            let case = format!("{shape:?} nesterov {nesterov}, {} lanes ({seed})", gpu.reduce_lanes());
            // The given norms: each unit's mean (as its offset from the unit's first value, as
            // weight_std_forward keeps it) and variance of w, and squared norm of g.
            let mut stats = Vec::with_capacity(2 * spec.units);
            for u in w.chunks(spec.unit_len) {
                let mean = u.iter().sum::<f64>() / u.len() as f64;
                stats.extend([mean - u[0], u.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / u.len() as f64]);
            }
            let g_sq: Vec<f64> = g.chunks(spec.unit_len).map(|u| u.iter().map(|v| v * v).sum()).collect();
            for (clip, given) in [(false, false), (true, false), (true, true)] {
                let g_used = if clip { agc::cpu::clip(&spec, &w, &g) } else { g.clone() };
                let (w2, b2) = sgd::cpu::update(&sgd, 0.1f32 as f64, &g_used, &w, &b);
                let kernel = if clip { "sgd_agc_update" } else { "sgd_update" };
                let mut c = Check::new(gpu, format!("{kernel}{} {case}", if given { " (norms given)" } else { "" }));
                let (tstats, tg_sq) = (c.input("stats", &[spec.units, 2], &stats), c.input("g_sq", &[spec.units], &g_sq));
                // g is read and must stay as it was: an output that starts and ends as g.
                let tg = c.in_place("g", shape, &g, round_f32(&g), 0.0);
                let (tw, tb) = (c.in_place("w", shape, &w, w2, 1e-6), c.in_place("buf", shape, &b, b2, 1e-6));
                let norms = given.then_some((&tstats, &tg_sq));
                c.run([match clip {
                    true => sgd::agc_update(gpu, &spec, &sgd, &info, &tg, &tw, &tb, norms),
                    false => sgd::update(gpu, &sgd, &info, &tg, &tw, &tb),
                }]);
            }
        }
    }
}

#[test]
fn ema_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("ema");
    let n = 1001;
    // TF1's warm-up: the decay grows from 0.1 towards its maximum.
    assert_eq!(ema::decay(0.99999, 0), 0.1);
    assert_eq!(ema::decay(0.5, 1000), 0.5);
    let decay = ema::decay(0.9999, 12);
    let info = StepInfo {
        ema_decay: decay,
        ..Default::default()
    };
    let info = step_info::tensor(gpu, info).unwrap();
    let (w, e) = (normal(&mut rng, n, 1.0), normal(&mut rng, n, 1.0));
    let mut c = Check::new(gpu, format!("ema ({seed})"));
    let tw = c.input("w", &[n], &w);
    let te = c.in_place("ema", &[n], &e, ema::cpu::update(decay as f64, &w, &e), 1e-6);
    c.run([ema::update(gpu, &info, &tw, &te)]);
}

#[test]
fn grad_accumulate_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("grad_accumulate");
    let n = 1001;
    let (g, acc) = (normal(&mut rng, n, 1.0), normal(&mut rng, n, 1.0));
    for micro in [0, 2] {
        let info = step_info::tensor(
            gpu,
            StepInfo {
                micro,
                ..Default::default()
            },
        )
        .unwrap();
        let want = grad_accumulate::cpu::accumulate(micro, 0.25, &g, &acc);
        let mut c = Check::new(gpu, format!("grad_accumulate micro {micro} ({seed})"));
        let tg = c.input("g", &[n], &g);
        // The first micro-batch overwrites: its sum starts poisoned.
        let tacc = match micro {
            0 => c.output("acc", &[n], want, 1e-6),
            _ => c.in_place("acc", &[n], &acc, want, 1e-6),
        };
        c.run([grad_accumulate::accumulate(gpu, 0.25, &info, &tg, &tacc)]);
    }
}

/// The self-check the browser test page runs (`ops::selfcheck`), here on this adapter: every
/// kernel of the table covered and within its tolerance.
#[test]
fn selfcheck_covers_every_kernel_and_passes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let rows = pollster::block_on(nfnet::ops::selfcheck::run(gpu));
    assert_eq!(rows.len(), nfnet::gpu::Kernel::ALL.len(), "one row per kernel");
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{}: max abs {:.2e}, rel L2 {:.2e}, {}", r.name, r.max_abs, r.rel_l2, r.note))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
