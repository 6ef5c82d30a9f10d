//! The weight and bias gradients, `dw = d conv / dw` and `db = d conv / db`. They contract over
//! the N*P*Q outputs: the rows (n, p) of each batch chunk are cut into splits, each split writes
//! a partial sum, and `sum_partials` adds the splits (and chunks) in a fixed order, so the result
//! is bitwise reproducible without float atomics. One chunk with one split writes dw directly.

use super::packing::texels;
use super::{check_bias, chunks, pass_kernel, tiles, Conv2d, Params, Pass, Share, Storage, Tile, WG};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::check_shape;
use crate::ops::sum_partials::sum_partials;

/// How the weight gradient runs: its workgroups, the rows per split of one batch chunk, and the
/// number of splits.
struct WeightGradPlan {
    /// Workgroups in x: lanes over (input tile, output tile) within a group.
    xgroups: usize,
    rows_per_split: usize,
    splits: usize,
    chunks: Vec<(usize, usize)>,
}

/// Workgroups in x for `tile`: the textured kernel works in channel quads and spreads the taps;
/// the workgroup kernel's workgroups each take a block of 8 x 8 lanes' channels; the subgroup
/// kernel's a run of input tiles of one output tile.
fn xgroups(spec: &Conv2d, tile: Tile, storage: Storage) -> usize {
    let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
    match storage {
        _ if tile.share == Share::Workgroup => cg.div_ceil(8 * tile.inputs) * kg.div_ceil(32 * tile.channels4),
        // The subgroup kernel rounds each output tile's input tiles up to the workgroup.
        _ if tile.share == Share::Subgroup => {
            cg.div_ceil(4).div_ceil(tile.inputs / 4).div_ceil(WG) * kg.div_ceil(4).div_ceil(tile.channels4)
        }
        Storage::Texture => {
            let quads = cg.div_ceil(4).div_ceil(tile.inputs / 4) * kg.div_ceil(4).div_ceil(tile.channels4);
            (quads * spec.r * spec.s / tile.pixels).div_ceil(WG)
        }
        Storage::Buffer => (cg.div_ceil(tile.inputs) * kg.div_ceil(4 * tile.channels4)).div_ceil(WG),
    }
}

impl WeightGradPlan {
    /// Enough splits of the N*P rows to give the adapter a few hundred workgroups, never fewer
    /// than 4 rows in one, and no more partial sums than fit one storage binding. The splits
    /// follow from the buffer kernel's default tile whatever tile and storage run, so the
    /// workspace and the summation order depend on the shape and the adapter's limits only.
    fn new(limits: &wgpu::Limits, spec: &Conv2d, (x, dy): (&str, &str), tile: Tile, storage: Storage) -> Result<WeightGradPlan> {
        let (p, _) = spec.out_hw();
        let default = tiles(Pass::BackwardWeight, spec, Storage::Buffer)[0];
        let chunks = chunks(limits, Kernel::GroupedConvBackwardWeight.name(), spec, x, dy)?;
        let rows = chunks.iter().map(|&(_, n)| n * p).max().unwrap_or(1);
        let wanted = 256usize
            .div_ceil(xgroups(spec, default, Storage::Buffer) * spec.groups)
            .min(rows.div_ceil(4));
        let fit = (limits.max_storage_buffer_binding_size / (spec.w_shape().iter().product::<usize>() * 4) as u64) as usize;
        let rows_per_split = rows.div_ceil(wanted.min(fit).max(1));
        Ok(WeightGradPlan {
            xgroups: xgroups(spec, tile, storage),
            rows_per_split,
            splits: rows.div_ceil(rows_per_split),
            chunks,
        })
    }

    /// Whether the weight kernel writes dw directly: one chunk, one split.
    fn direct(&self) -> bool {
        self.chunks.len() == 1 && self.splits == 1
    }
}

/// The shape of the partial-sum workspace [`backward_weight`] needs, or `None` when the kernel
/// writes the gradient directly.
pub fn partials_shape(limits: &wgpu::Limits, spec: &Conv2d) -> Option<Vec<usize>> {
    let default = tiles(Pass::BackwardWeight, spec, Storage::Buffer)[0];
    let plan = WeightGradPlan::new(limits, spec, ("x", "dy"), default, Storage::Buffer).ok()?;
    (!plan.direct()).then(|| vec![plan.splits, spec.w_shape().iter().product()])
}

/// The kernel's override constants for `tile`.
pub(super) fn overrides(spec: &Conv2d, tile: Tile, storage: Storage) -> Vec<(&'static str, f64)> {
    let mut overrides = vec![
        ("R", spec.r as f64),
        ("S", spec.s as f64),
        ("SH", spec.stride.0 as f64),
        ("SW", spec.stride.1 as f64),
        ("TK4", tile.channels4 as f64),
    ];
    match storage {
        Storage::Texture => {
            let (rows, cols) = match tile.pixels {
                1 => (1, 1),
                t if t == spec.r * spec.s => (spec.r, spec.s),
                _ => (1, spec.s),
            };
            let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
            let edges = cg % tile.inputs != 0 || kg % (4 * tile.channels4) != 0;
            overrides.extend([
                ("EDGES", edges as u32 as f64),
                ("CB4", (tile.inputs / 4) as f64),
                ("TAPS", tile.pixels as f64),
                ("TR", rows as f64),
                ("TS", cols as f64),
            ]);
        }
        Storage::Buffer => overrides.push(("CB", tile.inputs as f64)),
    }
    if tile.share == Share::Workgroup {
        overrides.push(("SPANX", (15 * spec.stride.1 + spec.s) as f64));
    }
    overrides
}

/// `dw = d conv / dw` and, when the conv has a bias, `db = d conv / db` (both overwritten),
/// with the register tile `tile` (one of [`tiles()`] for [`Pass::BackwardWeight`] in the
/// operands' storage) and the workspace `partials` shaped by [`partials_shape`] (`None` where
/// that is `None`). When x or dy is packed in a texture ([`super::pack_activation`]) the
/// `_textured` kernel runs (packing the other one if it is a buffer) and computes the bias
/// gradient too; the buffer kernel leaves it to `grouped_conv_backward_bias`.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    gpu: &Gpu,
    spec: &Conv2d,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
    db: Option<&GpuTensor>,
    partials: Option<&GpuTensor>,
    tile: Tile,
) -> Result<Launch> {
    let storage = match Storage::of(x) == Storage::Texture || Storage::of(dy) == Storage::Texture {
        true => Storage::Texture,
        false => Storage::Buffer,
    };
    let kernel = pass_kernel(gpu, Pass::BackwardWeight, spec, storage, tile)?;
    let op = kernel.name();
    check_shape(op, "dw", dw, &spec.w_shape())?;
    check_bias(op, "bias gradient", spec, db)?;
    let mut launch = Launch::new();
    let (x, dy) = match storage {
        Storage::Texture => (
            texels(gpu, (op, "x"), spec.groups, x, spec.x_shape(), &mut launch)?,
            texels(gpu, (op, "dy"), spec.groups, dy, spec.y_shape(), &mut launch)?,
        ),
        Storage::Buffer => {
            check_shape(op, "x", x, &spec.x_shape())?;
            check_shape(op, "dy", dy, &spec.y_shape())?;
            (x.clone(), dy.clone())
        }
    };
    let plan = WeightGradPlan::new(&gpu.limits, spec, (x.label(), dy.label()), tile, storage)?;
    let wpart = match (plan.direct(), partials) {
        (true, _) => None,
        (false, Some(part)) => {
            check_shape(op, "partials", part, &[plan.splits, dw.numel()])?;
            Some(part)
        }
        (false, None) => {
            let needed = format!("{} x {}", plan.splits, dw.numel());
            return Err(Error::invalid(
                op,
                format!("the weight gradient needs a partial-sum workspace of {needed}"),
            ));
        }
    };
    // The bias partials are K floats a split: small enough to own.
    let bpart = match db {
        Some(db) if !plan.direct() => Some(GpuTensor::zeros(gpu, &format!("{} partials", db.label()), &[plan.splits, spec.k])?),
        _ => None,
    };
    let outputs = Outputs {
        dw,
        db,
        wpart,
        bpart: bpart.as_ref(),
    };
    // The textured kernel binds a bias output even without a bias: a placeholder it never writes.
    let placeholder = match (storage, db) {
        (Storage::Texture, None) => Some(GpuTensor::zeros(gpu, "no bias", &[1])?),
        _ => None,
    };
    for (i, &(first, n)) in plan.chunks.iter().enumerate() {
        let params = Params {
            rows_per_split: plan.rows_per_split as u32,
            n_base: first as u32,
            ..Params::new(spec, n)
        };
        let splits = (n * spec.out_hw().0).div_ceil(plan.rows_per_split);
        let workgroups = [plan.xgroups as u32, spec.groups as u32, splits as u32];
        let kernel_args = KernelArgs {
            kernel,
            overrides: overrides(spec, tile, storage),
            params,
            workgroups,
            chunk: (first, n),
        };
        push_chunk(
            gpu,
            spec,
            storage,
            (&x, &dy),
            &outputs,
            placeholder.as_ref(),
            &kernel_args,
            &mut launch,
        )?;
        if let Some(part) = outputs.wpart {
            launch.push(sum_partials(gpu, part, dw, splits, plan.splits, 1.0, i > 0)?);
        }
        if let (Some(part), Some(db)) = (outputs.bpart, db) {
            launch.push(sum_partials(gpu, part, db, splits, plan.splits, 1.0, i > 0)?);
        }
    }
    launch.scratch.extend(bpart);
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// Where one chunk's kernels write: the gradients, or their partial sums.
struct Outputs<'a> {
    dw: &'a GpuTensor,
    db: Option<&'a GpuTensor>,
    wpart: Option<&'a GpuTensor>,
    bpart: Option<&'a GpuTensor>,
}

/// One chunk's dispatch: kernel, constants, parameters, workgroups, and its images
/// `(first, count)`.
struct KernelArgs {
    kernel: Kernel,
    overrides: Vec<(&'static str, f64)>,
    params: Params,
    workgroups: [u32; 3],
    chunk: (usize, usize),
}

/// Appends one batch chunk's weight-gradient step (and, for the buffer kernel, its bias step).
#[allow(clippy::too_many_arguments)]
fn push_chunk(
    gpu: &Gpu,
    spec: &Conv2d,
    storage: Storage,
    (x, dy): (&GpuTensor, &GpuTensor),
    out: &Outputs,
    placeholder: Option<&GpuTensor>,
    k: &KernelArgs,
    launch: &mut Launch,
) -> Result<()> {
    let w_out = out.wpart.unwrap_or(out.dw);
    let b_out = out.bpart.or(out.db);
    let kernel = k.kernel;
    let (first, n) = k.chunk;
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    if storage == Storage::Texture {
        let bias = b_out.or(placeholder).expect("a bias output or its placeholder");
        let args = [x.into(), dy.into(), w_out.into(), bias.into()];
        launch.push(Step::new(gpu, kernel, &k.overrides, &k.params, &args, k.workgroups)?);
        return Ok(());
    }
    let dy_chunk = Arg::range(dy, first * ys, n * ys);
    let args = [Arg::range(x, first * xs, n * xs), dy_chunk, w_out.into()];
    launch.push(Step::new(gpu, kernel, &k.overrides, &k.params, &args, k.workgroups)?);
    if let Some(b_out) = b_out {
        let workgroups = [spec.k.div_ceil(WG) as u32, 1, k.workgroups[2]];
        let args = [dy_chunk, b_out.into()];
        launch.push(Step::new(gpu, Kernel::GroupedConvBackwardBias, &[], &k.params, &args, workgroups)?);
    }
    Ok(())
}
