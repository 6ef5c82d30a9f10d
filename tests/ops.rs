//! GPU kernels against the f64 references. Inputs are fresh seeded random data each run (the
//! seed is in every failure message; `NFNET_TEST_SEED` replays it); every output buffer starts
//! as NaN, so an element a kernel fails to write cannot pass. Tolerance: relative L2 1e-5, or
//! 1e-4 for results that sum more than 10^5 terms.

use nfnet::gpu::GpuTensor;
use nfnet::ops::agc::{self, Agc};
use nfnet::ops::avg_pool::{self, AvgPool};
use nfnet::ops::dropout::{self, Dropout, Granularity};
use nfnet::ops::ema;
use nfnet::ops::global_pool::{self, GlobalPool};
use nfnet::ops::grouped_conv::{self, Packing, Prologue};
use nfnet::ops::linear::{self, Linear};
use nfnet::ops::residual::{self, Residual};
use nfnet::ops::scaled_act::{self, Activation, ScaledAct};
use nfnet::ops::se_gate::{self, SeGate};
use nfnet::ops::se_residual::{self, SeResidual};
use nfnet::ops::sgd::{self, Sgd};
use nfnet::ops::softmax_xent::{self, SoftmaxXent};
use nfnet::ops::step_info::{self, StepInfo};
use nfnet::ops::weight_std::{self, WeightStd, WsForm};
use nfnet::testing::{check, conv_cases, gpu_or_skip, poisoned, read, reduce_width_gpus, round_f32, tol_for_terms, upload, Rng};

/// A seeded source and its seed, for the failure message.
fn rng(test: &str) -> (Rng, String) {
    let seed = Rng::fresh_seed();
    let salt = test.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    (Rng::new(seed ^ salt), format!("NFNET_TEST_SEED={seed}"))
}

fn normal(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    round_f32(&rng.normal(n).iter().map(|v| v * scale).collect::<Vec<_>>())
}

#[test]
fn grouped_conv_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("grouped_conv");
    for case in conv_cases() {
        let s = case.spec;
        let fan = s.w_shape()[1..].iter().product::<usize>();
        let x = normal(&mut rng, s.x_shape().iter().product(), 1.0);
        let w = normal(&mut rng, s.w_shape().iter().product(), 1.0 / (fan as f64).sqrt());
        let b = normal(&mut rng, s.k, 1.0);
        let dy = normal(&mut rng, s.y_shape().iter().product(), 1.0);
        let old_dx = normal(&mut rng, s.x_shape().iter().product(), 1.0);
        let bias = s.bias.then_some(b.as_slice());
        let name = format!("{} ({seed})", case.name);

        let tx = upload(gpu, "x", &s.x_shape(), &x);
        let tw = upload(gpu, "w", &s.w_shape(), &w);
        let tb = s.bias.then(|| upload(gpu, "b", &[s.k], &b));
        let tdy = upload(gpu, "dy", &s.y_shape(), &dy);
        let ty = poisoned(gpu, "y", &s.y_shape());
        let tdx = poisoned(gpu, "dx", &s.x_shape());
        let tdx_acc = upload(gpu, "dx accumulated", &s.x_shape(), &old_dx);
        let tdw = poisoned(gpu, "dw", &s.w_shape());
        let tdb = s.bias.then(|| poisoned(gpu, "db", &[s.k]));

        let fwd = grouped_conv::forward(gpu, &s, &tx, &tw, tb.as_ref(), &ty).unwrap();
        let bwd_in = grouped_conv::backward_input(gpu, &s, &tdy, &tw, &tdx, false).unwrap();
        let bwd_acc = grouped_conv::backward_input(gpu, &s, &tdy, &tw, &tdx_acc, true).unwrap();
        let bwd_w = grouped_conv::backward_weight(gpu, &s, &tx, &tdy, &tdw, tdb.as_ref()).unwrap();
        gpu.run(&[&fwd, &bwd_in, &bwd_acc, &bwd_w]).unwrap();

        let (p, q) = s.out_hw();
        check(
            &format!("{name} forward"),
            &read(gpu, &ty),
            &grouped_conv::cpu::forward(&s, &x, &w, bias),
            tol_for_terms(fan),
        );
        let want_dx = grouped_conv::cpu::backward_input(&s, &dy, &w);
        check(
            &format!("{name} backward_input"),
            &read(gpu, &tdx),
            &want_dx,
            tol_for_terms(s.k / s.groups * s.r * s.s),
        );
        let want_acc: Vec<f64> = want_dx.iter().zip(&old_dx).map(|(a, b)| a + b).collect();
        check(&format!("{name} backward_input accumulate"), &read(gpu, &tdx_acc), &want_acc, 1e-5);
        let (want_dw, want_db) = grouped_conv::cpu::backward_weight(&s, &x, &dy);
        check(
            &format!("{name} backward_weight"),
            &read(gpu, &tdw),
            &want_dw,
            tol_for_terms(s.n * p * q),
        );
        if let Some(tdb) = &tdb {
            check(
                &format!("{name} backward_bias"),
                &read(gpu, tdb),
                &want_db,
                tol_for_terms(s.n * p * q),
            );
        }
    }
}

/// The register tiles the autotuner may pick, of the buffer kernels and of the `_textured`
/// kernels (weights and activations as texels, activations packed by the caller or by the
/// launch), give bitwise the default buffer kernel's output: tiles and storage change which
/// invocation computes what, never the order of a sum. The default itself is checked against
/// the reference above. Each case runs every kernel's default tile and one other, in turn, so
/// that the cases together cover every candidate without compiling each one for every case.
#[test]
fn grouped_conv_tiles_and_textured_kernels_agree_bitwise() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("grouped_conv_tiles");
    let some = |tiles: Vec<grouped_conv::Tile>, i: usize| {
        let other = tiles.get(1 + i % (tiles.len() - 1).max(1)).copied();
        std::iter::once(tiles[0]).chain(other).collect::<Vec<_>>()
    };
    for (i, case) in conv_cases().into_iter().enumerate() {
        let s = case.spec;
        let x = upload(gpu, "x", &s.x_shape(), &normal(&mut rng, s.x_shape().iter().product(), 1.0));
        let w = upload(gpu, "w", &s.w_shape(), &normal(&mut rng, s.w_shape().iter().product(), 0.3));
        let b = s.bias.then(|| upload(gpu, "b", &[s.k], &normal(&mut rng, s.k, 1.0)));
        let dy = upload(gpu, "dy", &s.y_shape(), &normal(&mut rng, s.y_shape().iter().product(), 1.0));
        let bits = |t: &GpuTensor| t.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let packed = |packing, texture: bool| {
            let len = grouped_conv::packed_len(&s, packing);
            let t = match texture {
                true => GpuTensor::texture(gpu, "packed", &[len]).unwrap(),
                false => GpuTensor::zeros(gpu, "packed", &[len]).unwrap(),
            };
            gpu.run(&[&grouped_conv::pack_weight(gpu, &s, &w, &t, packing).unwrap()]).unwrap();
            t
        };
        let texels = |t: &GpuTensor, shape: [usize; 4]| {
            let packed = GpuTensor::texture(gpu, "texels", &grouped_conv::packed_activation_shape(shape, s.groups)).unwrap();
            gpu.run(&[&grouped_conv::pack_activation(gpu, s.groups, t, Prologue::None, None, &packed).unwrap()])
                .unwrap();
            packed
        };
        let (x_texels, dy_texels) = (texels(&x, s.x_shape()), texels(&dy, s.y_shape()));
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
        for texture in [false, true] {
            let (out, inp) = (packed(Packing::OutputInner, texture), packed(Packing::InputInner, texture));
            // The textured forward reads x packed by the caller, the textured input gradient
            // packs its buffer dy itself.
            let x_in = if texture { &x_texels } else { &x };
            for tile in some(grouped_conv::forward_tiles(&s, texture), i) {
                let y = poisoned(gpu, "y", &s.y_shape());
                gpu.run(&[&grouped_conv::forward_tiled(gpu, &s, x_in, &out, b.as_ref(), &y, tile).unwrap()])
                    .unwrap();
                agree(0, format!("forward {tile} texture={texture}"), bits(&y));
            }
            for tile in some(grouped_conv::backward_input_tiles(&s, texture), i) {
                let dx = poisoned(gpu, "dx", &s.x_shape());
                gpu.run(&[&grouped_conv::backward_input_tiled(gpu, &s, &dy, &inp, &dx, false, tile).unwrap()])
                    .unwrap();
                agree(1, format!("backward_input {tile} texture={texture}"), bits(&dx));
            }
            let dx = upload(gpu, "dx accumulated", &s.x_shape(), &old_dx);
            let dy_in = if texture { &dy_texels } else { &dy };
            gpu.run(&[&grouped_conv::backward_input_packed(gpu, &s, dy_in, &inp, &dx, true).unwrap()])
                .unwrap();
            agree(2, format!("backward_input accumulate texture={texture}"), bits(&dx));
            // The textured weight gradient with x packed by the caller and dy by the launch.
            for tile in some(grouped_conv::backward_weight_tiles(&s, texture), i) {
                let (dw, db) = (poisoned(gpu, "dw", &s.w_shape()), poisoned(gpu, "db", &[s.k]));
                let part = grouped_conv::partials_shape(&gpu.limits, &s).map(|shape| GpuTensor::zeros(gpu, "partials", &shape).unwrap());
                let launch =
                    grouped_conv::backward_weight_tiled(gpu, &s, x_in, &dy, &dw, s.bias.then_some(&db), part.as_ref(), tile).unwrap();
                gpu.run(&[&launch]).unwrap();
                agree(3, format!("backward_weight {tile} texture={texture}"), bits(&dw));
                if s.bias {
                    agree(4, format!("backward_bias {tile} texture={texture}"), bits(&db));
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
        for texture in [false, true] {
            let out = |packing| {
                let len = [grouped_conv::packed_len(&s, packing)];
                match texture {
                    true => GpuTensor::texture(gpu, "packed", &len).unwrap(),
                    false => poisoned(gpu, "packed", &len),
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
            let bits = |t: &GpuTensor| t.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for (what, a, b) in [("output-inner", &oi, &oi_pair), ("input-inner", &ii, &ii_pair)] {
                let (want, got) = (bits(a), bits(b));
                let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{} {what} texture={texture} ({seed}): {differ} floats differ", case.name);
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

/// The autotuner on a context of its own: it times the candidates of a conv, keeps the result
/// bitwise equal to the untuned kernel's, records its choices and caches them on disk.
#[test]
fn autotuned_conv_agrees_with_default_and_is_cached() {
    let Some(plain) = gpu_or_skip() else { return };
    let dir = std::env::temp_dir().join(format!("nfnet-autotune-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Set before the tuner first reads its cache (no other test tunes).
    std::env::set_var("NFNET_CACHE_DIR", &dir);
    let tuned = nfnet::Gpu::with_options(&nfnet::GpuOptions {
        autotune: Some(true),
        ..Default::default()
    })
    .unwrap();
    let (mut rng, seed) = rng("autotune");
    let s = grouped_conv::Conv2d {
        n: 2,
        c: 64,
        h: 7,
        w: 9,
        k: 64,
        r: 3,
        s: 3,
        groups: 2,
        stride: (1, 1),
        pad: grouped_conv::Padding::symmetric(3, 3, (1, 1)),
        bias: true,
    };
    let data = [
        normal(&mut rng, s.x_shape().iter().product(), 1.0),
        normal(&mut rng, s.w_shape().iter().product(), 0.1),
        normal(&mut rng, s.k, 1.0),
    ];
    let run = |gpu: &nfnet::Gpu| {
        let (x, w, b) = (
            upload(gpu, "x", &s.x_shape(), &data[0]),
            upload(gpu, "w", &s.w_shape(), &data[1]),
            upload(gpu, "b", &[s.k], &data[2]),
        );
        let y = poisoned(gpu, "y", &s.y_shape());
        gpu.run(&[&grouped_conv::forward(gpu, &s, &x, &w, Some(&b), &y).unwrap()]).unwrap();
        y.read_f32(gpu).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(run(&tuned), run(plain), "tuned and default forward differ ({seed})");
    let choices = nfnet::tune::choices();
    assert!(
        choices
            .iter()
            .any(|c| c.name.starts_with("grouped_conv_forward") && c.source == "timed"),
        "no timed forward choice recorded: {choices:?}"
    );
    let cache = std::fs::read_to_string(dir.join("autotune.json")).expect("the tuner writes its cache");
    assert!(
        cache.contains("grouped_conv_forward"),
        "cache without the forward's choice: {cache}"
    );
    let _ = std::fs::remove_dir_all(&dir);
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
            let name = format!(
                "weight_std {form:?} {k}x{fan} x{scale} + {offset}, {} lanes ({seed})",
                gpu.reduce_lanes()
            );
            let w: Vec<f64> = normal(&mut rng, k * fan, scale).iter().map(|v| v + offset).collect();
            let gain = normal(&mut rng, k, 1.0);
            let dwhat = normal(&mut rng, k * fan, 1.0);
            let (tw, tgain, tdwhat) = (
                upload(gpu, "w", &[k, fan], &w),
                upload(gpu, "gain", &[k, 1, 1, 1], &gain),
                upload(gpu, "dw_hat", &[k, fan], &dwhat),
            );
            let (twhat, tstats, tdw, tdgain, tdwsq) = (
                poisoned(gpu, "w_hat", &[k, fan]),
                poisoned(gpu, "stats", &[k, 2]),
                poisoned(gpu, "dw", &[k, fan]),
                poisoned(gpu, "dgain", &[k]),
                poisoned(gpu, "dw_sq", &[k]),
            );
            let fwd = weight_std::forward(gpu, &spec, &tw, &tgain, &twhat, &tstats).unwrap();
            let bwd = weight_std::backward(gpu, &spec, &tw, &tgain, &tstats, &tdwhat, &tdw, &tdgain, &tdwsq).unwrap();
            gpu.run(&[&fwd, &bwd]).unwrap();
            check(
                &format!("{name} forward"),
                &read(gpu, &twhat),
                &weight_std::cpu::forward(&spec, &w, &gain),
                1e-5,
            );
            let (dw, dgain) = weight_std::cpu::backward(&spec, &w, &gain, &dwhat);
            if fan > 1 {
                check(&format!("{name} dw"), &read(gpu, &tdw), &dw, 1e-5);
                check(&format!("{name} dgain"), &read(gpu, &tdgain), &dgain, 1e-5);
                let dw_sq: Vec<f64> = dw.chunks(fan).map(|u| u.iter().map(|v| v * v).sum()).collect();
                check(&format!("{name} dw_sq"), &read(gpu, &tdwsq), &dw_sq, 1e-5);
            } else {
                // A unit of one element standardizes to 0 whatever w and gain are: the gradients vanish.
                assert!(
                    read(gpu, &tdw)
                        .iter()
                        .chain(&read(gpu, &tdgain))
                        .chain(&read(gpu, &tdwsq))
                        .all(|v| *v == 0.0),
                    "{name}: gradients of a constant"
                );
            }
        }
    }
}

#[test]
fn scaled_act_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("scaled_act");
    let n = 1000; // not a multiple of the workgroup size
    for act in [
        Activation::Identity,
        Activation::Relu,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
    ] {
        let spec = ScaledAct {
            act,
            gamma: act.nfnet_gamma(),
        };
        let x = normal(&mut rng, n, 3.0);
        let dy = normal(&mut rng, n, 1.0);
        let old = normal(&mut rng, n, 1.0);
        let (tx, tdy, tacc) = (
            upload(gpu, "x", &[n], &x),
            upload(gpu, "dy", &[n], &dy),
            upload(gpu, "dx acc", &[n], &old),
        );
        let (ty, tdx) = (poisoned(gpu, "y", &[n]), poisoned(gpu, "dx", &[n]));
        let launches = [
            scaled_act::forward(gpu, &spec, &tx, &ty).unwrap(),
            scaled_act::backward(gpu, &spec, &tx, &tdy, &tdx, false).unwrap(),
            scaled_act::backward(gpu, &spec, &tx, &tdy, &tacc, true).unwrap(),
        ];
        gpu.run(&launches.iter().collect::<Vec<_>>()).unwrap();
        let name = format!("scaled_act {act:?} ({seed})");
        check(
            &format!("{name} forward"),
            &read(gpu, &ty),
            &scaled_act::cpu::forward(&spec, &x),
            1e-5,
        );
        let dx = scaled_act::cpu::backward(&spec, &x, &dy);
        check(&format!("{name} backward"), &read(gpu, &tdx), &dx, 1e-5);
        let acc: Vec<f64> = dx.iter().zip(&old).map(|(a, b)| a + b).collect();
        check(&format!("{name} backward accumulate"), &read(gpu, &tacc), &acc, 1e-5);
        // The conv packing's prologues: packing x with the activation applied gives exactly the
        // texels of the activation's output, and packing dy with its backward applied the
        // texels of the activation's input gradient (odd group width: 5 channels, 2 texels).
        let (shape, groups) = ([2, 10, 5, 7], 2);
        let texel_shape = grouped_conv::packed_activation_shape(shape, groups);
        let numel = shape.iter().product();
        let (x4, dy4) = (
            upload(gpu, "x", &shape, &normal(&mut rng, numel, 3.0)),
            upload(gpu, "dy", &shape, &normal(&mut rng, numel, 1.0)),
        );
        let (a, dx4) = (poisoned(gpu, "a", &shape), poisoned(gpu, "dx", &shape));
        let texels = |label: &str| GpuTensor::texture(gpu, label, &texel_shape).unwrap();
        let (fused, two_pass, fused_grad, two_pass_grad) = (texels("a fused"), texels("a"), texels("dx fused"), texels("dx"));
        let launches = [
            grouped_conv::pack_activation(gpu, groups, &x4, Prologue::Act(spec), None, &fused).unwrap(),
            scaled_act::forward(gpu, &spec, &x4, &a).unwrap(),
            grouped_conv::pack_activation(gpu, groups, &a, Prologue::None, None, &two_pass).unwrap(),
            grouped_conv::pack_activation(gpu, groups, &dy4, Prologue::ActBackward(spec), Some(&x4), &fused_grad).unwrap(),
            scaled_act::backward(gpu, &spec, &x4, &dy4, &dx4, false).unwrap(),
            grouped_conv::pack_activation(gpu, groups, &dx4, Prologue::None, None, &two_pass_grad).unwrap(),
        ];
        gpu.run(&launches.iter().collect::<Vec<_>>()).unwrap();
        // Equal as floats: a derivative that underflows to zero may carry either sign of zero
        // as the compiler folds it in one kernel or the other (the value is the same).
        for (what, got, want) in [("forward", &fused, &two_pass), ("backward", &fused_grad, &two_pass_grad)] {
            let (got, want) = (got.read_f32(gpu).unwrap(), want.read_f32(gpu).unwrap());
            let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ, 0,
                "{name} packing {what} prologue: {differ} texel floats differ from two passes"
            );
        }
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
        let (tx, tdy, tacc) = (
            upload(gpu, "x", &xs, &x),
            upload(gpu, "dy", &ys, &dy),
            upload(gpu, "dx acc", &xs, &old),
        );
        let (ty, tdx) = (poisoned(gpu, "y", &ys), poisoned(gpu, "dx", &xs));
        let l = [
            avg_pool::forward(gpu, &spec, &tx, &ty).unwrap(),
            avg_pool::backward(gpu, &spec, &tdy, &tdx, false).unwrap(),
            avg_pool::backward(gpu, &spec, &tdy, &tacc, true).unwrap(),
        ];
        gpu.run(&l.iter().collect::<Vec<_>>()).unwrap();
        let name = format!("avg_pool {xs:?} ({seed})");
        check(
            &format!("{name} forward"),
            &read(gpu, &ty),
            &avg_pool::cpu::forward(&spec, &x),
            1e-5,
        );
        let dx = avg_pool::cpu::backward(&spec, &dy);
        check(&format!("{name} backward"), &read(gpu, &tdx), &dx, 1e-5);
        let acc: Vec<f64> = dx.iter().zip(&old).map(|(a, b)| a + b).collect();
        check(&format!("{name} backward accumulate"), &read(gpu, &tacc), &acc, 1e-5);
    }
    for spec in [
        GlobalPool { n: 2, c: 5, h: 3, w: 7 },
        GlobalPool { n: 3, c: 70, h: 1, w: 1 },
        GlobalPool { n: 1, c: 3, h: 17, w: 19 },
    ] {
        let xs = spec.x_shape();
        let x = normal(&mut rng, xs.iter().product(), 1.0);
        let dy = normal(&mut rng, spec.n * spec.c, 1.0);
        let (tx, tdy) = (upload(gpu, "x", &xs, &x), upload(gpu, "dy", &[spec.n, spec.c], &dy));
        let (ty, tdx) = (poisoned(gpu, "y", &[spec.n, spec.c]), poisoned(gpu, "dx", &xs));
        let l = [
            global_pool::forward(gpu, &spec, &tx, &ty).unwrap(),
            global_pool::backward(gpu, &spec, &tdy, &tdx, false).unwrap(),
        ];
        gpu.run(&l.iter().collect::<Vec<_>>()).unwrap();
        let name = format!("global_pool {xs:?} ({seed})");
        check(
            &format!("{name} forward"),
            &read(gpu, &ty),
            &global_pool::cpu::forward(&spec, &x),
            1e-5,
        );
        check(
            &format!("{name} backward"),
            &read(gpu, &tdx),
            &global_pool::cpu::backward(&spec, &dy),
            1e-5,
        );
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
            let (ts, tr, tsc, tdy) = (
                upload(gpu, "s", &[gate.n, gate.c], &s),
                upload(gpu, "r", &rs, &r),
                upload(gpu, "shortcut", &rs, &sc),
                upload(gpu, "dy", &rs, &dy),
            );
            let tdr = if accumulate {
                upload(gpu, "dr", &rs, &old)
            } else {
                poisoned(gpu, "dr", &rs)
            };
            let tgain = upload(gpu, "skip gain", &[], &[gain]);
            let (ty, tds, tdgain) = (
                poisoned(gpu, "y", &rs),
                poisoned(gpu, "ds", &[gate.n, gate.c]),
                poisoned(gpu, "dgain", &[]),
            );
            let l = [
                se_residual::forward(gpu, &spec, &ts, &tr, &tsc, with_gain.then_some(&tgain), &ty).unwrap(),
                se_residual::backward(
                    gpu,
                    &spec,
                    &tdy,
                    &ts,
                    &tr,
                    with_gain.then_some((&tgain, &tdgain)),
                    &tdr,
                    &tds,
                    accumulate,
                )
                .unwrap(),
            ];
            gpu.run(&l.iter().collect::<Vec<_>>()).unwrap();
            let name = format!("se_residual {rs:?} gain {with_gain}, {} lanes ({seed})", gpu.reduce_lanes());
            let g = with_gain.then_some(gain);
            check(
                &format!("{name} forward"),
                &read(gpu, &ty),
                &se_residual::cpu::forward(&spec, &s, &r, &sc, g),
                1e-5,
            );
            let (dr, ds, dgain) = se_residual::cpu::backward(&spec, &dy, &s, &r, g);
            let dr: Vec<f64> = match accumulate {
                true => dr.iter().zip(&old).map(|(a, b)| a + b).collect(),
                false => dr,
            };
            check(&format!("{name} dr (accumulate {accumulate})"), &read(gpu, &tdr), &dr, 1e-5);
            check(&format!("{name} ds"), &read(gpu, &tds), &ds, 1e-5);
            if with_gain {
                check(&format!("{name} dgain"), &read(gpu, &tdgain), &[dgain], 1e-5);
            }
        }
    }
}

#[test]
fn se_gate_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("se_gate");
    for spec in [
        SeGate {
            n: 2,
            c: 5,
            h: 3,
            w: 7,
            gain: 2.0,
        },
        SeGate {
            n: 3,
            c: 70,
            h: 1,
            w: 1,
            gain: 2.0,
        },
    ] {
        let rs = spec.r_shape();
        let len = rs.iter().product();
        let s = normal(&mut rng, spec.n * spec.c, 2.0);
        let r = normal(&mut rng, len, 1.0);
        let dy = normal(&mut rng, len, 1.0);
        let old = normal(&mut rng, len, 1.0);
        let (ts, tr, tdy, tdr) = (
            upload(gpu, "s", &[spec.n, spec.c], &s),
            upload(gpu, "r", &rs, &r),
            upload(gpu, "dy", &rs, &dy),
            upload(gpu, "dr", &rs, &old),
        );
        let (ty, tds) = (poisoned(gpu, "y", &rs), poisoned(gpu, "ds", &[spec.n, spec.c]));
        let l = [
            se_gate::forward(gpu, &spec, &ts, &tr, &ty).unwrap(),
            se_gate::backward(gpu, &spec, &ts, &tr, &tdy, &tdr, &tds, true).unwrap(),
        ];
        gpu.run(&l.iter().collect::<Vec<_>>()).unwrap();
        let name = format!("se_gate {rs:?} ({seed})");
        check(
            &format!("{name} forward"),
            &read(gpu, &ty),
            &se_gate::cpu::forward(&spec, &s, &r),
            1e-5,
        );
        let (dr, ds) = se_gate::cpu::backward(&spec, &s, &r, &dy);
        let dr_acc: Vec<f64> = dr.iter().zip(&old).map(|(a, b)| a + b).collect();
        check(&format!("{name} dr (accumulated)"), &read(gpu, &tdr), &dr_acc, 1e-5);
        check(&format!("{name} ds"), &read(gpu, &tds), &ds, 1e-5);
    }
}

#[test]
fn residual_matches_reference() {
    for gpu in reduce_width_gpus() {
        let (mut rng, seed) = rng("residual");
        for (len, with_gain) in [(3001, true), (70, false), (1, true)] {
            let spec = Residual { alpha: 0.2 };
            let r = normal(&mut rng, len, 1.0);
            let sc = normal(&mut rng, len, 1.0);
            // dgain is one sum of len products: with dy independent of r it cancels to a small
            // number whose f32 rounding, not the kernel, sets the relative error. A dy that leans on
            // r (a loss that wants the branch larger, as in training) keeps the sum well-conditioned.
            let noise = normal(&mut rng, len, 1.0);
            let dy: Vec<f64> = round_f32(&r.iter().zip(&noise).map(|(r, n)| 0.5 * r + n).collect::<Vec<_>>());
            let gain = round_f32(&[0.37])[0];
            let (tr, tsc, tdy) = (
                upload(gpu, "r", &[len], &r),
                upload(gpu, "shortcut", &[len], &sc),
                upload(gpu, "dy", &[len], &dy),
            );
            let tgain = upload(gpu, "skip gain", &[], &[gain]);
            let (ty, tdr, tdgain) = (poisoned(gpu, "y", &[len]), poisoned(gpu, "dr", &[len]), poisoned(gpu, "dgain", &[]));
            let g = with_gain.then_some(&tgain);
            let l = [
                residual::forward(gpu, &spec, &tr, &tsc, g, &ty).unwrap(),
                residual::backward(gpu, &spec, &tdy, &tr, with_gain.then_some((&tgain, &tdgain)), &tdr).unwrap(),
            ];
            gpu.run(&l.iter().collect::<Vec<_>>()).unwrap();
            let name = format!("residual len {len} gain {with_gain}, {} lanes ({seed})", gpu.reduce_lanes());
            let gain = with_gain.then_some(gain);
            check(
                &format!("{name} forward"),
                &read(gpu, &ty),
                &residual::cpu::forward(&spec, &r, &sc, gain),
                1e-5,
            );
            let (dr, _, dgain) = residual::cpu::backward(&spec, &dy, &r, gain);
            check(&format!("{name} dr"), &read(gpu, &tdr), &dr, 1e-5);
            if with_gain {
                check(&format!("{name} dgain"), &read(gpu, &tdgain), &[dgain], 1e-5);
            }
        }
    }
}

#[test]
fn linear_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("linear");
    let cases = [
        Linear {
            n: 5,
            in_features: 70,
            out_features: 33,
            bias: true,
        },
        Linear {
            n: 1,
            in_features: 3,
            out_features: 1000,
            bias: true,
        },
        Linear {
            n: 9,
            in_features: 17,
            out_features: 5,
            bias: false,
        },
        // More columns (with the bias's) than one weight-gradient workgroup covers (8 x 64),
        // rows not a multiple of its 16.
        Linear {
            n: 8,
            in_features: 530,
            out_features: 21,
            bias: true,
        },
    ];
    for spec in cases {
        let (n, i, o) = (spec.n, spec.in_features, spec.out_features);
        let x = normal(&mut rng, n * i, 1.0);
        let w = normal(&mut rng, o * i, 1.0 / (i as f64).sqrt());
        let b = normal(&mut rng, o, 1.0);
        let dy = normal(&mut rng, n * o, 1.0);
        let old = normal(&mut rng, n * i, 1.0);
        let (tx, tw, tdy, tacc) = (
            upload(gpu, "x", &[n, i], &x),
            upload(gpu, "w", &[o, i], &w),
            upload(gpu, "dy", &[n, o], &dy),
            upload(gpu, "dx acc", &[n, i], &old),
        );
        let tb = spec.bias.then(|| upload(gpu, "b", &[o], &b));
        let (ty, tdx, tdw) = (
            poisoned(gpu, "y", &[n, o]),
            poisoned(gpu, "dx", &[n, i]),
            poisoned(gpu, "dw", &[o, i]),
        );
        let tdb = spec.bias.then(|| poisoned(gpu, "db", &[o]));
        let l = [
            linear::forward(gpu, &spec, &tx, &tw, tb.as_ref(), &ty).unwrap(),
            linear::backward_input(gpu, &spec, &tdy, &tw, &tdx, false).unwrap(),
            linear::backward_input(gpu, &spec, &tdy, &tw, &tacc, true).unwrap(),
            linear::backward_weight(gpu, &spec, &tx, &tdy, &tdw, tdb.as_ref()).unwrap(),
        ];
        gpu.run(&l.iter().collect::<Vec<_>>()).unwrap();
        let name = format!("linear {spec:?} ({seed})");
        check(
            &format!("{name} forward"),
            &read(gpu, &ty),
            &linear::cpu::forward(&spec, &x, &w, spec.bias.then_some(&b[..])),
            1e-5,
        );
        let dx = linear::cpu::backward_input(&spec, &dy, &w);
        check(&format!("{name} dx"), &read(gpu, &tdx), &dx, 1e-5);
        let acc: Vec<f64> = dx.iter().zip(&old).map(|(a, b)| a + b).collect();
        check(&format!("{name} dx accumulate"), &read(gpu, &tacc), &acc, 1e-5);
        let (dw, db) = linear::cpu::backward_weight(&spec, &x, &dy);
        check(&format!("{name} dw"), &read(gpu, &tdw), &dw, 1e-5);
        if let Some(tdb) = &tdb {
            check(&format!("{name} db"), &read(gpu, tdb), &db, 1e-5);
        }
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
        let tz = upload(gpu, "logits", &[n, classes], &z);
        let tl = GpuTensor::from_u32(gpu, "labels", &spec.labels_shape(), &labels).unwrap();
        let (tloss, tdz) = (poisoned(gpu, "loss", &[1]), poisoned(gpu, "dlogits", &[n, classes]));
        let l = softmax_xent::forward_backward(gpu, &spec, &tz, &tl, &tloss, &tdz).unwrap();
        gpu.run(&[&l]).unwrap();
        let (loss, dz) = softmax_xent::cpu::forward_backward(&spec, &z, &labels);
        let name = format!("softmax_xent {n}x{classes} smoothing {smoothing} mixed {mixed} ({seed})");
        check(&format!("{name} loss"), &read(gpu, &tloss), &[loss], 1e-5);
        check(&format!("{name} dlogits"), &read(gpu, &tdz), &dz, 1e-5);
    }
}

#[test]
fn dropout_matches_reference_bit_for_bit() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut rng, seed) = rng("dropout");
    let n = 100_003;
    let cases = [
        Dropout {
            keep: 0.8,
            rescale: true,
            granularity: Granularity::Element,
            seed: 7,
            stream: 0,
        },
        Dropout {
            keep: 0.5,
            rescale: false,
            granularity: Granularity::Element,
            seed: u64::MAX - 3,
            stream: 9,
        },
        Dropout {
            keep: 0.75,
            rescale: true,
            granularity: Granularity::Sample { per_sample: 1 },
            seed: 1 << 40,
            stream: 1,
        },
    ];
    let (step, micro) = (17, 2);
    let info = step_info::tensor(
        gpu,
        StepInfo {
            lr: 0.0,
            ema_decay: 0.0,
            step,
            micro,
        },
    )
    .unwrap();
    for spec in cases {
        let x = normal(&mut rng, n, 1.0);
        let tx = upload(gpu, "x", &[n], &x);
        let ty = poisoned(gpu, "y", &[n]);
        gpu.run(&[&dropout::apply(gpu, &spec, &info, &tx, &ty).unwrap()]).unwrap();
        let got = read(gpu, &ty);
        let want = dropout::cpu::apply(&spec, step, micro, &x);
        // A new step or micro-batch draws a new mask.
        let next = dropout::cpu::apply(&spec, step + 1, micro, &x);
        let other = dropout::cpu::apply(&spec, step, micro + 1, &x);
        let differs = |a: &[f64], b: &[f64]| a.iter().zip(b).filter(|(x, y)| (**x == 0.0) != (**y == 0.0)).count() > n / 100;
        assert!(
            differs(&want, &next) && differs(&want, &other),
            "masks must change with the step and micro-batch"
        );
        let name = format!("dropout {spec:?} ({seed})");
        // The mask must match exactly: every zero where the reference has a zero.
        let mismatched = got.iter().zip(&want).filter(|(g, w)| (**g == 0.0) != (**w == 0.0)).count();
        assert_eq!(mismatched, 0, "{name}: masks differ in {mismatched} places");
        check(&name, &got, &want, 1e-6);
        // And the kept fraction is keep, within 5 standard deviations.
        let kept = want.iter().filter(|v| **v != 0.0).count() as f64 / n as f64;
        let sd = (spec.keep as f64 * (1.0 - spec.keep as f64) / n as f64).sqrt();
        assert!(
            (kept - spec.keep as f64).abs() < 5.0 * sd,
            "{name}: kept {kept}, expected {}",
            spec.keep
        );
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
    let (tx, ty) = (upload(gpu, "x", &[64, 3, 5, 7], &x), poisoned(gpu, "y", &[64, 3, 5, 7]));
    gpu.run(&[&dropout::apply(gpu, &spec, &info, &tx, &ty).unwrap()]).unwrap();
    let got = read(gpu, &ty);
    check(
        &format!("drop path ({seed})"),
        &got,
        &dropout::cpu::apply(&spec, step, micro, &x),
        1e-6,
    );
    for sample in got.chunks(105) {
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
            let name = format!("{shape:?} nesterov {nesterov}, {} lanes ({seed})", gpu.reduce_lanes());
            // The given norms: each unit's (mean, variance) of w and squared norm of g.
            let mut stats = Vec::with_capacity(2 * spec.units);
            for u in w.chunks(spec.unit_len) {
                let mean = u.iter().sum::<f64>() / u.len() as f64;
                stats.extend([mean, u.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / u.len() as f64]);
            }
            let g_sq: Vec<f64> = g.chunks(spec.unit_len).map(|u| u.iter().map(|v| v * v).sum()).collect();
            let (tstats, tgsq) = (
                upload(gpu, "stats", &[spec.units, 2], &stats),
                upload(gpu, "g_sq", &[spec.units], &g_sq),
            );
            for (clip, given) in [(false, false), (true, false), (true, true)] {
                let (tg, tw, tb) = (
                    upload(gpu, "g", shape, &g),
                    upload(gpu, "w", shape, &w),
                    upload(gpu, "buf", shape, &b),
                );
                let norms = given.then_some((&tstats, &tgsq));
                let launch = match clip {
                    true => sgd::agc_update(gpu, &spec, &sgd, &info, &tg, &tw, &tb, norms),
                    false => sgd::update(gpu, &sgd, &info, &tg, &tw, &tb),
                };
                gpu.run(&[&launch.unwrap()]).unwrap();
                let g_used = if clip { agc::cpu::clip(&spec, &w, &g) } else { g.clone() };
                let (w2, b2) = sgd::cpu::update(&sgd, 0.1f32 as f64, &g_used, &w, &b);
                let kernel = if clip { "sgd_agc_update" } else { "sgd_update" };
                let name = format!("{kernel}{} {name}", if given { " (norms given)" } else { "" });
                check(&format!("{name} w"), &read(gpu, &tw), &w2, 1e-6);
                check(&format!("{name} buf"), &read(gpu, &tb), &b2, 1e-6);
                let g32: Vec<f64> = g.iter().map(|&v| v as f32 as f64).collect();
                assert_eq!(read(gpu, &tg), g32, "{name}: g was written");
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
    let info = step_info::tensor(
        gpu,
        StepInfo {
            ema_decay: decay,
            ..Default::default()
        },
    )
    .unwrap();
    let (w, e) = (normal(&mut rng, n, 1.0), normal(&mut rng, n, 1.0));
    let (tw, te) = (upload(gpu, "w", &[n], &w), upload(gpu, "ema", &[n], &e));
    gpu.run(&[&ema::update(gpu, &info, &tw, &te).unwrap()]).unwrap();
    check(
        &format!("ema ({seed})"),
        &read(gpu, &te),
        &ema::cpu::update(decay as f64, &w, &e),
        1e-6,
    );
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
        let (tg, tacc) = (
            upload(gpu, "g", &[n], &g),
            if micro == 0 {
                poisoned(gpu, "acc", &[n])
            } else {
                upload(gpu, "acc", &[n], &acc)
            },
        );
        gpu.run(&[&nfnet::ops::grad_accumulate::accumulate(gpu, 0.25, &info, &tg, &tacc).unwrap()])
            .unwrap();
        let want = nfnet::ops::grad_accumulate::cpu::accumulate(micro, 0.25, &g, &acc);
        check(&format!("grad_accumulate micro {micro} ({seed})"), &read(gpu, &tacc), &want, 1e-6);
    }
}
