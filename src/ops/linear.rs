//! `linear`: a fully connected layer, `y = x W^T + b`: the classifier head and SE's fc1 and fc2
//! (1x1 convs in timm's weights, `[O, I, 1, 1]`, the same memory as `[O, I]`).
//!
//! ```text
//! x [N, I]   w [O, I]   b [O]   y [N, O]
//! y  = x W^T + b
//! dx (+)= dy W          dW = dy^T x          db = sum_n dy
//! ```

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::{check_numel, check_shape};

/// The shape of one linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub n: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    i: u32,
    o: u32,
    has_bias: u32,
    accumulate: u32,
    _pad: [u32; 3],
}

/// Outputs per invocation of the forward (`TO` there): 16. Each chunk of 4 inputs it loads then
/// feeds 64 multiply-adds; on lavapipe 16 ran the F0 layers 1.2x faster than 8 and 1.5x faster
/// than 4, once the stores no longer kept the tile out of registers (`EDGES`).
const FORWARD_OUTPUTS: usize = 16;
/// Inputs per invocation of the input gradient (`TI` there): each of the TN dy values it loads
/// (the same for every lane) feeds 8 multiply-adds; on a software device the loads, not the
/// multiply-adds, are what costs.
const INPUT_COLUMNS: usize = 8;
/// dW's tile per invocation of the weight gradient (`TO` x `TI` there): per sample, 16 dy and 8
/// x loads feed 128 multiply-adds.
const WEIGHT_ROWS: usize = 16;
const WEIGHT_COLUMNS: usize = 8;
/// Invocations per workgroup of the forward and the input gradient: few, so that even a layer
/// of 768 outputs (SE's fc1 in F0) gives 12 workgroups to share among a CPU adapter's threads.
const LANES: usize = 16;

/// Rows of x (or dy) per invocation of the forward and the input gradient (the override `TN`):
/// 8 from batch 8 up, so that each weight is read once per 8 rows, else 4 (fewer rows computed
/// only to be dropped). Public for the shader translation test (`tests/translate.rs`), which
/// compiles the kernels with every value it returns.
pub fn rows(n: usize) -> usize {
    if n >= 8 {
        8
    } else {
        4
    }
}

/// The override `EDGES`: 0 when the tile (`rows` x `tile` columns) divides the output
/// (`n` x `columns`), so that no store needs a guard.
fn edges(n: usize, rows: usize, columns: usize, tile: usize) -> f64 {
    (n % rows != 0 || columns % tile != 0) as u32 as f64
}

impl Linear {
    fn params(&self, accumulate: bool) -> Params {
        Params {
            n: self.n as u32,
            i: self.in_features as u32,
            o: self.out_features as u32,
            has_bias: self.bias as u32,
            accumulate: accumulate as u32,
            _pad: [0; 3],
        }
    }

    fn validate(&self, op: &str) -> Result<()> {
        if self.n == 0 || self.in_features == 0 || self.out_features == 0 {
            return Err(Error::shape(
                op,
                "N, in, out",
                "all > 0",
                format!("{}, {}, {}", self.n, self.in_features, self.out_features),
            ));
        }
        Ok(())
    }

    /// Checks the weight (`[O, I]` or `[O, I, 1, 1]`) and the bias.
    fn check_params(&self, op: &str, what: &str, w: &GpuTensor, b: Option<&GpuTensor>) -> Result<()> {
        check_numel(op, what, w, self.out_features * self.in_features)?;
        if w.shape()[..2.min(w.shape().len())] != [self.out_features, self.in_features][..2.min(w.shape().len())] {
            return Err(Error::shape(
                op,
                what,
                format!("[{}, {}]", self.out_features, self.in_features),
                format!("{:?}", w.shape()),
            ));
        }
        match (self.bias, b) {
            (true, Some(b)) => check_numel(op, "bias", b, self.out_features),
            (false, None) => Ok(()),
            (true, None) => Err(Error::invalid(op, "the layer has a bias but no bias tensor was given")),
            (false, Some(_)) => Err(Error::invalid(op, "a bias tensor was given but the layer has none")),
        }
    }
}

fn placeholder(gpu: &Gpu, slot: &mut Option<GpuTensor>) -> Result<()> {
    *slot = Some(GpuTensor::zeros(gpu, "no bias", &[1])?);
    Ok(())
}

/// `y = x W^T + b`.
pub fn forward(gpu: &Gpu, spec: &Linear, x: &GpuTensor, w: &GpuTensor, b: Option<&GpuTensor>, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::LinearForward;
    let op = kernel.name();
    spec.validate(op)?;
    check_shape(op, "x", x, &[spec.n, spec.in_features])?;
    spec.check_params(op, "w", w, b)?;
    check_shape(op, "y", y, &[spec.n, spec.out_features])?;
    let mut none = None;
    if b.is_none() {
        placeholder(gpu, &mut none)?;
    }
    let bias = b.or(none.as_ref()).expect("a bias or its placeholder");
    let rows = rows(spec.n);
    let groups = [
        spec.out_features.div_ceil(FORWARD_OUTPUTS * LANES) as u32,
        spec.n.div_ceil(rows) as u32,
        1,
    ];
    let step = Step::new(
        gpu,
        kernel,
        &[
            ("TN", rows as f64),
            ("EDGES", edges(spec.n, rows, spec.out_features, FORWARD_OUTPUTS)),
        ],
        &spec.params(false),
        &[x.into(), w.into(), bias.into(), y.into()],
        groups,
    )?;
    Ok(Launch {
        steps: vec![step],
        scratch: none.into_iter().collect(),
    })
}

/// `dx (+)= dy W`.
pub fn backward_input(gpu: &Gpu, spec: &Linear, dy: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<Launch> {
    let kernel = Kernel::LinearBackwardInput;
    let op = kernel.name();
    spec.validate(op)?;
    check_shape(op, "dy", dy, &[spec.n, spec.out_features])?;
    check_numel(op, "w", w, spec.out_features * spec.in_features)?;
    check_shape(op, "dx", dx, &[spec.n, spec.in_features])?;
    let rows = rows(spec.n);
    let groups = [
        spec.in_features.div_ceil(INPUT_COLUMNS * LANES) as u32,
        spec.n.div_ceil(rows) as u32,
        1,
    ];
    let step = Step::new(
        gpu,
        kernel,
        &[("TN", rows as f64), ("EDGES", edges(spec.n, rows, spec.in_features, INPUT_COLUMNS))],
        &spec.params(accumulate),
        &[dy.into(), w.into(), dx.into()],
        groups,
    )?;
    Ok(Launch::from(step))
}

/// `dW = dy^T x` and `db = sum_n dy` (both overwritten; `db` iff the layer has a bias).
pub fn backward_weight(gpu: &Gpu, spec: &Linear, x: &GpuTensor, dy: &GpuTensor, dw: &GpuTensor, db: Option<&GpuTensor>) -> Result<Launch> {
    let kernel = Kernel::LinearBackwardWeight;
    let op = kernel.name();
    spec.validate(op)?;
    check_shape(op, "x", x, &[spec.n, spec.in_features])?;
    check_shape(op, "dy", dy, &[spec.n, spec.out_features])?;
    spec.check_params(op, "dw", dw, db)?;
    let mut none = None;
    if db.is_none() {
        placeholder(gpu, &mut none)?;
    }
    let bias = db.or(none.as_ref()).expect("a bias gradient or its placeholder");
    let groups = [
        (spec.in_features + spec.bias as usize).div_ceil(WEIGHT_COLUMNS * 64) as u32,
        spec.out_features.div_ceil(WEIGHT_ROWS) as u32,
        1,
    ];
    let step = Step::new(
        gpu,
        kernel,
        &[],
        &spec.params(false),
        &[x.into(), dy.into(), dw.into(), bias.into()],
        groups,
    )?;
    Ok(Launch {
        steps: vec![step],
        scratch: none.into_iter().collect(),
    })
}

/// The f64 reference.
pub mod cpu {
    use super::Linear;

    pub fn forward(spec: &Linear, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let (ni, no) = (spec.in_features, spec.out_features);
        let mut y = vec![0.0; spec.n * no];
        for n in 0..spec.n {
            for o in 0..no {
                let dot: f64 = (0..ni).map(|i| x[n * ni + i] * w[o * ni + i]).sum();
                y[n * no + o] = dot + b.map_or(0.0, |b| b[o]);
            }
        }
        y
    }

    pub fn backward_input(spec: &Linear, dy: &[f64], w: &[f64]) -> Vec<f64> {
        let (ni, no) = (spec.in_features, spec.out_features);
        let mut dx = vec![0.0; spec.n * ni];
        for n in 0..spec.n {
            for i in 0..ni {
                dx[n * ni + i] = (0..no).map(|o| dy[n * no + o] * w[o * ni + i]).sum();
            }
        }
        dx
    }

    /// Returns (dw, db).
    pub fn backward_weight(spec: &Linear, x: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (ni, no) = (spec.in_features, spec.out_features);
        let mut dw = vec![0.0; no * ni];
        let mut db = vec![0.0; no];
        for n in 0..spec.n {
            for o in 0..no {
                db[o] += dy[n * no + o];
                for i in 0..ni {
                    dw[o * ni + i] += dy[n * no + o] * x[n * ni + i];
                }
            }
        }
        (dw, db)
    }
}
