//! The forward pass, `y = conv(x, w) + b`, on packed weights ([`Packing::OutputInner`]).

use super::packing::operand;
use super::{align, bias_arg, chunks, packed_len, pass_kernel, Conv2d, Packing, Params, Pass, Share, Storage, Tile, STAGED, WG};
use crate::error::Result;
use crate::gpu::{Arg, Gpu, GpuTensor, Launch, Step};
use crate::ops::{check_numel, check_shape};

/// `y = conv(x, w) + b` with `w` packed in `packed` and the register tile `tile` (one of
/// [`tiles()`] for [`Pass::Forward`]). Shapes as in the module docs; `b` must be given iff
/// `spec.bias`.
///
/// Packed weights in a texture select `grouped_conv_forward_textured`, which reads x as texels:
/// `x` may then be packed already ([`super::pack_activation`]) or a buffer that the launch packs
/// into a scratch texture first. A subgroup tile selects `grouped_conv_forward_subgroup`, the
/// same on adapters where [`Gpu::shares_subgroups`] (else an error before any work); a
/// workgroup tile `grouped_conv_forward_workgroup` (packed weights in a buffer).
pub fn forward(
    gpu: &Gpu,
    spec: &Conv2d,
    x: &GpuTensor,
    packed: &GpuTensor,
    b: Option<&GpuTensor>,
    y: &GpuTensor,
    tile: Tile,
) -> Result<Launch> {
    let kernel = pass_kernel(gpu, Pass::Forward, spec, Storage::of(packed), tile)?;
    let op = kernel.name();
    check_numel(op, "packed weights", packed, packed_len(spec, Packing::OutputInner))?;
    check_shape(op, "y", y, &spec.y_shape())?;
    let mut launch = Launch::new();
    let texels = operand(gpu, (op, "x"), spec, x, packed, spec.x_shape(), &mut launch)?;
    let mut placeholder = None;
    let b = bias_arg(gpu, op, spec, b, &mut placeholder)?;
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let kg = spec.k / spec.groups;
    let overrides = overrides(spec, tile);
    let blocks = q.div_ceil(tile.pixels);
    let kblocks = kg.div_ceil(4 * tile.channels4);
    let align = align(tile);
    for (first, n) in chunks(&gpu.limits, op, spec, x.label(), y.label())? {
        let params = Params {
            w_stride: Packing::OutputInner.row(spec) as u32,
            blocks: blocks as u32,
            n_base: first as u32,
            ..Params::new(spec, n)
        };
        let x_arg = match &texels {
            Some(t) => t.into(),
            None => Arg::range(x, first * xs, n * xs),
        };
        let args = [x_arg, packed.into(), b, Arg::range(y, first * ys, n * ys)];
        let groups = [
            ((n * p * blocks).next_multiple_of(align) * kblocks).div_ceil(WG) as u32,
            spec.groups as u32,
            1,
        ];
        launch.push(Step::new(gpu, kernel, &overrides, &params, &args, groups)?);
    }
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// The kernel's override constants at `spec` for `tile`.
pub(super) fn overrides(spec: &Conv2d, tile: Tile) -> Vec<(&'static str, f64)> {
    let (tp, sw) = (tile.pixels, spec.stride.1);
    let edges = (spec.k / spec.groups) % (4 * tile.channels4) != 0;
    let mut overrides = vec![
        ("EDGES", edges as u32 as f64),
        ("R", spec.r as f64),
        ("S", spec.s as f64),
        ("SH", spec.stride.0 as f64),
        ("SW", sw as f64),
        ("TP", tp as f64),
        ("TK4", tile.channels4 as f64),
        ("SPAN", ((tp - 1) * sw + spec.s) as f64),
    ];
    if tile.share == Share::Workgroup {
        let chunk = STAGED / (spec.r * spec.s * tile.channels4);
        overrides.push(("CHUNK", chunk as f64));
    }
    overrides
}
