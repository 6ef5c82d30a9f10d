//! The kernel library: one module per op, each with its maths and shapes in the module docs,
//! its `Params` (mirroring the shader's `struct Params`), launchers that check shapes and
//! return a [`crate::gpu::Launch`], and `pub mod cpu`, the f64 reference that defines the op.
//!
//! Layouts: activations NCHW, conv weights OIHW (K, C/G, R, S), linear weights (O, I), all
//! contiguous f32; class labels u32.
//!
//! **Gradient write rule.** Activation gradients overwrite their buffer (`=`), except where a
//! tensor fans out (the residual stream, the SE branch input): there the launcher takes
//! `accumulate = true` and adds (`+=`), and the kernel never reads the old value otherwise, so a
//! NaN-poisoned or uninitialised buffer is safe. Parameter gradients always overwrite.
//!
//! **Reductions** never use float atomics: a kernel writes partial sums in a fixed layout, and
//! `sum_partials` (or a fixed workgroup tree in `shaders/common/reduce.wgsl`) adds them in a
//! fixed order, so the same inputs on the same adapter give bitwise the same outputs.

pub mod agc;
pub mod avg_pool;
pub mod dropout;
pub mod ema;
pub mod global_pool;
pub mod grad_accumulate;
pub mod grouped_conv;
pub mod linear;
pub mod residual;
pub mod scaled_act;
pub mod se_gate;
pub mod se_residual;
pub mod selfcheck;
pub mod sgd;
pub mod softmax_xent;
pub mod step_info;
pub mod sum_partials;
pub mod weight_std;

use crate::error::{Error, Result};
use crate::gpu::{batch_chunks, grid, Arg, Gpu, GpuTensor, Kernel, Launch, Step};

/// Checks that `t` has exactly `shape`.
pub(crate) fn check_shape(op: &str, what: &str, t: &GpuTensor, shape: &[usize]) -> Result<()> {
    if t.shape() != shape {
        return Err(Error::shape(
            op,
            &format!("{what} ({})", t.label()),
            format!("{shape:?}"),
            format!("{:?}", t.shape()),
        ));
    }
    Ok(())
}

/// Checks that `t` holds `numel` elements (any shape with that many, e.g. a gain as [K] or [K,1,1,1]).
pub(crate) fn check_numel(op: &str, what: &str, t: &GpuTensor, numel: usize) -> Result<()> {
    if t.numel() != numel {
        return Err(Error::shape(
            op,
            &format!("{what} ({})", t.label()),
            format!("{numel} elements"),
            format!("{:?} ({} elements)", t.shape(), t.numel()),
        ));
    }
    Ok(())
}

/// Checks that two tensors have the same shape.
pub(crate) fn check_same(op: &str, what: &str, a: &GpuTensor, b: &GpuTensor) -> Result<()> {
    check_shape(op, what, b, a.shape())
}

/// Launches `kernel` over `items` independent items (elements, or (n, c) planes), binding
/// `tensors` in order after the params, each with its elements per item (0: bound whole, not
/// split). The kernel runs `invocations` invocations per item, `wg` per workgroup, folded by
/// [`grid`]. Where one binding cannot hold a tensor's items, the items are split into pieces and
/// `params(first, n)` gives the parameters of the piece of `n` items starting at `first`.
pub(crate) fn chunked<P: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: Kernel,
    items: usize,
    tensors: &[(&GpuTensor, usize)],
    invocations: usize,
    wg: usize,
    params: impl FnMut(usize, usize) -> P,
) -> Result<Launch> {
    chunked_specialized(gpu, kernel, &[], items, tensors, invocations, wg, params)
}

/// [`chunked`] with the pipeline constants `constants` (name, value) set in every piece.
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunked_specialized<P: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: Kernel,
    constants: &[(&'static str, f64)],
    items: usize,
    tensors: &[(&GpuTensor, usize)],
    invocations: usize,
    wg: usize,
    mut params: impl FnMut(usize, usize) -> P,
) -> Result<Launch> {
    let op = kernel.name();
    let sizes: Vec<(&str, u64)> = tensors.iter().map(|(t, per)| (t.label(), *per as u64 * 4)).collect();
    let mut launch = Launch::new();
    for (first, n) in batch_chunks(&gpu.limits, op, items, &sizes)? {
        let args: Vec<Arg> = tensors
            .iter()
            .map(|&(t, per)| if per == 0 { t.into() } else { Arg::range(t, first * per, n * per) })
            .collect();
        launch.push(Step::new(
            gpu,
            kernel,
            constants,
            &params(first, n),
            &args,
            grid(&gpu.limits, op, (n * invocations).div_ceil(wg))?,
        )?);
    }
    Ok(launch)
}
