//! The NFNet model family: configs ([`config`]), the graph builder ([`model`]), weights in
//! timm's safetensors layout ([`weights`]), and [`describe`], the layer table of `nfnet info`.

pub mod config;
pub mod forward;
pub mod model;
pub mod weights;

pub use config::NfnetConfig;
pub use model::{build, Mode, Model};

use crate::error::Result;
use crate::graph::optim::Optimizer;
use crate::graph::plan::{rewrite, MemoryPlan, MemoryReport, PlanOptions};
use std::fmt::Write;

/// The memory a training step of `config` plans: the graph with its backward pass and a full
/// AGC + SGD update, keeping only the loss. Limits are WebGPU's defaults (128 MiB bindings)
/// unless given. With `textures`, conv operands are packed into textures as on adapters whose
/// conv kernels read texels ([`crate::Gpu::conv_textures`]).
pub fn training_memory(
    config: &NfnetConfig,
    batch: usize,
    resolution: usize,
    limits: &wgpu::Limits,
    textures: bool,
) -> Result<MemoryReport> {
    let opt = Optimizer::paper();
    let model = forward::training_model(config, batch, (resolution, resolution), limits, &opt)?;
    let keep: Vec<_> = model.loss.into_iter().collect();
    let graph = rewrite(model.graph, &keep, textures);
    let options = PlanOptions {
        keep,
        prepare_params: false,
    };
    Ok(MemoryPlan::new(&graph, &options, textures).report(&graph))
}

/// The memory an inference pass of `config` plans (weights standardized once, logits kept).
pub fn inference_memory(config: &NfnetConfig, batch: usize, resolution: usize) -> Result<MemoryReport> {
    let model = build(config, batch, (resolution, resolution), Mode::Eval, 0)?;
    Ok(MemoryPlan::new(
        &model.graph,
        &PlanOptions {
            keep: vec![model.logits],
            prepare_params: true,
        },
        false,
    )
    .report(&model.graph))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The text of `nfnet info`: the layer table, parameter count, multiply-adds per image at
/// `resolution`, and the planned memory of an inference pass and a training step of `batch`.
pub fn describe(config: &NfnetConfig, resolution: usize, batch: usize) -> Result<String> {
    let blocks = config.blocks()?;
    let one = build(config, 1, (resolution, resolution), Mode::Eval, 0)?;
    let g = &one.graph;
    let params = |prefix: &str| -> usize {
        g.params()
            .filter(|(_, d, _)| d.name.starts_with(prefix))
            .map(|(_, d, _)| d.numel())
            .sum()
    };
    let hw = |name: &str| {
        g.find(name)
            .map(|t| format!("{}x{}", g.shape(t)[2], g.shape(t)[3]))
            .unwrap_or_default()
    };
    let mut s = String::new();
    let c = config;
    writeln!(
        s,
        "model {} ({:?} flavour, {:?}, WS {:?} eps {}, alpha {}, {} classes)",
        c.name, c.flavour, c.activation, c.ws, c.ws_eps, c.alpha, c.num_classes
    )
    .unwrap();
    writeln!(s, "input 3x{resolution}x{resolution}\n").unwrap();
    writeln!(
        s,
        "{:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>9} {:>12}",
        "layer", "in", "out", "mid", "groups", "stride", "beta", "output", "params"
    )
    .unwrap();
    let stem_params = params("stem.");
    writeln!(
        s,
        "{:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>9} {:>12}",
        "stem",
        3,
        c.stem[3],
        "-",
        1,
        4,
        "-",
        hw("stem.conv4.y"),
        stem_params
    )
    .unwrap();
    for b in &blocks {
        let p = format!("stages.{}.{}", b.stage, b.index);
        let kind = if b.transition { "*" } else { "" };
        writeln!(
            s,
            "{:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8.5} {:>9} {:>12}",
            format!("{p}{kind}"),
            b.in_chs,
            b.out_chs,
            b.mid_chs,
            b.groups,
            b.stride,
            b.beta,
            hw(&format!("{p}.y")),
            params(&format!("{p}."))
        )
        .unwrap();
    }
    if c.final_conv > 0 {
        writeln!(
            s,
            "{:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>9} {:>12}",
            "final_conv",
            c.widths.last().unwrap(),
            c.final_conv,
            "-",
            1,
            1,
            "-",
            hw("final_conv.y"),
            params("final_conv.")
        )
        .unwrap();
    }
    writeln!(
        s,
        "{:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>9} {:>12}",
        "head.fc",
        c.num_features(),
        c.num_classes,
        "-",
        "-",
        "-",
        "-",
        "1x1",
        params("head.")
    )
    .unwrap();
    writeln!(
        s,
        "(* transition block: the shortcut is a 1x1 WS conv, after a 2x2 average pool when strided)\n"
    )
    .unwrap();
    let total: usize = g.params().map(|(_, d, _)| d.numel()).sum();
    let tensors = g.params().count();
    writeln!(s, "parameters:      {} in {tensors} tensors", group_digits(total as u64)).unwrap();
    let macs = g.macs();
    writeln!(
        s,
        "multiply-adds:   {:.2} G per image at {resolution}x{resolution} ({})",
        macs as f64 / 1e9,
        group_digits(macs)
    )
    .unwrap();
    let inf = inference_memory(config, batch, resolution)?;
    writeln!(s, "\nplanned memory at batch {batch}, {resolution}x{resolution}:").unwrap();
    writeln!(
        s,
        "  inference:      {} parameters + {} prepared weights, inputs and outputs + {} shared activations (tensors sharing them: {})",
        mib(inf.params),
        mib(inf.other_dedicated),
        mib(inf.shared),
        mib(inf.shared_tensors)
    )
    .unwrap();
    let train = training_memory(config, batch, resolution, &wgpu::Limits::default(), false)?;
    writeln!(
        s,
        "  training step:  {} parameters and momentum + {} inputs and outputs + {} shared activations, gradients and workspaces",
        mib(train.params),
        mib(train.other_dedicated),
        mib(train.shared)
    )
    .unwrap();
    writeln!(
        s,
        "                  sum of all tensor sizes in the graph: {}; shared memory / that sum: {:.3}",
        mib(train.all_tensors),
        train.shared as f64 / train.all_tensors as f64
    )
    .unwrap();
    let textured = training_memory(config, batch, resolution, &wgpu::Limits::default(), true)?;
    let total = |m: &MemoryReport| m.params + m.other_dedicated + m.shared;
    writeln!(
        s,
        "                  in all: {} with conv operands in buffers, {} with them packed in textures (--conv-storage texture)",
        mib(total(&train)),
        mib(total(&textured))
    )
    .unwrap();
    Ok(s)
}

/// 71489284 -> "71,489,284".
pub fn group_digits(v: u64) -> String {
    let d = v.to_string();
    let mut out = String::new();
    for (i, ch) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
