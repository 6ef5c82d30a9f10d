//! `grouped_conv`: 2-D convolution with groups, strides, per-side zero padding and an optional
//! bias, and its gradients. One op covers every conv of an NFNet: the stem, 1x1 and grouped 3x3
//! convs (group width 128), strided transition convs, depthwise convs, shortcut and final convs.
//!
//! ```text
//! x  [N, C, H, W]        w  [K, C/G, R, S]     b  [K]          y  [N, K, P, Q]
//! P = (H + pad_top + pad_bottom - R) / sh + 1,  Q = (W + pad_left + pad_right - S) / sw + 1
//! y[n,k,p,q]  = b[k] + sum_{c,r,s} x[n, g*C/G + c, p*sh + r - pad_top, q*sw + s - pad_left] * w[k,c,r,s]
//!               (g = k / (K/G); x outside the image is 0)
//! dx[n,ci,..] = sum over the outputs each input pixel touched of dy * w          (backward_input)
//! dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, g*C/G + c, p*sh + r - pt, q*sw + s - pl]
//! db[k]       = sum_{n,p,q} dy[n,k,p,q]                                            (backward_weight)
//! ```
//!
//! Padding is given per side, so TF/JAX 'SAME' (asymmetric for stride 2: [`Padding::same`]) and
//! PyTorch's symmetric padding ([`Padding::symmetric`]) are both exact.
//!
//! The weight and bias gradients contract over N*P*Q: the rows (n, p) are cut into splits, each
//! split writes a partial sum, and `sum_partials` adds them in a fixed order (deterministic).
//! Batches whose tensors exceed one storage binding are split along N into several dispatches.

use crate::error::{Error, Result};
use crate::gpu::{batch_chunks, Arg, Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::{check_shape, sum_partials::sum_partials};

/// Zero padding on each side of the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Padding {
    /// TF/JAX 'SAME' padding for an input of `h` x `w`: total `max((ceil(i/s) - 1)*s + k - i, 0)`,
    /// the smaller half first (so a 3x3 stride-2 conv on an even image pads 0 before, 1 after).
    pub fn same(h: usize, w: usize, r: usize, s: usize, stride: (usize, usize)) -> Padding {
        let total = |i: usize, k: usize, st: usize| ((i.div_ceil(st).max(1) - 1) * st + k).saturating_sub(i);
        let (th, tw) = (total(h, r, stride.0), total(w, s, stride.1));
        Padding {
            top: th / 2,
            bottom: th - th / 2,
            left: tw / 2,
            right: tw - tw / 2,
        }
    }

    /// PyTorch/timm symmetric padding `((stride - 1) + (k - 1)) / 2` on every side.
    pub fn symmetric(r: usize, s: usize, stride: (usize, usize)) -> Padding {
        let ph = (stride.0 - 1 + r - 1) / 2;
        let pw = (stride.1 - 1 + s - 1) / 2;
        Padding {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }
}

/// The shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub r: usize,
    pub s: usize,
    pub groups: usize,
    pub stride: (usize, usize),
    pub pad: Padding,
    pub bias: bool,
}

impl Conv2d {
    /// Output height and width (P, Q).
    pub fn out_hw(&self) -> (usize, usize) {
        let p = (self.h + self.pad.top + self.pad.bottom).saturating_sub(self.r) / self.stride.0.max(1) + 1;
        let q = (self.w + self.pad.left + self.pad.right).saturating_sub(self.s) / self.stride.1.max(1) + 1;
        (p, q)
    }

    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    pub fn w_shape(&self) -> [usize; 4] {
        [self.k, self.c / self.groups.max(1), self.r, self.s]
    }

    pub fn y_shape(&self) -> [usize; 4] {
        let (p, q) = self.out_hw();
        [self.n, self.k, p, q]
    }

    /// Multiply-adds of the forward pass (each gradient pass costs the same).
    pub fn macs(&self) -> u64 {
        let (p, q) = self.out_hw();
        (self.n * self.k * p * q) as u64 * (self.c / self.groups.max(1) * self.r * self.s) as u64
    }

    /// Checks that the shape is a valid convolution.
    pub fn validate(&self, op: &str) -> Result<()> {
        let dims = [
            self.n,
            self.c,
            self.h,
            self.w,
            self.k,
            self.r,
            self.s,
            self.groups,
            self.stride.0,
            self.stride.1,
        ];
        if dims.contains(&0) {
            return Err(Error::shape(
                op,
                "dimensions (N, C, H, W, K, R, S, groups, stride)",
                "all > 0",
                format!("{dims:?}"),
            ));
        }
        if self.c % self.groups != 0 || self.k % self.groups != 0 {
            return Err(Error::shape(
                op,
                "channels per group",
                format!("C and K divisible by groups = {}", self.groups),
                format!("C = {}, K = {}", self.c, self.k),
            ));
        }
        if self.h + self.pad.top + self.pad.bottom < self.r || self.w + self.pad.left + self.pad.right < self.s {
            return Err(Error::shape(
                op,
                "padded input",
                format!("at least the kernel size {}x{}", self.r, self.s),
                format!("{}x{} padded by {:?}", self.h, self.w, self.pad),
            ));
        }
        Ok(())
    }
}

/// The kernels' uniform parameters (mirrors `struct Params` of the four grouped_conv shaders).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    k: u32,
    p: u32,
    q: u32,
    groups: u32,
    r: u32,
    s: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    has_bias: u32,
    accumulate: u32,
    rows_per_split: u32,
    split_base: u32,
    _pad: [u32; 2],
}

impl Params {
    fn new(spec: &Conv2d, n: usize) -> Params {
        let (p, q) = spec.out_hw();
        Params {
            n: n as u32,
            c: spec.c as u32,
            h: spec.h as u32,
            w: spec.w as u32,
            k: spec.k as u32,
            p: p as u32,
            q: q as u32,
            groups: spec.groups as u32,
            r: spec.r as u32,
            s: spec.s as u32,
            stride_h: spec.stride.0 as u32,
            stride_w: spec.stride.1 as u32,
            pad_top: spec.pad.top as u32,
            pad_left: spec.pad.left as u32,
            has_bias: spec.bias as u32,
            ..Default::default()
        }
    }
}

/// Channels per invocation in the kernels' register blocks (`TK`/`TC` in the shaders).
const BLOCK: usize = 8;
/// Invocations per workgroup.
const WG: usize = 64;

fn chunks(gpu: &Gpu, op: &str, spec: &Conv2d, x: &str, y: &str) -> Result<Vec<(usize, usize)>> {
    let (p, q) = spec.out_hw();
    batch_chunks(
        gpu,
        op,
        spec.n,
        &[(x, (spec.c * spec.h * spec.w * 4) as u64), (y, (spec.k * p * q * 4) as u64)],
    )
}

/// `y = conv(x, w) + b`. Shapes as in the module docs; `b` must be given iff `spec.bias`.
pub fn forward(gpu: &Gpu, spec: &Conv2d, x: &GpuTensor, w: &GpuTensor, b: Option<&GpuTensor>, y: &GpuTensor) -> Result<Launch> {
    let op = Kernel::GroupedConvForward.name();
    spec.validate(op)?;
    check_shape(op, "x", x, &spec.x_shape())?;
    check_shape(op, "w", w, &spec.w_shape())?;
    check_shape(op, "y", y, &spec.y_shape())?;
    let mut placeholder = None;
    let b = bias_arg(gpu, op, spec, b, &mut placeholder)?;
    let mut launch = Launch::new();
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let blocks = spec.groups * (spec.k / spec.groups).div_ceil(BLOCK);
    for (first, n) in chunks(gpu, op, spec, x.label(), y.label())? {
        let params = Params::new(spec, n);
        let args = [Arg::range(x, first * xs, n * xs), w.into(), b, Arg::range(y, first * ys, n * ys)];
        let groups = [(n * p * q).div_ceil(WG) as u32, blocks as u32, 1];
        launch.push(Step::new(gpu, Kernel::GroupedConvForward, &[], &params, &args, groups)?);
    }
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// The bias binding: the given bias, or (without one) a 1-element placeholder the shader never reads.
fn bias_arg<'a>(gpu: &Gpu, op: &str, spec: &Conv2d, b: Option<&'a GpuTensor>, placeholder: &'a mut Option<GpuTensor>) -> Result<Arg<'a>> {
    match (spec.bias, b) {
        (true, Some(b)) => {
            check_shape(op, "b", b, &[spec.k])?;
            Ok(b.into())
        }
        (false, None) => Ok((&*placeholder.insert(GpuTensor::zeros(gpu, "no bias", &[1])?)).into()),
        (true, None) => Err(Error::invalid(op, "the conv has a bias (spec.bias) but no bias tensor was given")),
        (false, Some(_)) => Err(Error::invalid(
            op,
            "a bias tensor was given but the conv has none (spec.bias = false)",
        )),
    }
}

/// `dx (+)= d conv / dx`. With `accumulate` the gradient is added to `dx` (fan-out), else it
/// overwrites it.
pub fn backward_input(gpu: &Gpu, spec: &Conv2d, dy: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<Launch> {
    let op = Kernel::GroupedConvBackwardInput.name();
    spec.validate(op)?;
    check_shape(op, "dy", dy, &spec.y_shape())?;
    check_shape(op, "w", w, &spec.w_shape())?;
    check_shape(op, "dx", dx, &spec.x_shape())?;
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let blocks = spec.groups * (spec.c / spec.groups).div_ceil(BLOCK);
    let mut launch = Launch::new();
    for (first, n) in chunks(gpu, op, spec, dx.label(), dy.label())? {
        let params = Params {
            accumulate: accumulate as u32,
            ..Params::new(spec, n)
        };
        let args = [Arg::range(dy, first * ys, n * ys), w.into(), Arg::range(dx, first * xs, n * xs)];
        let groups = [(n * spec.h * spec.w).div_ceil(WG) as u32, blocks as u32, 1];
        launch.push(Step::new(gpu, Kernel::GroupedConvBackwardInput, &[], &params, &args, groups)?);
    }
    Ok(launch)
}

/// Rows (n, p) per split of the weight-gradient contraction of one batch chunk.
///
/// Enough splits to give the adapter a few hundred workgroups, never fewer than 4 rows in one,
/// and no more partial sums than fit one storage binding. A function of the shape and the
/// adapter's limits only, so the summation order (and so the result) is reproducible.
fn rows_per_split(gpu: &Gpu, rows: usize, workgroups: usize, partial_bytes: usize) -> usize {
    let wanted = 256usize.div_ceil(workgroups.max(1)).min(rows.div_ceil(4));
    let fit = (gpu.limits.max_storage_buffer_binding_size / partial_bytes as u64) as usize;
    rows.div_ceil(wanted.min(fit).max(1))
}

/// `dw = d conv / dw` and, when the conv has a bias, `db = d conv / db` (both overwritten).
///
/// Per batch chunk: the weight (and bias) kernels write one partial sum per split of the rows,
/// and `sum_partials` adds them into `dw` (`db`), overwriting for the first chunk and adding for
/// the next, a fixed order. One chunk with one split writes `dw` directly.
pub fn backward_weight(gpu: &Gpu, spec: &Conv2d, x: &GpuTensor, dy: &GpuTensor, dw: &GpuTensor, db: Option<&GpuTensor>) -> Result<Launch> {
    let op = Kernel::GroupedConvBackwardWeight.name();
    spec.validate(op)?;
    check_shape(op, "x", x, &spec.x_shape())?;
    check_shape(op, "dy", dy, &spec.y_shape())?;
    check_shape(op, "dw", dw, &spec.w_shape())?;
    match (spec.bias, db) {
        (true, Some(db)) => check_shape(op, "db", db, &[spec.k])?,
        (false, None) => {}
        (true, None) => {
            return Err(Error::invalid(
                op,
                "the conv has a bias (spec.bias) but no bias gradient tensor was given",
            ))
        }
        (false, Some(_)) => return Err(Error::invalid(op, "a bias gradient tensor was given but the conv has none")),
    }
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let cols = spec.c / spec.groups * spec.r * spec.s;
    let wlen = spec.k * cols;
    let blocks = spec.groups * (spec.k / spec.groups).div_ceil(BLOCK);
    let xgroups = cols.div_ceil(WG);
    let chunks = chunks(gpu, op, spec, x.label(), dy.label())?;
    let chunk_rows = chunks.iter().map(|&(_, n)| n * p).max().unwrap_or(1);
    let per = rows_per_split(gpu, chunk_rows, xgroups * blocks, wlen * 4);
    let splits = chunk_rows.div_ceil(per);
    let direct = chunks.len() == 1 && splits == 1;
    let partials = |t: &GpuTensor, len: usize| {
        (!direct)
            .then(|| GpuTensor::zeros(gpu, &format!("{} partials", t.label()), &[splits, len]))
            .transpose()
    };
    let wpart = partials(dw, wlen)?;
    let bpart = match db {
        Some(db) => partials(db, spec.k)?,
        None => None,
    };

    let mut launch = Launch::new();
    for (i, &(first, n)) in chunks.iter().enumerate() {
        let params = Params {
            rows_per_split: per as u32,
            ..Params::new(spec, n)
        };
        let zs = (n * p).div_ceil(per);
        let dy_chunk = Arg::range(dy, first * ys, n * ys);
        let args = [Arg::range(x, first * xs, n * xs), dy_chunk, wpart.as_ref().unwrap_or(dw).into()];
        launch.push(Step::new(
            gpu,
            Kernel::GroupedConvBackwardWeight,
            &[],
            &params,
            &args,
            [xgroups as u32, blocks as u32, zs as u32],
        )?);
        if let Some(db) = db {
            let args = [dy_chunk, bpart.as_ref().unwrap_or(db).into()];
            launch.push(Step::new(
                gpu,
                Kernel::GroupedConvBackwardBias,
                &[],
                &params,
                &args,
                [spec.k.div_ceil(WG) as u32, 1, zs as u32],
            )?);
        }
        for (part, out) in [(&wpart, Some(dw)), (&bpart, db)] {
            if let (Some(part), Some(out)) = (part, out) {
                launch.push(sum_partials(gpu, part, out, zs, splits, 1.0, i > 0)?);
            }
        }
    }
    launch.scratch.extend(wpart.into_iter().chain(bpart));
    Ok(launch)
}

/// The f64 reference: the definition the GPU kernels are tested against.
pub mod cpu {
    use super::Conv2d;

    /// Index of the input pixel that output (p, q) reads at kernel tap (r, s), if inside the image.
    fn tap(spec: &Conv2d, p: usize, q: usize, r: usize, s: usize) -> Option<(usize, usize)> {
        let iy = (p * spec.stride.0 + r).checked_sub(spec.pad.top)?;
        let ix = (q * spec.stride.1 + s).checked_sub(spec.pad.left)?;
        (iy < spec.h && ix < spec.w).then_some((iy, ix))
    }

    /// Visits every (n, k, p, q, c_in, c_local, r, s, iy, ix) term of the convolution sum.
    fn for_each_term(spec: &Conv2d, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize, usize, usize, usize)) {
        let (pp, qq) = spec.out_hw();
        let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
        for n in 0..spec.n {
            for k in 0..spec.k {
                let g = k / kg;
                for p in 0..pp {
                    for q in 0..qq {
                        for c in 0..cg {
                            for r in 0..spec.r {
                                for s in 0..spec.s {
                                    if let Some((iy, ix)) = tap(spec, p, q, r, s) {
                                        f(n, k, p, q, g * cg + c, c, r, s, iy, ix);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn strides(spec: &Conv2d) -> ([usize; 3], [usize; 3], [usize; 3]) {
        let (p, q) = spec.out_hw();
        let cg = spec.c / spec.groups;
        (
            [spec.c * spec.h * spec.w, spec.h * spec.w, spec.w],
            [cg * spec.r * spec.s, spec.r * spec.s, spec.s],
            [spec.k * p * q, p * q, q],
        )
    }

    pub fn forward(spec: &Conv2d, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let (xs, ws, ys) = strides(spec);
        let (p, q) = spec.out_hw();
        let mut y = vec![0.0; spec.n * spec.k * p * q];
        if let Some(b) = b {
            for (i, v) in y.iter_mut().enumerate() {
                *v = b[(i / (p * q)) % spec.k];
            }
        }
        for_each_term(spec, |n, k, p, q, ci, c, r, s, iy, ix| {
            y[n * ys[0] + k * ys[1] + p * ys[2] + q] +=
                x[n * xs[0] + ci * xs[1] + iy * xs[2] + ix] * w[k * ws[0] + c * ws[1] + r * ws[2] + s];
        });
        y
    }

    pub fn backward_input(spec: &Conv2d, dy: &[f64], w: &[f64]) -> Vec<f64> {
        let (xs, ws, ys) = strides(spec);
        let mut dx = vec![0.0; spec.n * xs[0]];
        for_each_term(spec, |n, k, p, q, ci, c, r, s, iy, ix| {
            dx[n * xs[0] + ci * xs[1] + iy * xs[2] + ix] +=
                dy[n * ys[0] + k * ys[1] + p * ys[2] + q] * w[k * ws[0] + c * ws[1] + r * ws[2] + s];
        });
        dx
    }

    /// Returns (dw, db).
    pub fn backward_weight(spec: &Conv2d, x: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (xs, ws, ys) = strides(spec);
        let mut dw = vec![0.0; spec.k * ws[0]];
        for_each_term(spec, |n, k, p, q, ci, c, r, s, iy, ix| {
            dw[k * ws[0] + c * ws[1] + r * ws[2] + s] +=
                dy[n * ys[0] + k * ys[1] + p * ys[2] + q] * x[n * xs[0] + ci * xs[1] + iy * xs[2] + ix];
        });
        let mut db = vec![0.0; spec.k];
        for (i, v) in dy.iter().enumerate() {
            db[(i / ys[1]) % spec.k] += v;
        }
        (dw, db)
    }
}
