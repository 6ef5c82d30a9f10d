//! The kernel rows, at the layers of dm_nfnet_f0 as the model builder makes them: every
//! distinct conv at 192x192, batch 8 (three passes each), all of its linear layers at batch 8,
//! and weight standardization and the fused AGC + SGD update over all of its conv weights.

use super::{row, tensor, time, KernelRow, Yardstick};
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Launch};
use crate::graph::{Graph, Op};
use crate::model::recipe::inference_graph;
use crate::model::ModelConfig;
use crate::ops::agc::Agc;
use crate::ops::grouped_conv::{self, standalone, Conv2d, Packing, Pass, Storage};
use crate::ops::linear;
use crate::ops::sgd::{self, Sgd};
use crate::ops::step_info::{self, StepInfo};
use crate::ops::weight_std;
use crate::tune::Tuner;

/// dm_nfnet_f0's forward graph at `batch` x `res` x `res`.
fn f0(batch: usize, res: usize) -> Result<Graph> {
    Ok(inference_graph(&ModelConfig::load("f0")?, batch, (res, res))?.graph)
}

fn shape_name(s: &Conv2d) -> String {
    format!("n{}_c{}_g{}_{}x{}_k{}_s{}_o{}", s.n, s.c, s.groups, s.h, s.w, s.r, s.stride.0, s.k)
}

/// The kernel rows whose key contains every word of `filters`, each passed to `each` as it is
/// measured (see the module docs). Conv operands live where `tuner` keeps them, with its tiles.
pub fn kernel_rows(
    gpu: &Gpu,
    tuner: &Tuner,
    filters: &[String],
    yardstick: Option<Yardstick>,
    each: &mut dyn FnMut(&KernelRow),
) -> Result<Vec<KernelRow>> {
    let wanted = |key: &str| filters.iter().all(|f| key.contains(f.as_str()));
    let mut rows = Vec::new();
    let mut push = |r: KernelRow| {
        each(&r);
        rows.push(r);
    };
    conv_rows(gpu, tuner, &wanted, yardstick, &mut push)?;
    linear_rows(gpu, &wanted, yardstick, &mut push)?;
    weight_rows(gpu, &wanted, yardstick, &mut push)?;
    Ok(rows)
}

/// The conv rows: each distinct conv of F0 at 192x192, batch 8, forward, input gradient and
/// weight gradient on packed weights (packed once per step with their standardization, not per
/// pass); activations packed into texels inside the timed launch, as a plan does.
fn conv_rows(
    gpu: &Gpu,
    tuner: &Tuner,
    wanted: &dyn Fn(&str) -> bool,
    yardstick: Option<Yardstick>,
    push: &mut dyn FnMut(KernelRow),
) -> Result<()> {
    let storage = tuner.conv_storage(gpu);
    let mut seen = Vec::new();
    for node in f0(8, 192)?.nodes {
        let Op::Conv(s) = node.op else { continue };
        let name = shape_name(&s);
        let passes = [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight];
        let keys = passes.map(|pass| format!("op=grouped_conv pass={} shape={name}", pass_name(pass)));
        if seen.contains(&name) || !keys.iter().any(|k| wanted(k)) {
            continue;
        }
        seen.push(name.clone());
        let (x, w, bias, y) = (
            tensor(gpu, "x", &s.x_shape())?,
            tensor(gpu, "w", &s.w_shape())?,
            tensor(gpu, "b", &[s.k])?,
            tensor(gpu, "y", &s.y_shape())?,
        );
        let packed = |packing| -> Result<GpuTensor> {
            let t = storage.tensor(gpu, "packed", &[grouped_conv::packed_len(&s, packing)])?;
            gpu.run(&[&grouped_conv::pack_weight(gpu, &s, &w, &t, packing)?])?;
            Ok(t)
        };
        for (pass, key) in passes.into_iter().zip(&keys) {
            if !wanted(key) {
                continue;
            }
            let tile = tuner.conv_tile(gpu, pass, &s, storage);
            let launch = match pass {
                Pass::Forward => grouped_conv::forward(gpu, &s, &x, &packed(Packing::OutputInner)?, Some(&bias), &y, tile)?,
                Pass::BackwardInput => grouped_conv::backward_input(gpu, &s, &y, &packed(Packing::InputInner)?, &x, false, tile)?,
                Pass::BackwardWeight => {
                    let (dw, db) = (tensor(gpu, "dw", &s.w_shape())?, tensor(gpu, "db", &[s.k])?);
                    let mut launch = Launch::new();
                    let (x, dy) = match storage {
                        Storage::Texture => (
                            standalone::texels(gpu, s.groups, &x, &mut launch)?,
                            standalone::texels(gpu, s.groups, &y, &mut launch)?,
                        ),
                        Storage::Buffer => (x.clone(), y.clone()),
                    };
                    let partials = grouped_conv::partials_shape(&gpu.limits, &s)
                        .map(|shape| GpuTensor::zeros(gpu, "partials", &shape))
                        .transpose()?;
                    launch.extend(grouped_conv::backward_weight(
                        gpu,
                        &s,
                        &x,
                        &dy,
                        &dw,
                        Some(&db),
                        partials.as_ref(),
                        tile,
                    )?);
                    launch.scratch.extend(partials);
                    launch
                }
            };
            let secs = time(gpu, &[&launch])?;
            push(row(
                yardstick,
                ("grouped_conv", pass_name(pass), name.clone()),
                secs,
                2.0 * s.macs() as f64,
                0.0,
            ));
        }
    }
    Ok(())
}

fn pass_name(pass: Pass) -> &'static str {
    match pass {
        Pass::Forward => "forward",
        Pass::BackwardInput => "backward_input",
        Pass::BackwardWeight => "backward_weight",
    }
}

/// The linear rows: every linear layer of F0 at batch 8 (SE's two layers in each of the 12
/// blocks and the classifier head), each pass timed over all of them in one submission.
fn linear_rows(gpu: &Gpu, wanted: &dyn Fn(&str) -> bool, yardstick: Option<Yardstick>, push: &mut dyn FnMut(KernelRow)) -> Result<()> {
    let passes = ["forward", "backward_input", "backward_weight"];
    let shape = "f0_all_linear_n8";
    let key = |pass: &str| format!("op=linear pass={pass} shape={shape}");
    if !passes.iter().any(|p| wanted(&key(p))) {
        return Ok(());
    }
    let mut launches = [Launch::new(), Launch::new(), Launch::new()];
    let mut macs = 0usize;
    for node in f0(8, 128)?.nodes {
        let Op::Linear(l) = node.op else { continue };
        let (x, w, b, y) = (
            tensor(gpu, "x", &[l.n, l.in_features])?,
            tensor(gpu, "w", &[l.out_features, l.in_features])?,
            tensor(gpu, "b", &[l.out_features])?,
            tensor(gpu, "y", &[l.n, l.out_features])?,
        );
        let (dx, dw, db) = (
            tensor(gpu, "dx", &[l.n, l.in_features])?,
            tensor(gpu, "dw", &[l.out_features, l.in_features])?,
            tensor(gpu, "db", &[l.out_features])?,
        );
        launches[0].extend(linear::forward(gpu, &l, &x, &w, l.bias.then_some(&b), &y)?);
        launches[1].extend(linear::backward_input(gpu, &l, &y, &w, &dx, false)?);
        launches[2].extend(linear::backward_weight(gpu, &l, &x, &y, &dw, l.bias.then_some(&db))?);
        macs += l.n * l.in_features * l.out_features;
        launches[0].scratch.extend([x, w, b, y, dx, dw, db]);
    }
    for (pass, launch) in passes.iter().zip(&launches) {
        if wanted(&key(pass)) {
            let secs = time(gpu, &[launch])?;
            push(row(yardstick, ("linear", pass, shape.into()), secs, 2.0 * macs as f64, 0.0));
        }
    }
    Ok(())
}

/// The weight rows: weight standardization forward and backward, and the fused AGC + SGD
/// update (its unit norms given by the two, as in a training plan), over all of F0's conv
/// weights. GB/s of the bytes each pass moves.
fn weight_rows(gpu: &Gpu, wanted: &dyn Fn(&str) -> bool, yardstick: Option<Yardstick>, push: &mut dyn FnMut(KernelRow)) -> Result<()> {
    let keys = [
        ("weight_std", "forward", "f0_all_convs"),
        ("weight_std", "backward", "f0_all_convs"),
        ("sgd", "agc_update", "f0_all_conv_weights"),
    ];
    let key = |(op, pass, shape): (&str, &str, &str)| format!("op={op} pass={pass} shape={shape}");
    if !keys.iter().any(|&k| wanted(&key(k))) {
        return Ok(());
    }
    let (mut fwd, mut bwd, mut update) = (Launch::new(), Launch::new(), Launch::new());
    let info = step_info::tensor(
        gpu,
        StepInfo {
            lr: 0.1,
            ..Default::default()
        },
    )?;
    let sgd = Sgd {
        momentum: 0.9,
        weight_decay: 2e-5,
        nesterov: true,
    };
    let mut elements = 0usize;
    for node in f0(1, 192)?.nodes {
        let Op::WeightStd(ws) = node.op else { continue };
        let shape = [ws.k, ws.fan_in];
        let (w, gain, w_hat, stats) = (
            tensor(gpu, "w", &shape)?,
            tensor(gpu, "gain", &[ws.k])?,
            tensor(gpu, "w_hat", &shape)?,
            tensor(gpu, "stats", &[ws.k, 2])?,
        );
        let (dw, dgain, dw_sq, momentum) = (
            tensor(gpu, "dw", &shape)?,
            tensor(gpu, "dgain", &[ws.k])?,
            tensor(gpu, "dw_sq", &[ws.k])?,
            tensor(gpu, "momentum", &shape)?,
        );
        fwd.extend(weight_std::forward(gpu, &ws, &w, &gain, &w_hat, &stats)?);
        bwd.extend(weight_std::backward(gpu, &ws, &w, &gain, &stats, &w_hat, &dw, &dgain, &dw_sq)?);
        let agc = Agc::for_shape(&shape, 0.01, 1e-3);
        update.extend(sgd::agc_update(gpu, &agc, &sgd, &info, &dw, &w, &momentum, Some((&stats, &dw_sq)))?);
        elements += w.numel();
        fwd.scratch.extend([w, gain, w_hat, stats, dw, dgain, dw_sq, momentum]);
    }
    let e = elements as f64 * 4.0;
    // Bytes moved (each tensor counted once per pass over it): the forward reads w (twice where
    // the adapter does not keep units between its passes) and writes w_hat; the backward reads
    // w and dw_hat (twice each, likewise) and writes dw; the update reads w, g and the momentum
    // and writes w and the momentum. F0's units (at most 1536 values) are all kept where the
    // adapter keeps units.
    let (ws_fwd, ws_bwd) = if gpu.keeps_units() { (2.0, 3.0) } else { (3.0, 5.0) };
    for (&k, (launch, bytes)) in keys.iter().zip([(&fwd, ws_fwd * e), (&bwd, ws_bwd * e), (&update, 5.0 * e)]) {
        if wanted(&key(k)) {
            let secs = time(gpu, &[launch])?;
            push(row(yardstick, (k.0, k.1, k.2.into()), secs, 0.0, bytes));
        }
    }
    Ok(())
}
