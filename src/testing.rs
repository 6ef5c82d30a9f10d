//! Test support shared by the integration tests and the benchmarks (not a stable API).
//!
//! * [`gpu_or_skip`]: one shared context per test binary (autotuning off). Without an adapter a developer's run
//!   skips GPU tests with a note; under CI (`CI` set) or with `REQUIRE_GPU=1` it fails loudly.
//! * Seeded random data ([`Rng`]), NaN-poisoned outputs ([`poisoned`]), and [`check`]: the
//!   relative L2 error of a GPU result against the f64 reference, with the max abs/rel error and
//!   the worst elements in the report.
//! * [`finite_diff`]: central differences, to check the references' backward passes.
//! * [`conv_cases`]: the convolution case table used by the tests and the benchmarks.

use crate::gpu::{Gpu, GpuTensor};
use crate::ops::grouped_conv::{Conv2d, Padding};
use rand::{Rng as _, SeedableRng};
use std::io::Write;
use std::sync::OnceLock;

/// The shared GPU, or `None` (after printing why) on a machine without an adapter.
/// Panics when an adapter is required (`CI` or `REQUIRE_GPU=1` set) but missing.
pub fn gpu_or_skip() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let required =
            std::env::var_os("CI").is_some_and(|v| v != "false" && v != "0") || std::env::var_os("REQUIRE_GPU").is_some_and(|v| v == "1");
        // Written to the process's stderr directly, past the test harness's capture, so that
        // the log of every run says which adapter the GPU tests used.
        let mut err = std::io::stderr();
        // Autotuning off: the kernel tests pin their tiles; tests/ops.rs runs every tile and
        // tests the tuner on a context of its own.
        let options = crate::gpu::GpuOptions {
            autotune: Some(false),
            ..Default::default()
        };
        match Gpu::with_options(&options) {
            Ok(gpu) => {
                let _ = writeln!(err, "nfnet tests: GPU adapter: {}", gpu.describe());
                Some(gpu)
            }
            Err(e) if required => panic!("GPU tests are required here (CI or REQUIRE_GPU=1) but no adapter opened: {e}"),
            Err(e) => {
                let _ = writeln!(err, "nfnet tests: skipping GPU tests, no adapter: {e}");
                None
            }
        }
    })
    .as_ref()
}

/// The shared GPU and, on the same adapter, a context whose workgroup-tree reductions use the
/// other lane count (64 where the shared one uses 8, else 8): the tests of the reducing kernels
/// run both, so a CI on a CPU adapter also covers the width GPUs use. Empty without an adapter.
pub fn reduce_width_gpus() -> Vec<&'static Gpu> {
    static OTHER: OnceLock<Gpu> = OnceLock::new();
    let Some(gpu) = gpu_or_skip() else { return vec![] };
    let other = OTHER.get_or_init(|| {
        let options = crate::gpu::GpuOptions {
            autotune: Some(false),
            reduce_lanes: Some(if gpu.reduce_lanes() == 8 { 64 } else { 8 }),
            ..Default::default()
        };
        Gpu::with_options(&options).expect("a second context on the adapter that opened once")
    });
    vec![gpu, other]
}

/// A seeded random source for test data.
pub struct Rng(rand::rngs::StdRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// A fresh seed for this run (printed by the tests so a failure can be replayed with
    /// `NFNET_TEST_SEED`).
    pub fn fresh_seed() -> u64 {
        match std::env::var("NFNET_TEST_SEED").ok().and_then(|s| s.parse().ok()) {
            Some(seed) => seed,
            None => rand::rng().random(),
        }
    }

    /// `n` draws from N(0, 1) (Box-Muller).
    pub fn normal(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u1: f64 = 1.0 - self.0.random::<f64>();
                let u2: f64 = self.0.random();
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    /// `n` draws from U[lo, hi).
    pub fn uniform(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| lo + (hi - lo) * self.0.random::<f64>()).collect()
    }

    /// `n` integers in 0..bound.
    pub fn below(&mut self, n: usize, bound: u32) -> Vec<u32> {
        (0..n).map(|_| self.0.random_range(0..bound)).collect()
    }
}

/// Rounds to f32, as uploaded. References are then computed from the rounded values.
pub fn round_f32(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| x as f32 as f64).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Uploads f64 test data (rounded to f32).
pub fn upload(gpu: &Gpu, label: &str, shape: &[usize], data: &[f64]) -> GpuTensor {
    GpuTensor::from_f32(gpu, label, shape, &to_f32(data)).unwrap_or_else(|e| panic!("uploading {label}: {e}"))
}

/// An output tensor filled with NaN, so any element a kernel fails to write shows up.
pub fn poisoned(gpu: &Gpu, label: &str, shape: &[usize]) -> GpuTensor {
    GpuTensor::filled(gpu, label, shape, f32::NAN).unwrap_or_else(|e| panic!("allocating {label}: {e}"))
}

/// Reads a tensor back as f64.
pub fn read(gpu: &Gpu, t: &GpuTensor) -> Vec<f64> {
    t.read_f32(gpu)
        .unwrap_or_else(|e| panic!("reading {}: {e}", t.label()))
        .iter()
        .map(|&v| v as f64)
        .collect()
}

/// The relative L2 error `|got - want| / |want|` and a report of the worst elements.
pub fn rel_l2(got: &[f64], want: &[f64]) -> (f64, String) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let mut diff2 = 0.0;
    let mut norm2 = 0.0;
    let mut max_abs = (0.0f64, 0usize);
    let mut max_rel = (0.0f64, 0usize);
    let mut nonfinite = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !g.is_finite() {
            nonfinite += 1;
        }
        let d = (g - w).abs();
        diff2 += (g - w) * (g - w);
        norm2 += w * w;
        if !(d <= max_abs.0) {
            max_abs = (d, i);
        }
        let r = d / w.abs().max(1e-30);
        if !(r <= max_rel.0) && w.abs() > 1e-6 {
            max_rel = (r, i);
        }
    }
    let err = if nonfinite > 0 {
        f64::INFINITY
    } else {
        diff2.sqrt() / norm2.sqrt().max(1e-30)
    };
    let report = format!(
        "rel L2 {err:.3e}; max abs err {:.3e} at [{}] (got {}, want {}); max rel err {:.3e} at [{}] (got {}, want {}); {nonfinite} non-finite",
        max_abs.0, max_abs.1, got[max_abs.1], want[max_abs.1], max_rel.0, max_rel.1, got[max_rel.1], want[max_rel.1]
    );
    (err, report)
}

/// Panics with a full report unless `got` matches `want` within relative L2 error `tol`.
pub fn check(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let (err, report) = rel_l2(got, want);
    assert!(err <= tol, "{what}: {report} (tolerance {tol:.0e})");
}

/// Tolerance for a result whose elements sum `terms` products: 1e-5, or 1e-4 past 10^5 terms.
pub fn tol_for_terms(terms: usize) -> f64 {
    if terms > 100_000 {
        1e-4
    } else {
        1e-5
    }
}

/// Central differences of `f` at `x` along the coordinates `at`, with step `h`.
pub fn finite_diff(f: impl Fn(&[f64]) -> f64, x: &[f64], at: &[usize], h: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    at.iter()
        .map(|&i| {
            let x0 = x[i];
            x[i] = x0 + h;
            let up = f(&x);
            x[i] = x0 - h;
            let down = f(&x);
            x[i] = x0;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `sum_i a_i b_i`: the scalar loss `<dy, f(x)>` whose gradient a backward pass computes.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A named convolution shape for tests and benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub name: &'static str,
    pub spec: Conv2d,
}

fn conv(n: usize, c: usize, hw: (usize, usize), k: usize, rs: usize, groups: usize, stride: usize, pad: Padding, bias: bool) -> Conv2d {
    Conv2d {
        n,
        c,
        h: hw.0,
        w: hw.1,
        k,
        r: rs,
        s: rs,
        groups,
        stride: (stride, stride),
        pad,
        bias,
    }
}

/// Small convolutions with every awkward property: odd sizes, stride 2 on odd maps, asymmetric
/// SAME padding, groups > 1 (with channel blocks that do not fill the register block),
/// depthwise, 1x1 spatial maps, channel counts past one workgroup, no bias.
pub fn conv_cases() -> Vec<ConvCase> {
    let same = |h: usize, w: usize, k: usize, s: usize| Padding::same(h, w, k, k, (s, s));
    let sym = |k: usize, s: usize| Padding::symmetric(k, k, (s, s));
    vec![
        ConvCase {
            name: "stem_k3_s2_same",
            spec: conv(2, 3, (9, 8), 5, 3, 1, 2, same(9, 8, 3, 2), true),
        },
        ConvCase {
            name: "grouped_k3_s1",
            spec: conv(2, 16, (5, 6), 16, 3, 2, 1, sym(3, 1), true),
        },
        ConvCase {
            name: "grouped_k3_s2_odd",
            spec: conv(3, 12, (7, 9), 18, 3, 3, 2, same(7, 9, 3, 2), true),
        },
        ConvCase {
            name: "grouped_k3_s2_sym",
            spec: conv(2, 12, (7, 7), 12, 3, 3, 2, sym(3, 2), false),
        },
        ConvCase {
            name: "depthwise_k3",
            spec: conv(2, 10, (6, 5), 10, 3, 10, 1, sym(3, 1), true),
        },
        ConvCase {
            name: "pointwise_1x1_spatial",
            spec: conv(4, 33, (1, 1), 17, 1, 1, 1, Padding::default(), false),
        },
        ConvCase {
            name: "pointwise_wide",
            spec: conv(2, 70, (3, 5), 65, 1, 1, 1, Padding::default(), true),
        },
        ConvCase {
            name: "k3_1x1_spatial_same",
            spec: conv(3, 8, (1, 1), 9, 3, 1, 1, same(1, 1, 3, 1), true),
        },
        ConvCase {
            name: "group_width_128_s2",
            spec: conv(1, 256, (5, 5), 256, 3, 2, 2, same(5, 5, 3, 2), true),
        },
        ConvCase {
            name: "asymmetric_pad",
            spec: conv(
                2,
                6,
                (6, 7),
                4,
                3,
                2,
                1,
                Padding {
                    top: 2,
                    bottom: 0,
                    left: 0,
                    right: 1,
                },
                true,
            ),
        },
    ]
}
