//! Kernel benchmarks at the shapes of dm_nfnet_f0 (192x192 input, batch 8): every distinct conv
//! (stem, each stage's 1x1, grouped 3x3, strided and shortcut convs, the final conv) forward,
//! input gradient and weight gradient, then weight standardization and AGC over all F0 weights.
//!
//!   cargo bench --bench ops                 every row
//!   cargo bench --bench ops -- grouped_conv c768     rows whose text contains every filter word
//!
//! One row a line, for scripts:
//!   bench adapter="..." op=grouped_conv pass=forward shape=n8_c768_g6_12x12_k3_s1 ms=... gflops=...
//! With `NFNET_YARDSTICK="matmul_gflops=X copy_gbs=Y"` (the yardstick's last line, from a run
//! right before on the same adapter; `tools/bench_vs_yardstick.sh` does both) each row also gets
//! its ratio to the yardstick matmul (compute-bound rows) or copy (memory-bound rows).
//! Times are wall-clock per submission (one submit and wait), the median of up to 5 after a warm-up.

use nfnet::gpu::{Gpu, GpuTensor, Launch};
use nfnet::ops::agc::{self, Agc};
use nfnet::ops::grouped_conv::{self, Conv2d, Packing, Padding};
use nfnet::ops::weight_std::{self, WeightStd, WsForm};
use std::time::Instant;

/// One conv of F0 by its role, input size and stride.
struct F0Conv {
    c: usize,
    hw: usize,
    k: usize,
    rs: usize,
    groups: usize,
    stride: usize,
}

/// Every conv of dm_nfnet_f0 at `res`, in network order (repeats included).
fn f0_convs(res: usize) -> Vec<F0Conv> {
    let conv = |c, hw, k, rs, groups, stride| F0Conv {
        c,
        hw,
        k,
        rs,
        groups,
        stride,
    };
    let mut v = vec![
        conv(3, res, 16, 3, 1, 2),
        conv(16, res / 2, 32, 3, 1, 1),
        conv(32, res / 2, 64, 3, 1, 1),
        conv(64, res / 2, 128, 3, 1, 2),
    ];
    let (widths, depths, strides) = ([256, 512, 1536, 1536], [1, 2, 6, 3], [1, 2, 2, 2]);
    let (mut c, mut hw) = (128, res / 4);
    for s in 0..4 {
        let (out, mid) = (widths[s], widths[s] / 2);
        let groups = mid / 128;
        for b in 0..depths[s] {
            let stride = if b == 0 { strides[s] } else { 1 };
            let out_hw = hw / stride;
            if b == 0 {
                v.push(conv(c, out_hw, out, 1, 1, 1)); // shortcut, after the pool
            }
            v.push(conv(c, hw, mid, 1, 1, 1));
            v.push(conv(mid, hw, mid, 3, groups, stride));
            v.push(conv(mid, out_hw, mid, 3, groups, 1));
            v.push(conv(mid, out_hw, out, 1, 1, 1));
            c = out;
            hw = out_hw;
        }
    }
    v.push(conv(1536, hw, 3072, 1, 1, 1));
    v
}

fn spec(n: usize, f: &F0Conv) -> Conv2d {
    Conv2d {
        n,
        c: f.c,
        h: f.hw,
        w: f.hw,
        k: f.k,
        r: f.rs,
        s: f.rs,
        groups: f.groups,
        stride: (f.stride, f.stride),
        pad: Padding::same(f.hw, f.hw, f.rs, f.rs, (f.stride, f.stride)),
        bias: true,
    }
}

fn shape_name(s: &Conv2d) -> String {
    format!("n{}_c{}_g{}_{}x{}_k{}_s{}_o{}", s.n, s.c, s.groups, s.h, s.w, s.r, s.stride.0, s.k)
}

struct Bench<'a> {
    gpu: &'a Gpu,
    adapter: String,
    filters: Vec<String>,
    yardstick: Option<(f64, f64)>,
}

impl Bench<'_> {
    fn wanted(&self, row: &str) -> bool {
        self.filters.iter().all(|f| row.contains(f.as_str()))
    }

    /// Median seconds of one submission of `launches`.
    fn time(&self, launches: &[&Launch]) -> f64 {
        self.gpu.run(launches).expect("warm-up run");
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 5 && (times.len() < 1 || start.elapsed().as_secs_f64() < 2.0) {
            let t = Instant::now();
            self.gpu.run(launches).expect("timed run");
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    /// Prints one row: GFLOP/s for `flops`, or GB/s for `bytes` when `flops` is 0.
    fn row(&self, key: &str, secs: f64, flops: f64, bytes: f64) {
        let (metric, value) = if flops > 0.0 {
            ("gflops", flops / secs / 1e9)
        } else {
            ("gbs", bytes / secs / 1e9)
        };
        let ratio = match self.yardstick {
            Some((mm, _)) if flops > 0.0 => format!(" ratio_matmul={:.2}", value / mm),
            Some((_, copy)) => format!(" ratio_copy={:.2}", value / copy),
            None => String::new(),
        };
        println!(
            "bench adapter=\"{}\" {key} ms={:.3} {metric}={value:.3}{ratio}",
            self.adapter,
            secs * 1e3
        );
    }
}

fn parse_yardstick(s: &str) -> Option<(f64, f64)> {
    let get = |name: &str| {
        s.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    Some((get("matmul_gflops")?, get("copy_gbs")?))
}

fn tensor(gpu: &Gpu, label: &str, shape: &[usize]) -> GpuTensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 / 1000.0) - 1.0)
        .collect();
    GpuTensor::from_f32(gpu, label, shape, &data).expect("bench tensor")
}

fn conv_rows(b: &Bench, n: usize) {
    let mut seen = Vec::new();
    for f in f0_convs(192) {
        let s = spec(n, &f);
        let name = shape_name(&s);
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let keys = ["forward", "backward_input", "backward_weight"].map(|pass| format!("op=grouped_conv pass={pass} shape={name}"));
        if !keys.iter().any(|k| b.wanted(k)) {
            continue;
        }
        let gpu = b.gpu;
        let (x, w, bias, y) = (
            tensor(gpu, "x", &s.x_shape()),
            tensor(gpu, "w", &s.w_shape()),
            tensor(gpu, "b", &[s.k]),
            tensor(gpu, "y", &s.y_shape()),
        );
        let (dw, db) = (tensor(gpu, "dw", &s.w_shape()), tensor(gpu, "db", &[s.k]));
        let flops = 2.0 * s.macs() as f64;
        // Weights are packed once per step (with their standardization), not per conv call:
        // time the convs on packed weights, where the autotuner keeps them.
        let packed = |packing| {
            let len = grouped_conv::packed_len(&s, packing);
            let t = match gpu.packed_in_textures() {
                true => GpuTensor::texture(gpu, "packed", &[len]),
                false => GpuTensor::zeros(gpu, "packed", &[len]),
            }
            .expect("packed weights");
            gpu.run(&[&grouped_conv::pack_weight(gpu, &s, &w, &t, packing).expect("pack")])
                .expect("pack");
            t
        };
        let (packed_out, packed_in) = (packed(Packing::OutputInner), packed(Packing::InputInner));
        let launches = [
            grouped_conv::forward_packed(gpu, &s, &x, &packed_out, Some(&bias), &y).expect("forward"),
            grouped_conv::backward_input_packed(gpu, &s, &y, &packed_in, &x, false).expect("backward_input"),
            grouped_conv::backward_weight(gpu, &s, &x, &y, &dw, Some(&db)).expect("backward_weight"),
        ];
        for (key, launch) in keys.iter().zip(&launches) {
            if b.wanted(key) {
                b.row(key, b.time(&[launch]), flops, 0.0);
            }
        }
    }
}

fn weight_rows(b: &Bench) {
    let convs = f0_convs(192);
    let ws_keys = [
        "op=weight_std pass=forward shape=f0_all_convs",
        "op=weight_std pass=backward shape=f0_all_convs",
    ];
    let agc_key = "op=agc pass=clip shape=f0_all_conv_weights";
    if !ws_keys.iter().chain([&agc_key]).any(|k| b.wanted(k)) {
        return;
    }
    let gpu = b.gpu;
    let (mut fwd, mut bwd, mut clip) = (Launch::new(), Launch::new(), Launch::new());
    let mut tensors = Vec::new();
    let mut elements = 0usize;
    for f in &convs {
        let s = spec(1, f);
        let ws = WeightStd {
            k: s.k,
            fan_in: s.w_shape()[1..].iter().product(),
            eps: 1e-5,
            form: WsForm::Timm,
            multiplier: 1.0,
        };
        let w = tensor(gpu, "w", &s.w_shape());
        let gain = tensor(gpu, "gain", &[s.k]);
        let (w_hat, stats, dw, dgain) = (
            tensor(gpu, "w_hat", &s.w_shape()),
            tensor(gpu, "stats", &[s.k, 2]),
            tensor(gpu, "dw", &s.w_shape()),
            tensor(gpu, "dgain", &[s.k]),
        );
        fwd.extend(weight_std::forward(gpu, &ws, &w, &gain, &w_hat, &stats).expect("ws forward"));
        bwd.extend(weight_std::backward(gpu, &ws, &w, &gain, &stats, &w_hat, &dw, &dgain).expect("ws backward"));
        clip.extend(agc::clip(gpu, &Agc::for_shape(&s.w_shape(), 0.01, 1e-3), &w, &dw).expect("agc"));
        elements += w.numel();
        tensors.extend([w, gain, w_hat, stats, dw, dgain]);
    }
    let e = elements as f64 * 4.0;
    // Bytes moved: forward reads w twice and writes w_hat; backward reads w and dw_hat twice and
    // writes dw; AGC reads w and g and writes g.
    for (key, launch, bytes) in [(ws_keys[0], &fwd, 3.0 * e), (ws_keys[1], &bwd, 5.0 * e), (agc_key, &clip, 3.0 * e)] {
        if b.wanted(key) {
            b.row(key, b.time(&[launch]), 0.0, bytes);
        }
    }
}

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let gpu = Gpu::new().unwrap_or_else(|e| {
        eprintln!("bench: {e}");
        std::process::exit(1)
    });
    let info = &gpu.info;
    let bench = Bench {
        gpu: &gpu,
        adapter: format!("{} ({:?})", info.name, info.backend),
        filters,
        yardstick: std::env::var("NFNET_YARDSTICK").ok().and_then(|s| parse_yardstick(&s)),
    };
    eprintln!("bench: adapter {}", gpu.describe());
    conv_rows(&bench, 8);
    weight_rows(&bench);
}
