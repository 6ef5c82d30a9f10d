//! Operand layouts: the conv kernels read their weights packed per group with one channel
//! dimension innermost ([`Packing`]), in a buffer or a texture, and the `_textured` kernels read
//! their activations as 4-channel texels ([`pack_activation`], which may apply the activation
//! next to the conv on the way: a [`Prologue`]).

use super::{Conv2d, Storage};
use crate::error::{Error, Result};
use crate::gpu::{batch_chunks, grid, Arg, Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::check_numel;
use crate::ops::check_shape;
use crate::ops::scaled_act::ScaledAct;

/// The layouts `grouped_conv_pack_weight` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// `[G, C/G, R, S, K/G padded]`: output channels innermost, for the forward.
    OutputInner,
    /// `[G, K/G, R, S, C/G padded]`: input channels innermost, for the input gradient.
    InputInner,
}

impl Packing {
    /// `(A, B)`: the outer channel count and the inner (padded) one, per group.
    fn dims(self, spec: &Conv2d) -> (usize, usize) {
        let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
        match self {
            Packing::OutputInner => (cg, kg),
            Packing::InputInner => (kg, cg),
        }
    }

    /// Channels per invocation / 4 of the kernel that reads this layout (TK4 or TC4).
    pub(super) fn tile4(self, spec: &Conv2d) -> usize {
        self.dims(spec).1.div_ceil(4).min(8)
    }

    /// The padded inner length: a multiple of the channel tile, so that every tile's vec4 reads
    /// stay inside its row.
    pub(super) fn row(self, spec: &Conv2d) -> usize {
        let tile = 4 * self.tile4(spec);
        self.dims(spec).1.div_ceil(tile) * tile
    }
}

/// Elements of the packed weights of `spec` in `packing`.
pub fn packed_len(spec: &Conv2d, packing: Packing) -> usize {
    spec.groups * packing.dims(spec).0 * spec.r * spec.s * packing.row(spec)
}

/// `struct Params` of `grouped_conv_pack_weight`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    k: u32,
    cg: u32,
    groups: u32,
    rs: u32,
    b_pad: u32,
    mode: u32,
    len: u32,
    _pad: u32,
}

/// Writes `w` (OIHW) into `packed` in `packing`'s layout. `packed` may be a buffer or a
/// texture-backed tensor ([`GpuTensor::texture`]); the conv kernels read either.
pub fn pack_weight(gpu: &Gpu, spec: &Conv2d, w: &GpuTensor, packed: &GpuTensor, packing: Packing) -> Result<Launch> {
    let kernel = match Storage::of(packed) {
        Storage::Texture => Kernel::GroupedConvPackWeightTexture,
        Storage::Buffer => Kernel::GroupedConvPackWeight,
    };
    let op = kernel.name();
    spec.validate(op)?;
    check_shape(op, "w", w, &spec.w_shape())?;
    let len = packed_len(spec, packing);
    check_numel(op, "packed", packed, len)?;
    let params = PackParams {
        k: spec.k as u32,
        cg: (spec.c / spec.groups) as u32,
        groups: spec.groups as u32,
        rs: (spec.r * spec.s) as u32,
        b_pad: packing.row(spec) as u32,
        mode: (packing == Packing::InputInner) as u32,
        len: (len / 4) as u32,
        _pad: 0,
    };
    let args = [w.into(), packed.into()];
    let step = Step::new(gpu, kernel, &[], &params, &args, grid(&gpu.limits, op, (len / 4).div_ceil(256))?)?;
    Ok(Launch::from(step))
}

/// `struct Params` of `grouped_conv_pack_weight_pair`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PackPairParams {
    k: u32,
    cg: u32,
    groups: u32,
    rs: u32,
    kb: u32,
    cb: u32,
    blocks: u32,
    _pad: u32,
}

/// Writes `w` (OIHW) into both layouts at once, `output_inner` ([`Packing::OutputInner`], the
/// forward's) and `input_inner` ([`Packing::InputInner`], the input gradient's), bitwise as two
/// [`pack_weight`]s would, reading each weight once. Both are buffers or both textures.
pub fn pack_weight_pair(gpu: &Gpu, spec: &Conv2d, w: &GpuTensor, output_inner: &GpuTensor, input_inner: &GpuTensor) -> Result<Launch> {
    let kernel = match (Storage::of(output_inner), Storage::of(input_inner)) {
        (Storage::Texture, Storage::Texture) => Kernel::GroupedConvPackWeightPairTexture,
        (Storage::Buffer, Storage::Buffer) => Kernel::GroupedConvPackWeightPair,
        _ => {
            return Err(Error::invalid(
                Kernel::GroupedConvPackWeightPair.name(),
                "the two packings must both be buffers or both textures",
            ))
        }
    };
    let op = kernel.name();
    spec.validate(op)?;
    check_shape(op, "w", w, &spec.w_shape())?;
    check_numel(op, "output_inner", output_inner, packed_len(spec, Packing::OutputInner))?;
    check_numel(op, "input_inner", input_inner, packed_len(spec, Packing::InputInner))?;
    let (kb, cb) = (Packing::OutputInner.row(spec), Packing::InputInner.row(spec));
    let blocks = spec.groups * spec.r * spec.s * (kb / 4) * (cb / 4);
    let params = PackPairParams {
        k: spec.k as u32,
        cg: (spec.c / spec.groups) as u32,
        groups: spec.groups as u32,
        rs: (spec.r * spec.s) as u32,
        kb: kb as u32,
        cb: cb as u32,
        blocks: blocks as u32,
        _pad: 0,
    };
    let args = [w.into(), output_inner.into(), input_inner.into()];
    let step = Step::new(gpu, kernel, &[], &params, &args, grid(&gpu.limits, op, blocks.div_ceil(256))?)?;
    Ok(Launch::from(step))
}

/// The shape of an activation `[N, C, H, W]` laid out by [`pack_activation`] for `groups`:
/// `[N, G * CQ * 4, H, W]` with `CQ = ceil((C/G) / 4)`, each group's channels padded with
/// zeros to a multiple of 4 (4 channels of one pixel per texel).
pub fn packed_activation_shape(shape: [usize; 4], groups: usize) -> [usize; 4] {
    let [n, c, h, w] = shape;
    [n, groups * (c / groups.max(1)).div_ceil(4) * 4, h, w]
}

/// `struct Params` of `grouped_conv_pack_activation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PackActivationParams {
    c: u32,
    groups: u32,
    hw: u32,
    texels: u32,
    texel_base: u32,
    gamma: f32,
    _pad: [u32; 2],
}

/// What [`pack_activation`] applies to each value on its way into the texels: the pass of the
/// activation next to the conv, which then needs neither its own kernel nor its output in memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prologue {
    /// The values as they are.
    None,
    /// The source is an activation's input; the texels hold its output `gamma * act(src)`
    /// (the conv's x), the values `scaled_act_forward` computes.
    Act(ScaledAct),
    /// The source is the gradient of an activation's output; the texels hold the gradient of
    /// its input `src * gamma * act'(act_x)` (the conv's dy), the values `scaled_act_backward`
    /// computes (a zero may differ in sign), `act_x` being the activation's input.
    ActBackward(ScaledAct),
}

impl Prologue {
    /// The override constants of `grouped_conv_pack_activation` for this prologue: `ACT` and
    /// `ACT_GRAD`, each 0 or the activation's code + 1.
    pub fn overrides(self) -> [(&'static str, f64); 2] {
        let (act, grad) = match self {
            Prologue::None => (0, 0),
            Prologue::Act(a) => (a.act.code() + 1, 0),
            Prologue::ActBackward(a) => (0, a.act.code() + 1),
        };
        [("ACT", act as f64), ("ACT_GRAD", grad as f64)]
    }
}

/// Writes the activation `src` `[N, C, H, W]` (a conv's x, or its dy with C = K) into the
/// texture-backed `packed` ([`packed_activation_shape`]) as 4-channel texels, the layout the
/// `_textured` conv kernels read, through `prologue`; `act_x` (shaped like `src`) is the
/// activation's input that [`Prologue::ActBackward`] needs, and only it.
pub fn pack_activation(
    gpu: &Gpu,
    groups: usize,
    src: &GpuTensor,
    prologue: Prologue,
    act_x: Option<&GpuTensor>,
    packed: &GpuTensor,
) -> Result<Launch> {
    let op = Kernel::GroupedConvPackActivation.name();
    let shape: [usize; 4] = src
        .shape()
        .try_into()
        .map_err(|_| Error::shape(op, src.label(), "[N, C, H, W]", format!("{:?}", src.shape())))?;
    let act = match prologue {
        Prologue::None => None,
        Prologue::Act(a) | Prologue::ActBackward(a) => Some(a),
    };
    let act_x = match (prologue, act_x) {
        (Prologue::ActBackward(_), Some(x)) => {
            check_shape(op, "act_x", x, &shape)?;
            x
        }
        (Prologue::ActBackward(_), None) => {
            return Err(Error::invalid(op, "the activation-backward prologue needs the activation's input"));
        }
        (_, Some(x)) => {
            return Err(Error::invalid(
                op,
                format!("{}: only the activation-backward prologue reads an activation input", x.label()),
            ))
        }
        (_, None) => src, // bound, never read
    };
    if groups == 0 || shape[1] % groups != 0 {
        return Err(Error::shape(op, "groups", format!("a divisor of C = {}", shape[1]), groups));
    }
    check_shape(op, "packed", packed, &packed_activation_shape(shape, groups))?;
    if Storage::of(packed) != Storage::Texture {
        return Err(Error::invalid(op, format!("{} must live in a texture", packed.label())));
    }
    let [n, c, h, w] = shape;
    let per_sample = packed.numel() / n / 4;
    let mut launch = Launch::new();
    for (first, count) in batch_chunks(&gpu.limits, op, n, &[(src.label(), (c * h * w * 4) as u64)])? {
        let params = PackActivationParams {
            c: c as u32,
            groups: groups as u32,
            hw: (h * w) as u32,
            texels: (count * per_sample) as u32,
            texel_base: (first * per_sample) as u32,
            gamma: act.map_or(1.0, |a| a.gamma),
            _pad: [0; 2],
        };
        let range = (first * c * h * w, count * c * h * w);
        let args = [
            Arg::range(src, range.0, range.1),
            packed.into(),
            Arg::range(act_x, range.0, range.1),
        ];
        let workgroups = grid(&gpu.limits, op, (count * per_sample).div_ceil(256))?;
        let constants = prologue.overrides();
        launch.push(Step::new(
            gpu,
            Kernel::GroupedConvPackActivation,
            &constants,
            &params,
            &args,
            workgroups,
        )?);
    }
    Ok(launch)
}

/// `t` as the texels a `_textured` kernel reads: `t` itself when it is already packed
/// (texture-backed, `packed_activation_shape(shape)`), else a scratch texture that a pack step
/// appended to `launch` fills from the buffer `t` (`shape`).
pub(super) fn texels(
    gpu: &Gpu,
    (op, what): (&str, &str),
    groups: usize,
    t: &GpuTensor,
    shape: [usize; 4],
    launch: &mut Launch,
) -> Result<GpuTensor> {
    let packed_shape = packed_activation_shape(shape, groups);
    if Storage::of(t) == Storage::Texture {
        check_shape(op, what, t, &packed_shape)?;
        return Ok(t.clone());
    }
    check_shape(op, what, t, &shape)?;
    let packed = GpuTensor::texture(gpu, &format!("{} texels", t.label()), &packed_shape)?;
    launch.extend(pack_activation(gpu, groups, t, Prologue::None, None, &packed)?);
    launch.scratch.push(packed.clone());
    Ok(packed)
}

/// The activation a forward or input-gradient pass reads (`what`: its x or dy, of `shape`),
/// checked against the packed weights' storage: `None` for the buffer kernels, else the texels
/// the `_textured` kernel reads (see [`texels`]).
pub(super) fn operand(
    gpu: &Gpu,
    (op, what): (&str, &str),
    spec: &Conv2d,
    t: &GpuTensor,
    packed_weights: &GpuTensor,
    shape: [usize; 4],
    launch: &mut Launch,
) -> Result<Option<GpuTensor>> {
    match (Storage::of(packed_weights), Storage::of(t)) {
        (Storage::Texture, _) => texels(gpu, (op, what), spec.groups, t, shape, launch).map(Some),
        (Storage::Buffer, Storage::Texture) => Err(Error::invalid(
            op,
            format!("{what} is packed in a texture, so the packed weights must live in a texture too"),
        )),
        (Storage::Buffer, Storage::Buffer) => check_shape(op, what, t, &shape).map(|_| None),
    }
}
