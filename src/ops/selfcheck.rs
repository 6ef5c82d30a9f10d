//! Every kernel against its CPU reference, on the adapter at hand: a self-test for a new
//! adapter, and what the browser test page runs (`examples/web`), where `cargo test` cannot go.
//!
//! [`run`] builds one small case per op, odd-shaped (sizes that are no multiple of a workgroup,
//! a tile or a texel; groups, stride 2, SAME padding), from a fixed seed, the way
//! `tests/ops.rs` does: inputs are f32 values, every output starts as NaN (or as a start value
//! for an accumulated gradient or an in-place update) so that an element a kernel never writes
//! cannot pass, the case's launches run in one submission, and each output is compared with
//! the op's f64 reference (`ops::<op>::cpu`) in relative L2 error.
//!
//! A case may run several kernels (a conv packs its weights before it convolves; a reduction
//! ends with `sum_partials`), and a kernel may run in several cases. Each kernel's row reports
//! the worst output of the cases that ran it, so a broken kernel fails its own row and those of
//! the kernels it feeds. Which kernels a case ran is read from its launches, and every entry of
//! [`Kernel::ALL`] gets a row: one that no case ran fails as "not covered".
//!
//! The cases themselves are in `selfcheck/cases.rs`. Everything here uses only async reads, so
//! the same code runs natively (under `pollster`: `cargo run --release --example selfcheck`)
//! and in a page.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::grouped_conv::{Conv2d, Storage};
use cases::{
    conv_case, conv_pair_case, dropout_case, gates_case, linear_case, pools_case, scaled_act_case, softmax_xent_case, subgroup_conv_case,
    updates_case, weight_std_case, workgroup_conv_case,
};
use rand::{Rng, SeedableRng};

mod cases;

/// One kernel's result: the worst output of the cases that ran it.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCheck {
    /// [`Kernel::name`], with ` (texture)` for the packing kernels that write a texture (the
    /// same shader file as their buffer twin, another prelude).
    pub name: String,
    /// Largest absolute difference from the reference.
    pub max_abs: f64,
    /// Relative L2 error `|got - want| / |want|` (infinite with a NaN left in an output).
    pub rel_l2: f64,
    pub ok: bool,
    /// The output the figures come from (`case: output`), or why the kernel failed.
    pub note: String,
}

/// The seed of every case's inputs.
const SEED: u64 = 0x5e1f_c4ec;

/// One output of a case: its tensor, reference and tolerance.
struct Output {
    what: String,
    tensor: GpuTensor,
    want: Vec<f64>,
    tol: f64,
}

/// One case: launches, and the outputs they must produce.
struct Case<'g> {
    gpu: &'g Gpu,
    name: String,
    outputs: Vec<Output>,
    launches: Vec<Launch>,
}

/// A case's result: the kernels it ran and its outputs' errors (`what`, max abs, rel L2, ok),
/// or the error that kept it from running.
struct CaseResult {
    name: String,
    kernels: Vec<Kernel>,
    outputs: std::result::Result<Vec<(String, f64, f64, bool)>, String>,
}

impl<'g> Case<'g> {
    fn new(gpu: &'g Gpu, name: impl Into<String>) -> Case<'g> {
        Case {
            gpu,
            name: name.into(),
            outputs: vec![],
            launches: vec![],
        }
    }

    fn input(&self, label: &str, shape: &[usize], data: &[f64]) -> Result<GpuTensor> {
        GpuTensor::from_f32(self.gpu, label, shape, &to_f32(data))
    }

    /// An output poisoned with NaN that must come out as `want` within `tol`.
    fn output(&mut self, what: &str, shape: &[usize], want: Vec<f64>, tol: f64) -> Result<GpuTensor> {
        let tensor = GpuTensor::filled(self.gpu, what, shape, f32::NAN)?;
        self.expect(what, &tensor, want, tol);
        Ok(tensor)
    }

    /// An output that starts as `start` and must come out as `want` within `tol`.
    fn in_place(&mut self, what: &str, shape: &[usize], start: &[f64], want: Vec<f64>, tol: f64) -> Result<GpuTensor> {
        let tensor = self.input(what, shape, start)?;
        self.expect(what, &tensor, want, tol);
        Ok(tensor)
    }

    fn expect(&mut self, what: &str, tensor: &GpuTensor, want: Vec<f64>, tol: f64) {
        self.outputs.push(Output {
            what: what.into(),
            tensor: tensor.clone(),
            want,
            tol,
        });
    }

    fn launch(&mut self, launch: Result<Launch>) -> Result<()> {
        self.launches.push(launch?);
        Ok(())
    }

    /// Runs the launches in one submission and compares every output.
    async fn finish(self) -> CaseResult {
        let kernels = (self.launches.iter()).flat_map(|l| l.steps.iter().map(|s| s.kernel())).collect();
        let outputs = async {
            self.gpu.run(&self.launches.iter().collect::<Vec<_>>())?;
            let mut out = Vec::with_capacity(self.outputs.len());
            for o in &self.outputs {
                let got = o.tensor.read_f32_async(self.gpu).await?;
                let Errors { rel_l2: rel, max_abs, .. } = errors(&got, o.want.iter().copied());
                out.push((o.what.clone(), max_abs, rel, rel <= o.tol));
            }
            Ok::<_, crate::Error>(out)
        };
        CaseResult {
            outputs: outputs.await.map_err(|e| e.to_string()),
            name: self.name,
            kernels,
        }
    }
}

/// How far a result is from what it should be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Errors {
    /// `|got - want| / |want|` in the L2 norm.
    pub rel_l2: f64,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Root mean square of the differences.
    pub rms: f64,
}

/// The errors of `got` against `want`, all infinite when the lengths differ or `got` holds a
/// NaN or an infinity (a kernel that wrote nothing leaves its NaN poison).
pub fn errors(got: &[f32], want: impl IntoIterator<Item = f64>) -> Errors {
    let infinite = Errors {
        rel_l2: f64::INFINITY,
        max_abs: f64::INFINITY,
        rms: f64::INFINITY,
    };
    if got.iter().any(|v| !v.is_finite()) {
        return infinite;
    }
    let (mut diff2, mut norm2, mut max_abs, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for w in want {
        let Some(&g) = got.get(n) else { return infinite };
        let d = g as f64 - w;
        diff2 += d * d;
        norm2 += w * w;
        max_abs = max_abs.max(d.abs());
        n += 1;
    }
    if n != got.len() {
        return infinite;
    }
    Errors {
        rel_l2: diff2.sqrt() / norm2.sqrt().max(1e-30),
        max_abs,
        rms: (diff2 / n.max(1) as f64).sqrt(),
    }
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Seeded test data, each value rounded to f32 (as uploaded: references see what kernels see).
struct Data(rand::rngs::StdRng);

impl Data {
    /// `n` draws from N(0, scale^2) (Box-Muller).
    fn normal(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u1: f64 = 1.0 - self.0.random::<f64>();
                let u2: f64 = self.0.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (z * scale) as f32 as f64
            })
            .collect()
    }

    fn below(&mut self, n: usize, bound: u32) -> Vec<u32> {
        (0..n).map(|_| self.0.random_range(0..bound)).collect()
    }
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Tolerance of a result that sums `terms` products: 1e-5, or 1e-4 past 10^5 terms.
fn tol_for_terms(terms: usize) -> f64 {
    if terms > 100_000 {
        1e-4
    } else {
        1e-5
    }
}

/// Runs every case and returns one row per kernel of [`Kernel::ALL`], in that order.
pub async fn run(gpu: &Gpu) -> Vec<KernelCheck> {
    let mut data = Data(rand::rngs::StdRng::seed_from_u64(SEED));
    let mut results = Vec::new();
    macro_rules! case {
        ($build:expr) => {
            match $build {
                Ok(case) => results.push(case.finish().await),
                Err((name, e)) => results.push(CaseResult {
                    name,
                    kernels: vec![],
                    outputs: Err(format!("{e}")),
                }),
            }
        };
    }
    // Groups of 4 and 6 channels (no whole texel), stride 2 on an odd map, SAME padding, bias.
    let conv = Conv2d::same([2, 12, 7, 9], 18, 3, 2).groups(3).with_bias(true);
    for storage in [Storage::Buffer, Storage::Texture] {
        case!(conv_case(gpu, &mut data, &conv, storage));
        case!(conv_pair_case(gpu, &mut data, &conv, storage));
    }
    case!(workgroup_conv_case(gpu, &mut data, &conv));
    if gpu.shares_subgroups() {
        case!(subgroup_conv_case(gpu, &mut data));
    }
    case!(weight_std_case(gpu, &mut data));
    case!(scaled_act_case(gpu, &mut data));
    case!(pools_case(gpu, &mut data));
    case!(gates_case(gpu, &mut data));
    case!(linear_case(gpu, &mut data));
    case!(softmax_xent_case(gpu, &mut data));
    case!(dropout_case(gpu, &mut data));
    case!(updates_case(gpu, &mut data));
    let mut rows = rows(&results);
    if !gpu.shares_subgroups() {
        for (row, _) in rows.iter_mut().zip(Kernel::ALL).filter(|(_, k)| k.needs_subgroups()) {
            (row.ok, row.note) = (true, "not run: the adapter has no subgroups of 8 to 64 lanes".into());
        }
    }
    rows
}

/// One row per kernel from the cases' results.
fn rows(results: &[CaseResult]) -> Vec<KernelCheck> {
    let mut rows: Vec<KernelCheck> = (Kernel::ALL.iter())
        .map(|k| KernelCheck {
            name: match k.preludes().iter().any(|p| p.ends_with("texture_out")) {
                true => format!("{} (texture)", k.name()),
                false => k.name().into(),
            },
            max_abs: 0.0,
            rel_l2: 0.0,
            ok: false,
            note: "not covered: no case ran it".into(),
        })
        .collect();
    let mut covered = vec![false; rows.len()];
    for result in results {
        for (i, kernel) in Kernel::ALL.iter().enumerate() {
            if !result.kernels.contains(kernel) {
                continue;
            }
            let row = &mut rows[i];
            if !covered[i] {
                (covered[i], row.ok, row.note) = (true, true, String::new());
            }
            match &result.outputs {
                Err(e) => (row.ok, row.note) = (false, format!("{}: {e}", result.name)),
                Ok(outputs) => {
                    for (what, max_abs, rel, ok) in outputs {
                        // The worst output decides the row (`!(a <= b)` also takes a NaN).
                        if !(*rel <= row.rel_l2) || row.note.is_empty() {
                            (row.rel_l2, row.max_abs) = (*rel, *max_abs);
                            if row.ok {
                                row.note = format!("{}: {what}", result.name);
                            }
                        }
                        if !ok && row.ok {
                            (row.ok, row.note) = (false, format!("{}: {what} off its reference", result.name));
                        }
                    }
                }
            }
        }
    }
    // A case that failed before it launched anything names no kernels: its error still fails
    // the check, as a row of its own.
    for result in results.iter().filter(|r| r.kernels.is_empty()) {
        if let Err(e) = &result.outputs {
            rows.push(KernelCheck {
                name: "(case)".into(),
                max_abs: f64::INFINITY,
                rel_l2: f64::INFINITY,
                ok: false,
                note: format!("{}: {e}", result.name),
            });
        }
    }
    rows
}

type Built<'g> = std::result::Result<Case<'g>, (String, crate::Error)>;

/// Wraps a case's construction so that an error is reported with the case's name.
fn build<'g>(name: String, f: impl FnOnce(&str) -> Result<Case<'g>>) -> Built<'g> {
    f(&name).map_err(|e| (name.clone(), e))
}
