//! The text of `nfnet info`: a model's layer table, its parameter count and multiply-adds, and
//! the memory its plans take (limits as WebGPU's defaults: 128 MiB bindings).

use super::config::ModelConfig;
use super::recipe::{inference_graph, inference_memory, training_memory, TrainingSetup};
use crate::error::Result;
use crate::graph::plan::MemoryReport;
use crate::ops::grouped_conv::Storage;
use std::fmt::Write;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The text of `nfnet info`: the layer table, parameter count, multiply-adds per image at
/// `resolution`, and the planned memory of an inference pass and a training step of `batch`.
pub fn describe(config: &ModelConfig, resolution: usize, batch: usize) -> Result<String> {
    let blocks = config.blocks()?;
    let one = inference_graph(config, 1, (resolution, resolution))?;
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
    planned_memory(&mut s, config, resolution, batch)?;
    Ok(s)
}

/// The planned memory of an inference pass and a training step of `batch` at `resolution`.
fn planned_memory(s: &mut String, config: &ModelConfig, resolution: usize, batch: usize) -> Result<()> {
    let limits = wgpu::Limits::default();
    let inf = inference_memory(config, batch, (resolution, resolution), &limits, Storage::Buffer)?;
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
    let setup = TrainingSetup::new(batch, (resolution, resolution));
    let train = training_memory(config, &setup, &limits, Storage::Buffer)?;
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
    let textured = training_memory(config, &setup, &limits, Storage::Texture)?;
    let total = |m: &MemoryReport| m.params + m.other_dedicated + m.shared;
    writeln!(
        s,
        "                  in all: {} with conv operands in buffers, {} with them packed in textures",
        mib(total(&train)),
        mib(total(&textured))
    )
    .unwrap();
    Ok(())
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
