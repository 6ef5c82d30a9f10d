//! The input gradient, `dx (+)= d conv / dx`, on packed weights ([`Packing::InputInner`]): one
//! dispatch per stride phase (the input pixels a stride-2 conv reaches through the same kernel
//! taps; see the shader), each a transposed convolution without zero-stuffing.

use super::packing::operand;
use super::{align, chunks, packed_len, pass_kernel, row_tile, Conv2d, Packing, Params, Pass, Share, Storage, Tile, STAGED, WG};
use crate::error::Result;
use crate::gpu::{Arg, Gpu, GpuTensor, Launch, Step};
use crate::ops::{check_numel, check_shape};

/// The taps `first, first + stride, ...` below `size` that reach pixels of phase `phase`
/// (pixels `i` with `(i + pad) mod stride = phase`): `(first, count)`.
fn phase_taps(phase: usize, pad: usize, stride: usize, size: usize) -> (usize, usize) {
    let first = (phase + pad) % stride;
    (first, size.saturating_sub(first).div_ceil(stride))
}

/// `dx (+)= d conv / dx` with `w` packed in `packed` and the channel tile `tile` (one of
/// [`tiles()`] for [`Pass::BackwardInput`]). With `accumulate` the gradient is added to `dx`
/// (fan-out), else it overwrites it. Packed weights in a texture select the `_textured`
/// kernel, which reads dy as texels (packed already, or packed by the launch as in
/// [`super::forward()`]); a subgroup or workgroup tile its `_subgroup` or `_workgroup` kernel.
pub fn backward_input(
    gpu: &Gpu,
    spec: &Conv2d,
    dy: &GpuTensor,
    packed: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
    tile: Tile,
) -> Result<Launch> {
    let kernel = pass_kernel(gpu, Pass::BackwardInput, spec, Storage::of(packed), tile)?;
    let op = kernel.name();
    check_numel(op, "packed weights", packed, packed_len(spec, Packing::InputInner))?;
    check_shape(op, "dx", dx, &spec.x_shape())?;
    let mut launch = Launch::new();
    let texels = operand(gpu, (op, "dy"), spec, dy, packed, spec.y_shape(), &mut launch)?;
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let cg = spec.c / spec.groups;
    let chunks = chunks(&gpu.limits, op, spec, dx.label(), dy.label())?;
    for phase in phases(spec, tile) {
        let blocks = phase.cols.div_ceil(phase.tp);
        for &(first, n) in &chunks {
            let params = Params {
                accumulate: accumulate as u32,
                w_stride: Packing::InputInner.row(spec) as u32,
                blocks: blocks as u32,
                phase_y: phase.a as u32,
                phase_x: phase.b as u32,
                rows: phase.rows as u32,
                cols: phase.cols as u32,
                n_base: first as u32,
                ..Params::new(spec, n)
            };
            let dy_arg = match &texels {
                Some(t) => t.into(),
                None => Arg::range(dy, first * ys, n * ys),
            };
            let args = [dy_arg, packed.into(), Arg::range(dx, first * xs, n * xs)];
            let groups = [
                ((n * phase.rows * blocks).next_multiple_of(align(tile)) * cg.div_ceil(4 * tile.channels4)).div_ceil(WG) as u32,
                spec.groups as u32,
                1,
            ];
            launch.push(Step::new(gpu, kernel, &phase.overrides, &params, &args, groups)?);
        }
    }
    Ok(launch)
}

/// One stride phase of the input gradient (one dispatch per batch chunk): the phase `(a, b)`,
/// its rows and columns of input pixels, the row tile, and the kernel's override constants.
pub(super) struct Phase {
    a: usize,
    b: usize,
    rows: usize,
    cols: usize,
    tp: usize,
    pub(super) overrides: Vec<(&'static str, f64)>,
}

/// The stride phases of the input gradient at `spec` with the channel tile `tile`.
pub(super) fn phases(spec: &Conv2d, tile: Tile) -> Vec<Phase> {
    let tc4 = tile.channels4;
    let (sh, sw) = spec.stride;
    let mut phases = Vec::new();
    for a in 0..sh.min(spec.h) {
        for b in 0..sw.min(spec.w) {
            let (r0, nr) = phase_taps(a, spec.pad.top, sh, spec.r);
            let (s0, ns) = phase_taps(b, spec.pad.left, sw, spec.s);
            let (rows, cols) = ((spec.h - a).div_ceil(sh), (spec.w - b).div_ceil(sw));
            let max = if tile.pixels > 0 { tile.pixels } else { 8 };
            let tp = row_tile(cols, (64 / tc4).min(max), |tp| tp + ns.saturating_sub(1), ns * 4 * tc4);
            let edges = (spec.c / spec.groups) % (4 * tc4) != 0;
            let mut overrides = vec![
                ("EDGES", edges as u32 as f64),
                ("R", spec.r as f64),
                ("S", spec.s as f64),
                ("SH", sh as f64),
                ("SW", sw as f64),
                ("R0", r0 as f64),
                ("NR", nr as f64),
                ("S0", s0 as f64),
                ("NS", ns as f64),
                ("TP", tp as f64),
                ("TC4", tc4 as f64),
                ("SPAN", (tp + ns.saturating_sub(1)) as f64),
            ];
            if tile.share == Share::Workgroup {
                let chunk = STAGED / (nr * ns * tc4).max(1);
                overrides.push(("CHUNK", chunk as f64));
            }
            phases.push(Phase {
                a,
                b,
                rows,
                cols,
                tp,
                overrides,
            });
        }
    }
    phases
}
