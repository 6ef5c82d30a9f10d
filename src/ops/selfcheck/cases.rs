//! The cases of [`super::run`], one per op (or group of ops that feed each other): each draws
//! its inputs from the shared seeded [`Data`], states its outputs' references and tolerances,
//! and returns its launches unrun.

use super::{add, build, tol_for_terms, Built, Case, Data};
use crate::gpu::{Gpu, GpuTensor, Launch};
use crate::ops::agc::{self, Agc};
use crate::ops::avg_pool::{self, AvgPool};
use crate::ops::dropout::{self, Dropout, Granularity};
use crate::ops::ema;
use crate::ops::global_pool::{self, GlobalPool};
use crate::ops::grad_accumulate;
use crate::ops::grouped_conv::{self, standalone, Conv2d, Packing, Pass, Share, Storage, Tile};
use crate::ops::linear::{self, Linear};
use crate::ops::residual::{self, Residual};
use crate::ops::scaled_act::{self, Activation, ScaledAct};
use crate::ops::se_gate::{self, SeGate};
use crate::ops::se_residual::{self, SeResidual};
use crate::ops::sgd::{self, Sgd};
use crate::ops::softmax_xent::{self, SoftmaxXent};
use crate::ops::step_info::{self, StepInfo};
use crate::ops::weight_std::{self, WeightStd, WsForm};

/// The conv's three passes from unpacked weights, operands in `storage` (the weights packed by
/// `_pack_weight`, in textures the activations by `_pack_activation` too).
pub(super) fn conv_case<'g>(gpu: &'g Gpu, data: &mut Data, s: &Conv2d, storage: Storage) -> Built<'g> {
    build(format!("grouped_conv {storage}"), |name| {
        let fan = s.w_shape()[1..].iter().product::<usize>();
        let (xs, ws, ys) = (s.x_shape(), s.w_shape(), s.y_shape());
        let x = data.normal(xs.iter().product(), 1.0);
        let w = data.normal(ws.iter().product(), 1.0 / (fan as f64).sqrt());
        let b = data.normal(s.k, 1.0);
        let dy = data.normal(ys.iter().product(), 1.0);
        let (p, q) = s.out_hw();
        let dx = grouped_conv::cpu::backward_input(s, &dy, &w);
        let (dw, db) = grouped_conv::cpu::backward_weight(s, &x, &dy);
        let mut c = Case::new(gpu, name);
        let (tx, tw, tdy, tb) = (
            c.input("x", &xs, &x)?,
            c.input("w", &ws, &w)?,
            c.input("dy", &ys, &dy)?,
            c.input("b", &[s.k], &b)?,
        );
        let ty = c.output("y", &ys, grouped_conv::cpu::forward(s, &x, &w, Some(&b)), tol_for_terms(fan))?;
        let tdx = c.output("dx", &xs, dx, tol_for_terms(s.k / s.groups * s.r * s.s))?;
        let tdw = c.output("dw", &ws, dw, tol_for_terms(s.n * p * q))?;
        let tdb = c.output("db", &[s.k], db, tol_for_terms(s.n * p * q))?;
        c.launch(standalone::forward(gpu, s, storage, &tx, &tw, Some(&tb), &ty))?;
        c.launch(standalone::backward_input(gpu, s, storage, &tdy, &tw, &tdx, false))?;
        c.launch(standalone::backward_weight(gpu, s, storage, &tx, &tdy, &tdw, Some(&tdb)))?;
        Ok(c)
    })
}

/// The forward and input gradient from weights packed both ways in one pass
/// (`_pack_weight_pair`), the input gradient accumulated into a start value.
pub(super) fn conv_pair_case<'g>(gpu: &'g Gpu, data: &mut Data, s: &Conv2d, storage: Storage) -> Built<'g> {
    build(format!("grouped_conv pair-packed {storage}"), |name| {
        let fan = s.w_shape()[1..].iter().product::<usize>();
        let (xs, ws, ys) = (s.x_shape(), s.w_shape(), s.y_shape());
        let x = data.normal(xs.iter().product(), 1.0);
        let w = data.normal(ws.iter().product(), 1.0 / (fan as f64).sqrt());
        let dy = data.normal(ys.iter().product(), 1.0);
        let old = data.normal(xs.iter().product(), 1.0);
        let b = data.normal(s.k, 1.0);
        let dx = grouped_conv::cpu::backward_input(s, &dy, &w);
        let mut c = Case::new(gpu, name);
        let (tx, tw, tdy, tb) = (
            c.input("x", &xs, &x)?,
            c.input("w", &ws, &w)?,
            c.input("dy", &ys, &dy)?,
            c.input("b", &[s.k], &b)?,
        );
        let out_inner = storage.tensor(gpu, "w output-inner", &[grouped_conv::packed_len(s, Packing::OutputInner)])?;
        let in_inner = storage.tensor(gpu, "w input-inner", &[grouped_conv::packed_len(s, Packing::InputInner)])?;
        let ty = c.output("y", &ys, grouped_conv::cpu::forward(s, &x, &w, Some(&b)), tol_for_terms(fan))?;
        let tdx = c.in_place("dx accumulated", &xs, &old, add(&dx, &old), 1e-5)?;
        c.launch(grouped_conv::pack_weight_pair(gpu, s, &tw, &out_inner, &in_inner))?;
        let tile = grouped_conv::tiles(Pass::Forward, s, storage)[0];
        c.launch(grouped_conv::forward(gpu, s, &tx, &out_inner, Some(&tb), &ty, tile))?;
        let tile = grouped_conv::tiles(Pass::BackwardInput, s, storage)[0];
        c.launch(grouped_conv::backward_input(gpu, s, &tdy, &in_inner, &tdx, true, tile))?;
        Ok(c)
    })
}

/// The 1x1 passes whose weight (or dy) loads the subgroup shares, on texels (groups of 18 input
/// and 20 output channels: no whole texel, no whole tile of 16; 35 pixel tiles, rows of 7), the
/// input gradient accumulated into a start value.
pub(super) fn subgroup_conv_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("grouped_conv subgroup 1x1".into(), |name| {
        let s = &Conv2d::same([3, 36, 5, 7], 40, 1, 1).groups(2).with_bias(true);
        let (xs, ws, ys) = (s.x_shape(), s.w_shape(), s.y_shape());
        let x = data.normal(xs.iter().product(), 1.0);
        let w = data.normal(ws.iter().product(), 1.0 / (s.c as f64 / 2.0).sqrt());
        let b = data.normal(s.k, 1.0);
        let dy = data.normal(ys.iter().product(), 1.0);
        let old = data.normal(xs.iter().product(), 1.0);
        let dx = grouped_conv::cpu::backward_input(s, &dy, &w);
        let (dw, db) = grouped_conv::cpu::backward_weight(s, &x, &dy);
        let (p, q) = s.out_hw();
        let mut c = Case::new(gpu, name);
        let (tx, tw, tb, tdy) = (
            c.input("x", &xs, &x)?,
            c.input("w", &ws, &w)?,
            c.input("b", &[s.k], &b)?,
            c.input("dy", &ys, &dy)?,
        );
        let out_inner = Storage::Texture.tensor(gpu, "w output-inner", &[grouped_conv::packed_len(s, Packing::OutputInner)])?;
        let in_inner = Storage::Texture.tensor(gpu, "w input-inner", &[grouped_conv::packed_len(s, Packing::InputInner)])?;
        let ty = c.output("y", &ys, grouped_conv::cpu::forward(s, &x, &w, Some(&b)), 1e-5)?;
        let tdx = c.in_place("dx accumulated", &xs, &old, add(&dx, &old), 1e-5)?;
        let tdw = c.output("dw", &ws, dw, tol_for_terms(s.n * p * q))?;
        let tdb = c.output("db", &[s.k], db, tol_for_terms(s.n * p * q))?;
        c.launch(grouped_conv::pack_weight_pair(gpu, s, &tw, &out_inner, &in_inner))?;
        let subgroup_tile = |pass| {
            let tiles = grouped_conv::tiles(pass, s, Storage::Texture);
            (tiles.into_iter().find(|t| t.share == Share::Subgroup))
                .ok_or_else(|| crate::Error::invalid(name, "no subgroup tile at this shape"))
        };
        c.launch(grouped_conv::forward(
            gpu,
            s,
            &tx,
            &out_inner,
            Some(&tb),
            &ty,
            subgroup_tile(Pass::Forward)?,
        ))?;
        let tile = subgroup_tile(Pass::BackwardInput)?;
        c.launch(grouped_conv::backward_input(gpu, s, &tdy, &in_inner, &tdx, true, tile))?;
        let tile = subgroup_tile(Pass::BackwardWeight)?;
        let part = grouped_conv::partials_shape(&gpu.limits, s)
            .map(|shape| GpuTensor::zeros(gpu, "partials", &shape))
            .transpose()?;
        // x packed as texels selects the textured kernels (dy is packed by the launch).
        let mut pack = Launch::new();
        let x_texels = standalone::texels(gpu, s.groups, &tx, &mut pack)?;
        c.launch(Ok(pack))?;
        c.launch(grouped_conv::backward_weight(
            gpu,
            s,
            &x_texels,
            &tdy,
            &tdw,
            Some(&tdb),
            part.as_ref(),
            tile,
        ))?;
        Ok(c)
    })
}

/// The three passes that stage their operands in workgroup memory, on buffers, each with its
/// first workgroup tile at `s`: the input gradient accumulated into a start value, the bias
/// gradient by its own kernel (as with every buffer tile).
pub(super) fn workgroup_conv_case<'g>(gpu: &'g Gpu, data: &mut Data, s: &Conv2d) -> Built<'g> {
    build("grouped_conv workgroup".into(), |name| {
        let fan = s.w_shape()[1..].iter().product::<usize>();
        let (xs, ws, ys) = (s.x_shape(), s.w_shape(), s.y_shape());
        let x = data.normal(xs.iter().product(), 1.0);
        let w = data.normal(ws.iter().product(), 1.0 / (fan as f64).sqrt());
        let b = data.normal(s.k, 1.0);
        let dy = data.normal(ys.iter().product(), 1.0);
        let old = data.normal(xs.iter().product(), 1.0);
        let (p, q) = s.out_hw();
        let dx = grouped_conv::cpu::backward_input(s, &dy, &w);
        let (dw, db) = grouped_conv::cpu::backward_weight(s, &x, &dy);
        let mut c = Case::new(gpu, name);
        let (tx, tw, tdy, tb) = (
            c.input("x", &xs, &x)?,
            c.input("w", &ws, &w)?,
            c.input("dy", &ys, &dy)?,
            c.input("b", &[s.k], &b)?,
        );
        let ty = c.output("y", &ys, grouped_conv::cpu::forward(s, &x, &w, Some(&b)), tol_for_terms(fan))?;
        let tdw = c.output("dw", &ws, dw, tol_for_terms(s.n * p * q))?;
        let tdb = c.output("db", &[s.k], db, tol_for_terms(s.n * p * q))?;
        let tdx = c.in_place("dx accumulated", &xs, &old, add(&dx, &old), 1e-5)?;
        let workgroup_tile = |pass| -> crate::Result<Tile> {
            let tiles = grouped_conv::tiles(pass, s, Storage::Buffer);
            (tiles.into_iter().find(|t| t.share == Share::Workgroup))
                .ok_or_else(|| crate::Error::invalid(name, "no workgroup tile at this shape"))
        };
        let len = |packing| [grouped_conv::packed_len(s, packing)];
        let out_inner = Storage::Buffer.tensor(gpu, "w output-inner", &len(Packing::OutputInner))?;
        let in_inner = Storage::Buffer.tensor(gpu, "w input-inner", &len(Packing::InputInner))?;
        c.launch(grouped_conv::pack_weight_pair(gpu, s, &tw, &out_inner, &in_inner))?;
        let tile = workgroup_tile(Pass::Forward)?;
        c.launch(grouped_conv::forward(gpu, s, &tx, &out_inner, Some(&tb), &ty, tile))?;
        let tile = workgroup_tile(Pass::BackwardInput)?;
        c.launch(grouped_conv::backward_input(gpu, s, &tdy, &in_inner, &tdx, true, tile))?;
        let part = grouped_conv::partials_shape(&gpu.limits, s)
            .map(|shape| GpuTensor::zeros(gpu, "partials", &shape))
            .transpose()?;
        let tile = workgroup_tile(Pass::BackwardWeight)?;
        let db = s.bias.then_some(&tdb);
        c.launch(grouped_conv::backward_weight(gpu, s, &tx, &tdy, &tdw, db, part.as_ref(), tile))?;
        Ok(c)
    })
}

pub(super) fn weight_std_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("weight_std timm 7x45".into(), |name| {
        let (k, fan) = (7, 45);
        let spec = WeightStd {
            k,
            fan_in: fan,
            eps: 1e-5,
            form: WsForm::Timm,
            multiplier: 1.7015043,
        };
        let (w, gain, dw_hat) = (data.normal(k * fan, 1.0), data.normal(k, 1.0), data.normal(k * fan, 1.0));
        let (dw, dgain) = weight_std::cpu::backward(&spec, &w, &gain, &dw_hat);
        let dw_sq: Vec<f64> = dw.chunks(fan).map(|u| u.iter().map(|v| v * v).sum()).collect();
        let mut c = Case::new(gpu, name);
        let (tw, tgain, tdw_hat) = (
            c.input("w", &[k, fan], &w)?,
            c.input("gain", &[k, 1, 1, 1], &gain)?,
            c.input("dw_hat", &[k, fan], &dw_hat)?,
        );
        let tw_hat = c.output("w_hat", &[k, fan], weight_std::cpu::forward(&spec, &w, &gain), 1e-5)?;
        let tstats = GpuTensor::filled(gpu, "stats", &[k, 2], f32::NAN)?;
        let tdw = c.output("dw", &[k, fan], dw, 1e-5)?;
        let tdgain = c.output("dgain", &[k], dgain, 1e-5)?;
        let tdw_sq = c.output("dw_sq", &[k], dw_sq, 1e-5)?;
        c.launch(weight_std::forward(gpu, &spec, &tw, &tgain, &tw_hat, &tstats))?;
        c.launch(weight_std::backward(
            gpu, &spec, &tw, &tgain, &tstats, &tdw_hat, &tdw, &tdgain, &tdw_sq,
        ))?;
        Ok(c)
    })
}

pub(super) fn scaled_act_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("scaled_act gelu 1001".into(), |name| {
        let n = 1001;
        let spec = ScaledAct {
            act: Activation::Gelu,
            gamma: Activation::Gelu.nfnet_gamma(),
        };
        let (x, dy, old) = (data.normal(n, 3.0), data.normal(n, 1.0), data.normal(n, 1.0));
        let dx = scaled_act::cpu::backward(&spec, &x, &dy);
        let mut c = Case::new(gpu, name);
        let (tx, tdy) = (c.input("x", &[n], &x)?, c.input("dy", &[n], &dy)?);
        let ty = c.output("y", &[n], scaled_act::cpu::forward(&spec, &x), 1e-5)?;
        let tdx = c.in_place("dx accumulated", &[n], &old, add(&dx, &old), 1e-5)?;
        c.launch(scaled_act::forward(gpu, &spec, &tx, &ty))?;
        c.launch(scaled_act::backward(gpu, &spec, &tx, &tdy, &tdx, true))?;
        Ok(c)
    })
}

pub(super) fn pools_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("avg_pool 2x3x7x5, global_pool 2x5x3x7".into(), |name| {
        let mut c = Case::new(gpu, name);
        let spec = AvgPool { n: 2, c: 3, h: 7, w: 5 };
        let (xs, ys) = (spec.x_shape(), spec.y_shape());
        let (x, dy) = (data.normal(xs.iter().product(), 1.0), data.normal(ys.iter().product(), 1.0));
        let (tx, tdy) = (c.input("x", &xs, &x)?, c.input("dy", &ys, &dy)?);
        let ty = c.output("avg_pool y", &ys, avg_pool::cpu::forward(&spec, &x), 1e-5)?;
        let tdx = c.output("avg_pool dx", &xs, avg_pool::cpu::backward(&spec, &dy), 1e-5)?;
        c.launch(avg_pool::forward(gpu, &spec, &tx, &ty))?;
        c.launch(avg_pool::backward(gpu, &spec, &tdy, &tdx, false))?;
        let spec = GlobalPool { n: 2, c: 5, h: 3, w: 7 };
        let xs = spec.x_shape();
        let (x, dy) = (data.normal(xs.iter().product(), 1.0), data.normal(spec.n * spec.c, 1.0));
        let (tx, tdy) = (c.input("x", &xs, &x)?, c.input("dy", &[spec.n, spec.c], &dy)?);
        let ty = c.output("global_pool y", &[spec.n, spec.c], global_pool::cpu::forward(&spec, &x), 1e-5)?;
        let tdx = c.output("global_pool dx", &xs, global_pool::cpu::backward(&spec, &dy), 1e-5)?;
        c.launch(global_pool::forward(gpu, &spec, &tx, &ty))?;
        c.launch(global_pool::backward(gpu, &spec, &tdy, &tdx, false))?;
        Ok(c)
    })
}

/// The SE gate, the residual add with its learnable skip gain, and the two fused.
pub(super) fn gates_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("se_gate, residual, se_residual 2x5x3x7".into(), |name| {
        let mut c = Case::new(gpu, name);
        let gate = SeGate {
            n: 2,
            c: 5,
            h: 3,
            w: 7,
            gain: 2.0,
        };
        let (rs, planes) = (gate.r_shape(), gate.n * gate.c);
        let len: usize = rs.iter().product();
        let (s, r, sc, old) = (
            data.normal(planes, 2.0),
            data.normal(len, 1.0),
            data.normal(len, 1.0),
            data.normal(len, 1.0),
        );
        // dy leans on the branch so that the skip gain's gradient, one sum over every element,
        // does not cancel to a small number that rounding dominates (see tests/ops.rs).
        let noise = data.normal(len, 1.0);
        let dy: Vec<f64> = r.iter().zip(&noise).map(|(r, n)| (0.5 * r + n) as f32 as f64).collect();
        let gain = 0.37f32 as f64;
        let (ts, tr, tsc, tdy) = (
            c.input("s", &[gate.n, gate.c], &s)?,
            c.input("r", &rs, &r)?,
            c.input("shortcut", &rs, &sc)?,
            c.input("dy", &rs, &dy)?,
        );
        let tgain = c.input("skip gain", &[], &[gain])?;

        let (dr, ds) = se_gate::cpu::backward(&gate, &s, &r, &dy);
        let ty = c.output("se_gate y", &rs, se_gate::cpu::forward(&gate, &s, &r), 1e-5)?;
        let tdr = c.in_place("se_gate dr accumulated", &rs, &old, add(&dr, &old), 1e-5)?;
        let tds = c.output("se_gate ds", &[gate.n, gate.c], ds, 1e-5)?;
        c.launch(se_gate::forward(gpu, &gate, &ts, &tr, &ty))?;
        c.launch(se_gate::backward(gpu, &gate, &ts, &tr, &tdy, &tdr, &tds, true))?;

        let res = Residual { alpha: 0.2 };
        let (dr, _, dgain) = residual::cpu::backward(&res, &dy, &r, Some(gain));
        let ty = c.output("residual y", &rs, residual::cpu::forward(&res, &r, &sc, Some(gain)), 1e-5)?;
        let tdr = c.output("residual dr", &rs, dr, 1e-5)?;
        let tdgain = c.output("residual dgain", &[], vec![dgain], 1e-5)?;
        c.launch(residual::forward(gpu, &res, &tr, &tsc, Some(&tgain), &ty))?;
        c.launch(residual::backward(gpu, &res, &tdy, &tr, Some((&tgain, &tdgain)), &tdr))?;

        let spec = SeResidual { gate, residual: res };
        // Its dy leans on the gated branch, for the same reason.
        let gated = se_gate::cpu::forward(&gate, &s, &r);
        let dy2: Vec<f64> = gated.iter().zip(&noise).map(|(g, n)| (0.5 * g + n) as f32 as f64).collect();
        let tdy2 = c.input("dy (gated)", &rs, &dy2)?;
        let (dr, ds, dgain) = se_residual::cpu::backward(&spec, &dy2, &s, &r, Some(gain));
        let ty = c.output(
            "se_residual y",
            &rs,
            se_residual::cpu::forward(&spec, &s, &r, &sc, Some(gain)),
            1e-5,
        )?;
        let tdr = c.output("se_residual dr", &rs, dr, 1e-5)?;
        let tds = c.output("se_residual ds", &[gate.n, gate.c], ds, 1e-5)?;
        let tdgain = c.output("se_residual dgain", &[], vec![dgain], 1e-5)?;
        c.launch(se_residual::forward(gpu, &spec, &ts, &tr, &tsc, Some(&tgain), &ty))?;
        c.launch(se_residual::backward(
            gpu,
            &spec,
            &tdy2,
            &ts,
            &tr,
            Some((&tgain, &tdgain)),
            &tdr,
            &tds,
            false,
        ))?;
        Ok(c)
    })
}

pub(super) fn linear_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("linear 5x70 -> 33".into(), |name| {
        let spec = Linear {
            n: 5,
            in_features: 70,
            out_features: 33,
            bias: true,
        };
        let (n, i, o) = (spec.n, spec.in_features, spec.out_features);
        let (x, w, b) = (
            data.normal(n * i, 1.0),
            data.normal(o * i, 1.0 / (i as f64).sqrt()),
            data.normal(o, 1.0),
        );
        let dy = data.normal(n * o, 1.0);
        let (dw, db) = linear::cpu::backward_weight(&spec, &x, &dy);
        let mut c = Case::new(gpu, name);
        let (tx, tw, tb, tdy) = (
            c.input("x", &[n, i], &x)?,
            c.input("w", &[o, i], &w)?,
            c.input("b", &[o], &b)?,
            c.input("dy", &[n, o], &dy)?,
        );
        let ty = c.output("y", &[n, o], linear::cpu::forward(&spec, &x, &w, Some(&b)), 1e-5)?;
        let tdx = c.output("dx", &[n, i], linear::cpu::backward_input(&spec, &dy, &w), 1e-5)?;
        let tdw = c.output("dw", &[o, i], dw, 1e-5)?;
        let tdb = c.output("db", &[o], db, 1e-5)?;
        c.launch(linear::forward(gpu, &spec, &tx, &tw, Some(&tb), &ty))?;
        c.launch(linear::backward_input(gpu, &spec, &tdy, &tw, &tdx, false))?;
        c.launch(linear::backward_weight(gpu, &spec, &tx, &tdy, &tdw, Some(&tdb)))?;
        Ok(c)
    })
}

/// Cross-entropy with label smoothing; the mean loss goes through `sum_partials`.
pub(super) fn softmax_xent_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("softmax_xent 70x11 smoothing 0.1".into(), |name| {
        let spec = SoftmaxXent {
            n: 70,
            classes: 11,
            smoothing: 0.1,
            mixed: false,
        };
        let z = data.normal(spec.n * spec.classes, 3.0);
        let labels = data.below(spec.n, spec.classes as u32);
        let (loss, dz) = softmax_xent::cpu::forward_backward(&spec, &z, &labels);
        let mut c = Case::new(gpu, name);
        let tz = c.input("logits", &[spec.n, spec.classes], &z)?;
        let tl = GpuTensor::from_u32(gpu, "labels", &spec.labels_shape(), &labels)?;
        let tloss = c.output("loss", &[1], vec![loss], 1e-5)?;
        let tdz = c.output("dlogits", &[spec.n, spec.classes], dz, 1e-5)?;
        c.launch(softmax_xent::forward_backward(gpu, &spec, &tz, &tl, &tloss, &tdz))?;
        Ok(c)
    })
}

/// Dropout from the Philox stream: the mask must match the reference's element for element
/// (a wrong mask gives errors of order 1, far above the tolerance).
pub(super) fn dropout_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("dropout keep 0.8 over 10007".into(), |name| {
        let n = 10_007;
        let spec = Dropout {
            keep: 0.8,
            rescale: true,
            granularity: Granularity::Element,
            seed: 7,
            stream: 3,
        };
        let (step, pass) = (17, 3);
        let info = step_info::tensor(
            gpu,
            StepInfo {
                step,
                pass_index: pass,
                ..Default::default()
            },
        )?;
        let x = data.normal(n, 1.0);
        let mut c = Case::new(gpu, name);
        let tx = c.input("x", &[n], &x)?;
        let ty = c.output("y", &[n], dropout::cpu::apply(&spec, step, pass, &x), 1e-6)?;
        c.launch(dropout::apply(gpu, &spec, &info, &tx, &ty))?;
        Ok(c)
    })
}

/// The update phase: SGD (plain, and after AGC's clipping), the moving average, and the
/// gradient sum over micro-batches.
pub(super) fn updates_case<'g>(gpu: &'g Gpu, data: &mut Data) -> Built<'g> {
    build("sgd, sgd + agc, ema, grad_accumulate on [6,4,3,3]".into(), |name| {
        let shape = [6usize, 4, 3, 3];
        let numel: usize = shape.iter().product();
        let lr = 0.1f32;
        let decay = ema::decay(0.9999, 12);
        let info = step_info::tensor(
            gpu,
            StepInfo {
                lr,
                ema_decay: decay,
                step: 12,
                micro: 1,
                pass_index: 1,
            },
        )?;
        let mut c = Case::new(gpu, name);
        let sgd = Sgd {
            momentum: 0.9,
            weight_decay: 2e-5,
            nesterov: true,
        };
        let agc_spec = Agc::for_shape(&shape, 0.01, 1e-3);
        // Gradients far below and far above the clipping threshold, unit by unit.
        let mut g = Vec::with_capacity(numel);
        for u in 0..agc_spec.units {
            g.extend(data.normal(agc_spec.unit_len, [1e-4, 1e-2, 1.0][u % 3]));
        }
        let tg = c.input("g", &shape, &g)?;
        for clip in [false, true] {
            let (w, b) = (data.normal(numel, 1.0), data.normal(numel, 1.0));
            let g_used = if clip { agc::cpu::clip(&agc_spec, &w, &g) } else { g.clone() };
            let (w2, b2) = sgd::cpu::update(&sgd, lr as f64, &g_used, &w, &b);
            let kernel = if clip { "sgd_agc_update" } else { "sgd_update" };
            let tw = c.in_place(&format!("{kernel} w"), &shape, &w, w2, 1e-6)?;
            let tb = c.in_place(&format!("{kernel} momentum"), &shape, &b, b2, 1e-6)?;
            c.launch(match clip {
                true => sgd::agc_update(gpu, &agc_spec, &sgd, &info, &tg, &tw, &tb, None),
                false => sgd::update(gpu, &sgd, &info, &tg, &tw, &tb),
            })?;
        }
        let (w, e) = (data.normal(numel, 1.0), data.normal(numel, 1.0));
        let tw = c.input("w", &shape, &w)?;
        let te = c.in_place("ema", &shape, &e, ema::cpu::update(decay as f64, &w, &e), 1e-6)?;
        c.launch(ema::update(gpu, &info, &tw, &te))?;
        let acc = data.normal(numel, 1.0);
        let tacc = c.in_place("grad sum", &shape, &acc, grad_accumulate::cpu::accumulate(1, 0.25, &g, &acc), 1e-6)?;
        c.launch(grad_accumulate::accumulate(gpu, 0.25, &info, &tg, &tacc))?;
        Ok(c)
    })
}
