//! A conv pass on its own, for tests, examples and one-off calls: the weights are packed (and, in
//! textures, the activations) into scratch memory that the launch keeps, the pass runs with its
//! default tile, and the weight gradient gets a partial-sum workspace of its own. A plan instead
//! packs each operand once per step and calls the passes directly.

use super::{pack_weight, packed_len, partials_shape, tiles, Conv2d, Packing, Pass, Storage};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};

/// `t` (`[N, C, H, W]`) as the 4-channel texels of a `_textured` kernel for `groups`: `t` itself
/// when it is packed already, else a scratch texture that a pack step appended to `launch`
/// fills (the launch keeps it).
pub fn texels(gpu: &Gpu, groups: usize, t: &GpuTensor, launch: &mut Launch) -> Result<GpuTensor> {
    let op = Kernel::GroupedConvPackActivation.name();
    let shape: [usize; 4] = (t.shape().try_into()).map_err(|_| Error::shape(op, t.label(), "[N, C, H, W]", format!("{:?}", t.shape())))?;
    super::packing::texels(gpu, (op, "activation"), groups, t, shape, launch)
}

/// Packs `w` into a new scratch tensor in `storage`.
fn packed(gpu: &Gpu, spec: &Conv2d, storage: Storage, w: &GpuTensor, packing: Packing, launch: &mut Launch) -> Result<GpuTensor> {
    let packed = storage.tensor(gpu, &format!("{} packed", w.label()), &[packed_len(spec, packing)])?;
    launch.extend(pack_weight(gpu, spec, w, &packed, packing)?);
    launch.scratch.push(packed.clone());
    Ok(packed)
}

/// `y = conv(x, w) + b` from the unpacked weights `w` (OIHW), its operands in `storage`.
pub fn forward(
    gpu: &Gpu,
    spec: &Conv2d,
    storage: Storage,
    x: &GpuTensor,
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    y: &GpuTensor,
) -> Result<Launch> {
    spec.validate(Pass::Forward.kernel(storage).name())?;
    let mut launch = Launch::new();
    let packed = packed(gpu, spec, storage, w, Packing::OutputInner, &mut launch)?;
    let tile = tiles(Pass::Forward, spec, storage)[0];
    launch.extend(super::forward(gpu, spec, x, &packed, b, y, tile)?);
    Ok(launch)
}

/// `dx (+)= d conv / dx` from the unpacked weights `w`, its operands in `storage`; with
/// `accumulate` the gradient is added to `dx`.
pub fn backward_input(
    gpu: &Gpu,
    spec: &Conv2d,
    storage: Storage,
    dy: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
) -> Result<Launch> {
    spec.validate(Pass::BackwardInput.kernel(storage).name())?;
    let mut launch = Launch::new();
    let packed = packed(gpu, spec, storage, w, Packing::InputInner, &mut launch)?;
    let tile = tiles(Pass::BackwardInput, spec, storage)[0];
    launch.extend(super::backward_input(gpu, spec, dy, &packed, dx, accumulate, tile)?);
    Ok(launch)
}

/// `dw = d conv / dw` (and `db` with a bias), its operands in `storage` (x and dy packed into
/// scratch texels for textures), with a partial-sum workspace of its own.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    gpu: &Gpu,
    spec: &Conv2d,
    storage: Storage,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
    db: Option<&GpuTensor>,
) -> Result<Launch> {
    let op = Pass::BackwardWeight.kernel(storage).name();
    spec.validate(op)?;
    let mut launch = Launch::new();
    let (x, dy) = match storage {
        Storage::Texture => (
            super::packing::texels(gpu, (op, "x"), spec.groups, x, spec.x_shape(), &mut launch)?,
            super::packing::texels(gpu, (op, "dy"), spec.groups, dy, spec.y_shape(), &mut launch)?,
        ),
        Storage::Buffer => (x.clone(), dy.clone()),
    };
    let partials = partials_shape(&gpu.limits, spec)
        .map(|shape| GpuTensor::zeros(gpu, &format!("{} partials", dw.label()), &shape))
        .transpose()?;
    let tile = tiles(Pass::BackwardWeight, spec, storage)[0];
    launch.extend(super::backward_weight(gpu, spec, &x, &dy, dw, db, partials.as_ref(), tile)?);
    launch.scratch.extend(partials);
    Ok(launch)
}
