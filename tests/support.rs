//! Test support shared by the test modules.
//!
//! * [`gpu_or_skip`]: one shared context per test binary. Without an adapter a developer's run
//!   skips GPU tests with a note; under CI (`CI` set) or with `REQUIRE_GPU=1` it fails loudly.
//! * Seeded random data ([`Rng`]), NaN-poisoned outputs ([`poisoned`]), and [`check`]: the
//!   relative L2 error of a GPU result against the f64 reference, with the max abs/rel error and
//!   the worst elements in the report.
//! * [`finite_diff`]: central differences, to check the references' backward passes.
//! * [`conv_cases`]: the convolution case table.

use nfnet::gpu::{Gpu, GpuTensor};
use nfnet::ops::grouped_conv::{Conv2d, Padding};
use rand::{Rng as _, SeedableRng};
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The shared GPU, or `None` (after printing why) on a machine without an adapter.
/// Panics when an adapter is required (`CI` or `REQUIRE_GPU=1` set) but missing.
///
/// On the GL backend the calling test also takes the GPU for itself until it ends
/// ([`serialize_gl_tests`]).
pub fn gpu_or_skip() -> Option<&'static Gpu> {
    let gpu = shared_gpu()?;
    if gpu.info.backend == wgpu::Backend::Gl {
        serialize_gl_tests();
    }
    Some(gpu)
}

/// Runs the GPU tests on GL one at a time: the first call on a test's thread waits for the
/// previous GPU test to end, and the turn is handed on when this test's thread ends (after its
/// tensors are dropped, also when it panics). wgpu-hal's GL backend makes every call from every
/// thread take one lock on the EGL context and panics when it waits more than 6 s for it
/// (`AdapterContext::lock`, gfx-rs/wgpu#5299). A submit holds that lock while llvmpipe compiles
/// the kernels it dispatches first and runs them, often longer, so a test creating or dropping
/// a tensor meanwhile panicked, and its unwinding dropped a texture, which panicked again in
/// the destructor and aborted the test binary.
fn serialize_gl_tests() {
    static TURN: Mutex<()> = Mutex::new(());
    thread_local! {
        static HELD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
    }
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.is_none() {
            *held = Some(TURN.lock().unwrap_or_else(|p| p.into_inner()));
        }
    });
}

fn shared_gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let required =
            std::env::var_os("CI").is_some_and(|v| v != "false" && v != "0") || std::env::var_os("REQUIRE_GPU").is_some_and(|v| v == "1");
        // Written to the process's stderr directly, past the test harness's capture, so that
        // the log of every run says which adapter the GPU tests used.
        let mut err = std::io::stderr();
        match Gpu::new() {
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
        let options = nfnet::GpuOptions {
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

/// A fresh seeded source for the test `test`, and its seed, for the failure message.
pub fn rng(test: &str) -> (Rng, String) {
    let seed = Rng::fresh_seed();
    let salt = test.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    (Rng::new(seed ^ salt), format!("NFNET_TEST_SEED={seed}"))
}

/// `n` draws from N(0, scale^2), rounded to f32.
pub fn normal(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    round_f32(&rng.normal(n).iter().map(|v| v * scale).collect::<Vec<_>>())
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

/// Small convolutions with every awkward property: odd sizes, stride 2 on odd maps, asymmetric
/// SAME padding, groups > 1 (with channel blocks that do not fill the register block),
/// depthwise, 1x1 spatial maps, channel counts past one workgroup, no bias.
pub fn conv_cases() -> Vec<ConvCase> {
    let case = |name, spec| ConvCase { name, spec };
    vec![
        case("stem_k3_s2_same", Conv2d::same([2, 3, 9, 8], 5, 3, 2).with_bias(true)),
        case(
            "grouped_k3_s1",
            Conv2d::symmetric([2, 16, 5, 6], 16, 3, 1).groups(2).with_bias(true),
        ),
        case("grouped_k3_s2_odd", Conv2d::same([3, 12, 7, 9], 18, 3, 2).groups(3).with_bias(true)),
        case("grouped_k3_s2_sym", Conv2d::symmetric([2, 12, 7, 7], 12, 3, 2).groups(3)),
        case(
            "depthwise_k3",
            Conv2d::symmetric([2, 10, 6, 5], 10, 3, 1).groups(10).with_bias(true),
        ),
        case("pointwise_1x1_spatial", Conv2d::same([4, 33, 1, 1], 17, 1, 1)),
        case("pointwise_wide", Conv2d::same([2, 70, 3, 5], 65, 1, 1).with_bias(true)),
        case("pointwise_grouped", Conv2d::same([3, 40, 5, 3], 48, 1, 1).groups(2)),
        case("k3_1x1_spatial_same", Conv2d::same([3, 8, 1, 1], 9, 3, 1).with_bias(true)),
        case(
            "group_width_128_s2",
            Conv2d::same([1, 256, 5, 5], 256, 3, 2).groups(2).with_bias(true),
        ),
        case("wide_row_k3_s2", Conv2d::same([1, 6, 3, 37], 8, 3, 2).groups(2)),
        case(
            "asymmetric_pad",
            Conv2d::same([2, 6, 6, 7], 4, 3, 1).groups(2).with_bias(true).padding(Padding {
                top: 2,
                bottom: 0,
                left: 0,
                right: 1,
            }),
        ),
    ]
}

/// One kernel check: inputs uploaded from f64 data, every output poisoned with NaN (or holding
/// a start value: a gradient accumulated into, a parameter updated in place), the launches run
/// in one submission, then every output read back and compared with its reference within its
/// tolerance ([`check`]). A failure names the case and the output.
pub struct Check<'g> {
    gpu: &'g Gpu,
    name: String,
    outputs: Vec<(String, GpuTensor, Vec<f64>, f64)>,
}

impl<'g> Check<'g> {
    pub fn new(gpu: &'g Gpu, name: impl Into<String>) -> Check<'g> {
        Check {
            gpu,
            name: name.into(),
            outputs: Vec::new(),
        }
    }

    /// An input holding `data` (rounded to f32).
    pub fn input(&self, label: &str, shape: &[usize], data: &[f64]) -> GpuTensor {
        upload(self.gpu, label, shape, data)
    }

    /// An output, poisoned, that must come out as `want` within relative L2 error `tol`.
    pub fn output(&mut self, what: &str, shape: &[usize], want: Vec<f64>, tol: f64) -> GpuTensor {
        let t = poisoned(self.gpu, what, shape);
        self.outputs.push((what.into(), t.clone(), want, tol));
        t
    }

    /// An output that starts as `start` and must come out as `want` within `tol`.
    pub fn in_place(&mut self, what: &str, shape: &[usize], start: &[f64], want: Vec<f64>, tol: f64) -> GpuTensor {
        let t = upload(self.gpu, what, shape, start);
        self.outputs.push((what.into(), t.clone(), want, tol));
        t
    }

    /// Builds `launches` (an error fails the case), runs them in one submission, and checks
    /// every output.
    pub fn run(self, launches: impl IntoIterator<Item = nfnet::Result<nfnet::gpu::Launch>>) {
        let name = &self.name;
        let launches: Vec<_> = (launches.into_iter())
            .map(|l| l.unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect();
        self.gpu.run(&launches.iter().collect::<Vec<_>>()).unwrap();
        for (what, t, want, tol) in &self.outputs {
            check(&format!("{name} {what}"), &read(self.gpu, t), want, *tol);
        }
    }
}

/// `a + b`, elementwise: a gradient accumulated into a buffer holding `b`.
pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}
