//! The f64 reference: the definition the GPU kernels are tested against.

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
        y[n * ys[0] + k * ys[1] + p * ys[2] + q] += x[n * xs[0] + ci * xs[1] + iy * xs[2] + ix] * w[k * ws[0] + c * ws[1] + r * ws[2] + s];
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
