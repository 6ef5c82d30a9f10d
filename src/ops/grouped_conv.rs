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
//!
//! Every pass has two kernels. The buffer kernels read x, dy and the packed weights from
//! storage buffers. The `_textured` kernels read the packed weights from a texture and the
//! activations as 4-channel texels that [`pack_activation`] writes (the plan inserts the
//! packing, [`crate::graph::plan::with_conv_texels`]): on a software device such as lavapipe a
//! texel fetch costs a fraction of a bounds-checked buffer load, and those kernels run several
//! times faster there with small register tiles. Both sum in the same order, so they agree
//! bitwise; [`Gpu::conv_textures`] picks one per adapter.

use crate::error::{Error, Result};
use crate::gpu::{batch_chunks, grid, Arg, Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::scaled_act::ScaledAct;
use crate::ops::{check_numel, check_shape, sum_partials::sum_partials};

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

/// The kernels' uniform parameters (mirrors `struct Params` in `shaders/common/conv_params.wgsl`).
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
    pad_top: u32,
    pad_left: u32,
    has_bias: u32,
    accumulate: u32,
    w_stride: u32,
    blocks: u32,
    phase_y: u32,
    phase_x: u32,
    rows: u32,
    cols: u32,
    rows_per_split: u32,
    split_base: u32,
    n_base: u32,
    _pad: [u32; 3],
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
            pad_top: spec.pad.top as u32,
            pad_left: spec.pad.left as u32,
            has_bias: spec.bias as u32,
            ..Default::default()
        }
    }
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

/// Invocations per workgroup.
const WG: usize = 64;

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
    fn tile4(self, spec: &Conv2d) -> usize {
        self.dims(spec).1.div_ceil(4).min(8)
    }

    /// The padded inner length: a multiple of the channel tile, so that every tile's vec4 reads
    /// stay inside its row.
    fn row(self, spec: &Conv2d) -> usize {
        let tile = 4 * self.tile4(spec);
        self.dims(spec).1.div_ceil(tile) * tile
    }
}

/// Elements of the packed weights of `spec` in `packing`.
pub fn packed_len(spec: &Conv2d, packing: Packing) -> usize {
    spec.groups * packing.dims(spec).0 * spec.r * spec.s * packing.row(spec)
}

/// Writes `w` (OIHW) into `packed` in the layout the conv kernels read. `packed` may be a
/// buffer or a texture-backed tensor ([`GpuTensor::texture`]); the conv kernels read either.
pub fn pack_weight(gpu: &Gpu, spec: &Conv2d, w: &GpuTensor, packed: &GpuTensor, packing: Packing) -> Result<Launch> {
    let kernel = if packed.is_texture() {
        Kernel::GroupedConvPackWeightTexture
    } else {
        Kernel::GroupedConvPackWeight
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
    let step = Step::new(
        gpu,
        kernel,
        &[],
        &params,
        &[w.into(), packed.into()],
        grid(&gpu.limits, op, (len / 4).div_ceil(256))?,
    )?;
    Ok(Launch {
        steps: vec![step],
        scratch: vec![],
    })
}

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
    let kernel = match (output_inner.is_texture(), input_inner.is_texture()) {
        (true, true) => Kernel::GroupedConvPackWeightPairTexture,
        (false, false) => Kernel::GroupedConvPackWeightPair,
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
    Ok(Launch {
        steps: vec![step],
        scratch: vec![],
    })
}

/// Packs `w` into a new scratch tensor: the convenience path of the one-call launchers.
/// The weights go where the adapter's conv kernels read them ([`Gpu::conv_textures`]).
fn pack_scratch(gpu: &Gpu, spec: &Conv2d, w: &GpuTensor, packing: Packing) -> Result<(Launch, GpuTensor)> {
    check_shape(Kernel::GroupedConvPackWeight.name(), "w", w, &spec.w_shape())?;
    let (label, len) = (format!("{} packed", w.label()), [packed_len(spec, packing)]);
    let packed = match gpu.conv_textures() {
        true => GpuTensor::texture(gpu, &label, &len)?,
        false => GpuTensor::zeros(gpu, &label, &len)?,
    };
    Ok((pack_weight(gpu, spec, w, &packed, packing)?, packed))
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
    let (act, act_code, grad_code) = match prologue {
        Prologue::None => (None, 0, 0),
        Prologue::Act(a) => (Some(a), a.act.code() + 1, 0),
        Prologue::ActBackward(a) => (Some(a), 0, a.act.code() + 1),
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
    if !packed.is_texture() {
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
        let groups = grid(&gpu.limits, op, (count * per_sample).div_ceil(256))?;
        let constants = [("ACT", act_code as f64), ("ACT_GRAD", grad_code as f64)];
        launch.push(Step::new(
            gpu,
            Kernel::GroupedConvPackActivation,
            &constants,
            &params,
            &args,
            groups,
        )?);
    }
    Ok(launch)
}

/// `t` as the texels a `_textured` kernel reads: `t` itself when it is already packed
/// (texture-backed, `packed_activation_shape(shape)`), else a scratch texture that a pack step
/// appended to `launch` fills from the buffer `t` (`shape`).
fn texels(gpu: &Gpu, op: &str, what: &str, groups: usize, t: &GpuTensor, shape: [usize; 4], launch: &mut Launch) -> Result<GpuTensor> {
    let packed_shape = packed_activation_shape(shape, groups);
    if t.is_texture() {
        check_shape(op, what, t, &packed_shape)?;
        return Ok(t.clone());
    }
    check_shape(op, what, t, &shape)?;
    let packed = GpuTensor::texture(gpu, &format!("{} texels", t.label()), &packed_shape)?;
    launch.extend(pack_activation(gpu, groups, t, Prologue::None, None, &packed)?);
    launch.scratch.push(packed.clone());
    Ok(packed)
}

/// A register tile of a conv kernel (its override constants): `pixels` outputs along a row
/// (forward `TP`; the input gradient picks its own per phase, at most `pixels` when nonzero;
/// the textured weight gradient reads it as kernel taps per invocation, `TAPS`), `channels4`
/// vec4s of the channels an invocation produces (forward and weight gradient `TK4`, input
/// gradient `TC4`), `inputs` input channels per invocation (weight gradient `CB`, or `4*CB4`
/// textured). Tiles change only which invocation computes which outputs, never the order of
/// any sum, so every tile gives bitwise the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub pixels: usize,
    pub channels4: usize,
    pub inputs: usize,
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pixels={} channels4={} inputs={}", self.pixels, self.channels4, self.inputs)
    }
}

impl std::str::FromStr for Tile {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Tile, ()> {
        let mut v = s.split_whitespace().map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok()));
        match (v.next().flatten(), v.next().flatten(), v.next().flatten()) {
            (Some(pixels), Some(channels4), Some(inputs)) => Ok(Tile { pixels, channels4, inputs }),
            _ => Err(()),
        }
    }
}

/// The launch `build` makes with the autotuned tile of `kernel` at `spec` (the default tile,
/// `candidates[0]`, with autotuning off). The default launch is built first: it checks the
/// shapes, so tuning never runs on a call that is wrong.
fn tuned(gpu: &Gpu, kernel: Kernel, spec: &Conv2d, candidates: &[Tile], build: impl Fn(Tile) -> Result<Launch>) -> Result<Launch> {
    let launch = build(candidates[0])?;
    match tune_tile(gpu, kernel, spec, candidates) {
        Some(tile) if tile != candidates[0] => build(tile),
        _ => Ok(launch),
    }
}

/// The autotuned tile of `kernel` at `spec` among `candidates` (the default first), or `None`
/// with autotuning off. Candidates run on seeded data of the same shape (in the same storage)
/// and must reproduce the default's output bitwise; see [`crate::tune`].
fn tune_tile(gpu: &Gpu, kernel: Kernel, spec: &Conv2d, candidates: &[Tile]) -> Option<Tile> {
    if !gpu.autotune() || candidates.len() < 2 {
        return None;
    }
    let key = format!(
        "{} n{}_c{}_{}x{}_k{}_{}x{}_g{}_s{}x{}_pad{},{},{},{}{}",
        kernel.name(),
        spec.n,
        spec.c,
        spec.h,
        spec.w,
        spec.k,
        spec.r,
        spec.s,
        spec.groups,
        spec.stride.0,
        spec.stride.1,
        spec.pad.top,
        spec.pad.bottom,
        spec.pad.left,
        spec.pad.right,
        if spec.bias { "_bias" } else { "" },
    );
    // Inputs are made once; a shape whose trial cannot be set up keeps the default.
    let trial = Trial::new(gpu, kernel, spec).ok()?;
    crate::tune::pick(gpu, &key, candidates, |tile| trial.run(tile))
}

/// Seeded inputs and a NaN-poisoned output of one conv pass at one shape, reused by every
/// candidate the autotuner times on it. The `_textured` kernels get their activations and
/// packed weights as textures.
pub(crate) struct Trial<'a> {
    gpu: &'a Gpu,
    kernel: Kernel,
    spec: Conv2d,
    /// The weights, unpacked.
    w: GpuTensor,
    /// x (forward, weight gradient) or dy (input gradient).
    input: GpuTensor,
    /// The packed weights (forward, input gradient) or dy (weight gradient).
    other: GpuTensor,
    /// b (forward) or db (weight gradient), when the conv has a bias.
    bias: Option<GpuTensor>,
    partials: Option<GpuTensor>,
    out: GpuTensor,
}

impl<'a> Trial<'a> {
    /// A trial of `kernel` (a forward, input or weight gradient kernel) at `spec`.
    pub(crate) fn new(gpu: &'a Gpu, kernel: Kernel, spec: &Conv2d) -> Result<Trial<'a>> {
        let textures = matches!(
            kernel,
            Kernel::GroupedConvForwardTextured | Kernel::GroupedConvBackwardInputTextured | Kernel::GroupedConvBackwardWeightTextured
        );
        let mut rng = crate::testing::Rng::new(0x711e);
        let mut random = |label: &str, shape: &[usize]| {
            let data: Vec<f32> = rng.normal(shape.iter().product()).iter().map(|&v| v as f32).collect();
            GpuTensor::from_f32(gpu, label, shape, &data)
        };
        let w = random("w", &spec.w_shape())?;
        // An activation; the textured kernels' packed once here, not in every timed run.
        let mut activation = |label: &str, shape: [usize; 4]| -> Result<GpuTensor> {
            let t = random(label, &shape)?;
            if !textures {
                return Ok(t);
            }
            let packed = GpuTensor::texture(gpu, label, &packed_activation_shape(shape, spec.groups))?;
            gpu.run(&[&pack_activation(gpu, spec.groups, &t, Prologue::None, None, &packed)?])?;
            Ok(packed)
        };
        let packed = |w: &GpuTensor, packing: Packing| -> Result<GpuTensor> {
            let len = packed_len(spec, packing);
            let packed = match textures {
                true => GpuTensor::texture(gpu, "autotune packed", &[len])?,
                false => GpuTensor::zeros(gpu, "autotune packed", &[len])?,
            };
            gpu.run(&[&pack_weight(gpu, spec, w, &packed, packing)?])?;
            Ok(packed)
        };
        let (input, other, out, partials) = match kernel {
            Kernel::GroupedConvForward | Kernel::GroupedConvForwardTextured => {
                let x = activation("x", spec.x_shape())?;
                let packed = packed(&w, Packing::OutputInner)?;
                (x, packed, GpuTensor::zeros(gpu, "y", &spec.y_shape())?, None)
            }
            Kernel::GroupedConvBackwardInput | Kernel::GroupedConvBackwardInputTextured => {
                let dy = activation("dy", spec.y_shape())?;
                let packed = packed(&w, Packing::InputInner)?;
                (dy, packed, GpuTensor::zeros(gpu, "dx", &spec.x_shape())?, None)
            }
            _ => {
                let (x, dy) = (activation("x", spec.x_shape())?, activation("dy", spec.y_shape())?);
                let partials = partials_shape(&gpu.limits, spec)
                    .map(|shape| GpuTensor::zeros(gpu, "partials", &shape))
                    .transpose()?;
                (x, dy, GpuTensor::zeros(gpu, "dw", &spec.w_shape())?, partials)
            }
        };
        let bias = spec.bias.then(|| random("b", &[spec.k])).transpose()?;
        Ok(Trial {
            gpu,
            kernel,
            spec: *spec,
            w,
            input,
            other,
            bias,
            partials,
            out,
        })
    }

    /// A buffer-kernel forward trial run with its default tile, or (`textures`) with its
    /// weights packed into a texture: the `_textured` kernel with its default tile, packing x
    /// inside the timed launch as a plan does.
    pub(crate) fn run_storage(&self, textures: bool) -> Result<(f64, Vec<f32>)> {
        if !textures {
            return self.run(forward_tiles(&self.spec, false)[0]);
        }
        let tile = forward_tiles(&self.spec, true)[0];
        let gpu = self.gpu;
        let packed = GpuTensor::texture(gpu, "autotune packed", &[self.other.numel()])?;
        gpu.run(&[&pack_weight(gpu, &self.spec, &self.w, &packed, Packing::OutputInner)?])?;
        self.measure(&forward_tiled(
            gpu,
            &self.spec,
            &self.input,
            &packed,
            self.bias.as_ref(),
            &self.out,
            tile,
        )?)
    }

    /// Runs `launch` (which writes `out`) on a poisoned output: the best time in milliseconds
    /// and the output.
    fn measure(&self, launch: &Launch) -> Result<(f64, Vec<f32>)> {
        self.out.write_f32(self.gpu, &vec![f32::NAN; self.out.numel()])?;
        let ms = crate::tune::time(self.gpu, launch, 2)?;
        Ok((ms, self.out.read_f32(self.gpu)?))
    }

    /// Runs the pass with `tile` on a poisoned output: the best time in milliseconds and the
    /// output.
    pub(crate) fn run(&self, tile: Tile) -> Result<(f64, Vec<f32>)> {
        let (gpu, spec) = (self.gpu, &self.spec);
        let launch = match self.kernel {
            Kernel::GroupedConvForward | Kernel::GroupedConvForwardTextured => {
                forward_tiled(gpu, spec, &self.input, &self.other, self.bias.as_ref(), &self.out, tile)?
            }
            Kernel::GroupedConvBackwardInput | Kernel::GroupedConvBackwardInputTextured => {
                backward_input_tiled(gpu, spec, &self.input, &self.other, &self.out, false, tile)?
            }
            _ => backward_weight_tiled(
                gpu,
                spec,
                &self.input,
                &self.other,
                &self.out,
                self.bias.as_ref(),
                self.partials.as_ref(),
                tile,
            )?,
        };
        self.measure(&launch)
    }
}

/// The number of outputs per invocation along a row of `cols` pixels (at most `max`) that
/// minimises the loads per row: `ceil(cols / tp)` tiles, each loading `span(tp)` inputs
/// plus `per_tile` weights.
fn row_tile(cols: usize, max: usize, span: impl Fn(usize) -> usize, per_tile: usize) -> usize {
    (1..=max.min(cols.max(1)))
        .min_by_key(|&tp| (cols.div_ceil(tp) * (span(tp) + per_tile), usize::MAX - tp))
        .unwrap_or(1)
}

/// The tiled kernels are written out for 1x1 and 3x3 filters with strides 1 and 2: every conv
/// of the NFNet family.
fn check_kernel(op: &str, spec: &Conv2d) -> Result<()> {
    if ![1, 3].contains(&spec.r) || ![1, 3].contains(&spec.s) {
        return Err(Error::shape(
            op,
            "kernel size",
            "1x1, 1x3, 3x1 or 3x3",
            format!("{}x{}", spec.r, spec.s),
        ));
    }
    if ![1, 2].contains(&spec.stride.0) || ![1, 2].contains(&spec.stride.1) {
        return Err(Error::shape(op, "stride", "1 or 2 in each direction", format!("{:?}", spec.stride)));
    }
    Ok(())
}

fn chunks(limits: &wgpu::Limits, op: &str, spec: &Conv2d, x: &str, y: &str) -> Result<Vec<(usize, usize)>> {
    let (p, q) = spec.out_hw();
    batch_chunks(
        limits,
        op,
        spec.n,
        &[(x, (spec.c * spec.h * spec.w * 4) as u64), (y, (spec.k * p * q * 4) as u64)],
    )
}

/// `y = conv(x, w) + b`, packing `w` first. Shapes as in the module docs; `b` must be given iff
/// `spec.bias`.
pub fn forward(gpu: &Gpu, spec: &Conv2d, x: &GpuTensor, w: &GpuTensor, b: Option<&GpuTensor>, y: &GpuTensor) -> Result<Launch> {
    spec.validate(Kernel::GroupedConvForward.name())?;
    let (mut launch, packed) = pack_scratch(gpu, spec, w, Packing::OutputInner)?;
    launch.extend(forward_packed(gpu, spec, x, &packed, b, y)?);
    launch.scratch.push(packed);
    Ok(launch)
}

/// `y = conv(x, w) + b` with `w` already packed ([`pack_weight`], [`Packing::OutputInner`]),
/// with the register tile the autotuner picks for this shape ([`crate::tune`]).
///
/// Packed weights in a texture select `grouped_conv_forward_textured`, which reads x as texels:
/// `x` may then be packed already ([`pack_activation`]) or a buffer that the launch packs into
/// a scratch texture first.
pub fn forward_packed(gpu: &Gpu, spec: &Conv2d, x: &GpuTensor, packed: &GpuTensor, b: Option<&GpuTensor>, y: &GpuTensor) -> Result<Launch> {
    let kernel = match packed.is_texture() {
        true => Kernel::GroupedConvForwardTextured,
        false => Kernel::GroupedConvForward,
    };
    let tiles = forward_tiles(spec, packed.is_texture());
    tuned(gpu, kernel, spec, &tiles, |tile| forward_tiled(gpu, spec, x, packed, b, y, tile))
}

/// The forward's tiles, the default first: for the buffer kernel 16 channels with the row tile
/// that loads least, then 32 channels and other row tiles; for the `_textured` kernel 4 pixels x
/// 4 channels, then other small tiles.
pub fn forward_tiles(spec: &Conv2d, textured: bool) -> Vec<Tile> {
    let (_, q) = spec.out_hw();
    let sw = spec.stride.1;
    let tile4 = Packing::OutputInner.tile4(spec);
    let row = |tk4: usize| row_tile(q, ((17 - spec.s) / sw + 1).min(8), |tp| (tp - 1) * sw + spec.s, spec.s * 4 * tk4);
    // (channels4, pixels) pairs. The textured kernel fetches 4 channels at once and is fastest
    // with a handful of accumulators (measured on lavapipe: 4 pixels x 4 channels beat every
    // larger tile); the buffer kernel amortises its costly loads over large tiles.
    let pairs: Vec<(usize, usize)> = match textured {
        true => vec![(1, 4), (1, 2), (1, 6), (tile4.min(2), 4)],
        false => [tile4.min(4), tile4]
            .into_iter()
            .flat_map(|tk4| [(tk4, row(tk4)), (tk4, 4), (tk4, 8)])
            .collect(),
    };
    let mut tiles = Vec::new();
    for (tk4, tp) in pairs {
        let tp = tp.min(q);
        let tile = Tile {
            pixels: tp,
            channels4: tk4,
            inputs: 1,
        };
        if tp * tk4 <= 64 && (tp - 1) * sw + spec.s <= 17 && !tiles.contains(&tile) {
            tiles.push(tile);
        }
    }
    tiles
}

/// The forward with an explicit tile (one of [`forward_tiles`]).
pub fn forward_tiled(
    gpu: &Gpu,
    spec: &Conv2d,
    x: &GpuTensor,
    packed: &GpuTensor,
    b: Option<&GpuTensor>,
    y: &GpuTensor,
    tile: Tile,
) -> Result<Launch> {
    let op = Kernel::GroupedConvForward.name();
    spec.validate(op)?;
    check_kernel(op, spec)?;
    check_numel(op, "packed weights", packed, packed_len(spec, Packing::OutputInner))?;
    check_shape(op, "y", y, &spec.y_shape())?;
    let mut launch = Launch::new();
    let xt = textured_input(gpu, op, "x", spec, x, packed, spec.x_shape(), &mut launch)?;
    let mut placeholder = None;
    let b = bias_arg(gpu, op, spec, b, &mut placeholder)?;
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let kg = spec.k / spec.groups;
    let (tp, tk4) = (tile.pixels, tile.channels4);
    let sw = spec.stride.1;
    let span = |tp: usize| (tp - 1) * sw + spec.s;
    let overrides = [
        ("R", spec.r as f64),
        ("S", spec.s as f64),
        ("SH", spec.stride.0 as f64),
        ("SW", sw as f64),
        ("TP", tp as f64),
        ("TK4", tk4 as f64),
        ("SPAN", span(tp) as f64),
    ];
    let blocks = q.div_ceil(tp);
    let kblocks = kg.div_ceil(4 * tk4);
    for (first, n) in chunks(&gpu.limits, op, spec, x.label(), y.label())? {
        let params = Params {
            w_stride: Packing::OutputInner.row(spec) as u32,
            blocks: blocks as u32,
            n_base: first as u32,
            ..Params::new(spec, n)
        };
        let (kernel, x_arg) = match &xt {
            Some(t) => (Kernel::GroupedConvForwardTextured, t.into()),
            None => (Kernel::GroupedConvForward, Arg::range(x, first * xs, n * xs)),
        };
        let args = [x_arg, packed.into(), b, Arg::range(y, first * ys, n * ys)];
        let groups = [(n * p * blocks * kblocks).div_ceil(WG) as u32, spec.groups as u32, 1];
        launch.push(Step::new(gpu, kernel, &overrides, &params, &args, groups)?);
    }
    launch.scratch.extend(placeholder);
    Ok(launch)
}

/// The activation a conv pass reads, checked: `None` for the buffer kernels (packed weights in
/// a buffer), else the texels the `_textured` kernel reads (see [`texels`]).
#[allow(clippy::too_many_arguments)]
fn textured_input(
    gpu: &Gpu,
    op: &str,
    what: &str,
    spec: &Conv2d,
    t: &GpuTensor,
    packed: &GpuTensor,
    shape: [usize; 4],
    launch: &mut Launch,
) -> Result<Option<GpuTensor>> {
    if packed.is_texture() {
        return texels(gpu, op, what, spec.groups, t, shape, launch).map(Some);
    }
    if t.is_texture() {
        return Err(Error::invalid(
            op,
            format!("{what} is packed in a texture, so the packed weights must live in a texture too"),
        ));
    }
    check_shape(op, what, t, &shape)?;
    Ok(None)
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

/// The taps `first, first + stride, ...` below `size` that reach pixels of phase `phase`
/// (pixels `i` with `(i + pad) mod stride = phase`): `(first, count)`.
fn phase_taps(phase: usize, pad: usize, stride: usize, size: usize) -> (usize, usize) {
    let first = (phase + pad) % stride;
    (first, size.saturating_sub(first).div_ceil(stride))
}

/// `dx (+)= d conv / dx`, packing `w` first. With `accumulate` the gradient is added to `dx`
/// (fan-out), else it overwrites it.
pub fn backward_input(gpu: &Gpu, spec: &Conv2d, dy: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<Launch> {
    spec.validate(Kernel::GroupedConvBackwardInput.name())?;
    let (mut launch, packed) = pack_scratch(gpu, spec, w, Packing::InputInner)?;
    launch.extend(backward_input_packed(gpu, spec, dy, &packed, dx, accumulate)?);
    launch.scratch.push(packed);
    Ok(launch)
}

/// `dx (+)= d conv / dx` with `w` already packed ([`Packing::InputInner`]). One dispatch per
/// stride phase (see the shader), with the channel tile the autotuner picks for this shape.
/// Packed weights in a texture select the `_textured` kernel, which reads dy as texels (packed
/// already, or packed by the launch as in [`forward_packed`]).
pub fn backward_input_packed(
    gpu: &Gpu,
    spec: &Conv2d,
    dy: &GpuTensor,
    packed: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
) -> Result<Launch> {
    let kernel = match packed.is_texture() {
        true => Kernel::GroupedConvBackwardInputTextured,
        false => Kernel::GroupedConvBackwardInput,
    };
    tuned(gpu, kernel, spec, &backward_input_tiles(spec, packed.is_texture()), |tile| {
        backward_input_tiled(gpu, spec, dy, packed, dx, accumulate, tile)
    })
}

/// The input gradient's tiles, the default (16 channels) first: the row tile is chosen per
/// stride phase, so the candidates differ in the channels per invocation.
///
/// `pixels` caps the row tile (0: up to 8); the textured kernel, like the textured forward,
/// runs best with small tiles.
pub fn backward_input_tiles(spec: &Conv2d, textured: bool) -> Vec<Tile> {
    let tile4 = Packing::InputInner.tile4(spec);
    let tile = |pixels: usize, channels4: usize| Tile {
        pixels,
        channels4: channels4.min(tile4),
        inputs: 1,
    };
    let mut tiles = match textured {
        true => vec![tile(4, 1), tile(2, 1), tile(4, 2), tile(2, 2), tile(8, 1)],
        false => vec![tile(0, 4), tile(0, 8)],
    };
    tiles.dedup();
    tiles
}

/// The input gradient with an explicit channel tile (one of [`backward_input_tiles`]).
pub fn backward_input_tiled(
    gpu: &Gpu,
    spec: &Conv2d,
    dy: &GpuTensor,
    packed: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
    tile: Tile,
) -> Result<Launch> {
    let op = Kernel::GroupedConvBackwardInput.name();
    spec.validate(op)?;
    check_kernel(op, spec)?;
    check_numel(op, "packed weights", packed, packed_len(spec, Packing::InputInner))?;
    check_shape(op, "dx", dx, &spec.x_shape())?;
    let mut launch = Launch::new();
    let dyt = textured_input(gpu, op, "dy", spec, dy, packed, spec.y_shape(), &mut launch)?;
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let cg = spec.c / spec.groups;
    let tc4 = tile.channels4;
    let (sh, sw) = spec.stride;
    let chunks = chunks(&gpu.limits, op, spec, dx.label(), dy.label())?;
    for a in 0..sh.min(spec.h) {
        for b in 0..sw.min(spec.w) {
            let (r0, nr) = phase_taps(a, spec.pad.top, sh, spec.r);
            let (s0, ns) = phase_taps(b, spec.pad.left, sw, spec.s);
            let (rows, cols) = ((spec.h - a).div_ceil(sh), (spec.w - b).div_ceil(sw));
            let max = if tile.pixels > 0 { tile.pixels } else { 8 };
            let tp = row_tile(cols, (64 / tc4).min(max), |tp| tp + ns.saturating_sub(1), ns * 4 * tc4);
            let overrides = [
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
            let blocks = cols.div_ceil(tp);
            for &(first, n) in &chunks {
                let params = Params {
                    accumulate: accumulate as u32,
                    w_stride: Packing::InputInner.row(spec) as u32,
                    blocks: blocks as u32,
                    phase_y: a as u32,
                    phase_x: b as u32,
                    rows: rows as u32,
                    cols: cols as u32,
                    n_base: first as u32,
                    ..Params::new(spec, n)
                };
                let (kernel, dy_arg) = match &dyt {
                    Some(t) => (Kernel::GroupedConvBackwardInputTextured, t.into()),
                    None => (Kernel::GroupedConvBackwardInput, Arg::range(dy, first * ys, n * ys)),
                };
                let args = [dy_arg, packed.into(), Arg::range(dx, first * xs, n * xs)];
                let groups = [
                    (n * rows * blocks * cg.div_ceil(4 * tc4)).div_ceil(WG) as u32,
                    spec.groups as u32,
                    1,
                ];
                launch.push(Step::new(gpu, kernel, &overrides, &params, &args, groups)?);
            }
        }
    }
    Ok(launch)
}

/// How the weight gradient runs: its tile overrides, the rows per split of one batch chunk,
/// and the number of splits.
struct WeightGradPlan {
    tk4: usize,
    cb: usize,
    xgroups: usize,
    /// Workgroups in y: the groups.
    kblocks: usize,
    rows_per_split: usize,
    splits: usize,
    chunks: Vec<(usize, usize)>,
}

impl WeightGradPlan {
    /// Enough splits of the N*P rows to give the adapter a few hundred workgroups, never fewer
    /// than 4 rows in one, and no more partial sums than fit one storage binding. A function of
    /// the shape and the adapter's limits only, so the summation order is reproducible.
    fn new(limits: &wgpu::Limits, spec: &Conv2d, x: &str, dy: &str, tile: Option<(Tile, bool)>) -> Result<WeightGradPlan> {
        let (p, _) = spec.out_hw();
        let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
        // The splits follow from the buffer kernel's default tile whatever tile and kernel run,
        // so that the partial-sum workspace and the summation order do not depend on tuning.
        let default = backward_weight_tiles(spec, false)[0];
        let xgroups_of = |t: Tile, textured: bool| match textured {
            // The textured kernel works in channel quads.
            true => {
                (cg.div_ceil(4).div_ceil(t.inputs / 4) * kg.div_ceil(4).div_ceil(t.channels4) * spec.r * spec.s / t.pixels).div_ceil(WG)
            }
            false => (cg.div_ceil(t.inputs) * kg.div_ceil(4 * t.channels4)).div_ceil(WG),
        };
        let (tile, textured) = tile.unwrap_or((default, false));
        let (tk4, cb) = (tile.channels4, tile.inputs);
        // Lanes over (input tile, output tile) within a group; y over groups.
        let xgroups = xgroups_of(tile, textured);
        let kblocks = spec.groups;
        let chunks = chunks(limits, Kernel::GroupedConvBackwardWeight.name(), spec, x, dy)?;
        let rows = chunks.iter().map(|&(_, n)| n * p).max().unwrap_or(1);
        let wanted = 256usize.div_ceil(xgroups_of(default, false) * kblocks).min(rows.div_ceil(4));
        let fit = (limits.max_storage_buffer_binding_size / (spec.k * cg * spec.r * spec.s * 4) as u64) as usize;
        let rows_per_split = rows.div_ceil(wanted.min(fit).max(1));
        Ok(WeightGradPlan {
            tk4,
            cb,
            xgroups,
            kblocks,
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

/// The shape of the partial-sum workspace [`backward_weight_into`] needs, or `None` when the
/// kernel writes the gradient directly.
pub fn partials_shape(limits: &wgpu::Limits, spec: &Conv2d) -> Option<Vec<usize>> {
    let plan = WeightGradPlan::new(limits, spec, "x", "dy", None).ok()?;
    (!plan.direct()).then(|| vec![plan.splits, spec.k * spec.c / spec.groups * spec.r * spec.s])
}

/// `dw = d conv / dw` and, when the conv has a bias, `db = d conv / db` (both overwritten), with
/// a partial-sum workspace of its own. Where the adapter's conv kernels read textures
/// ([`Gpu::conv_textures`]), x and dy are packed into scratch textures first.
pub fn backward_weight(gpu: &Gpu, spec: &Conv2d, x: &GpuTensor, dy: &GpuTensor, dw: &GpuTensor, db: Option<&GpuTensor>) -> Result<Launch> {
    let partials = partials_shape(&gpu.limits, spec)
        .map(|shape| GpuTensor::zeros(gpu, &format!("{} partials", dw.label()), &shape))
        .transpose()?;
    let mut launch = Launch::new();
    let (x, dy) = match gpu.conv_textures() && !x.is_texture() && !dy.is_texture() {
        true => weight_grad_texels(gpu, spec, x, dy, &mut launch)?,
        false => (x.clone(), dy.clone()),
    };
    launch.extend(backward_weight_into(gpu, spec, &x, &dy, dw, db, partials.as_ref())?);
    launch.scratch.extend(partials);
    Ok(launch)
}

/// x and dy as the texels the textured weight gradient reads ([`texels`]).
fn weight_grad_texels(gpu: &Gpu, spec: &Conv2d, x: &GpuTensor, dy: &GpuTensor, launch: &mut Launch) -> Result<(GpuTensor, GpuTensor)> {
    let op = Kernel::GroupedConvBackwardWeight.name();
    Ok((
        texels(gpu, op, "x", spec.groups, x, spec.x_shape(), launch)?,
        texels(gpu, op, "dy", spec.groups, dy, spec.y_shape(), launch)?,
    ))
}

/// The weight gradient's tiles (input channels x output channel vec4s per invocation), the
/// default first, for the buffer kernel or (`textured`) the `_textured` one, whose input
/// channels come in quads and whose `pixels` is the number of kernel taps per invocation (all
/// R*S, one row of S, or 1): on lavapipe it runs fastest with few accumulators.
pub fn backward_weight_tiles(spec: &Conv2d, textured: bool) -> Vec<Tile> {
    let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
    let cg = if textured { cg.div_ceil(4) * 4 } else { cg };
    let rs = spec.r * spec.s;
    let tile = |inputs: usize, channels4: usize, taps: usize| Tile {
        pixels: if textured { taps } else { 0 },
        inputs: inputs.min(cg),
        channels4: channels4.min(kg.div_ceil(4)),
    };
    let mut tiles = match (rs, textured) {
        (1, false) => vec![tile(8, 2, 0), tile(8, 4, 0), tile(16, 2, 0)],
        (_, false) => vec![tile(1, 2, 0), tile(1, 4, 0), tile(2, 2, 0)],
        (1, true) => vec![tile(4, 1, 1), tile(8, 1, 1), tile(4, 2, 1)],
        (_, true) => vec![tile(4, 1, 1), tile(4, 1, spec.s), tile(8, 1, 1), tile(4, 2, 1), tile(4, 1, rs)],
    };
    tiles.dedup();
    let first = tiles[0];
    let taps = |t: &Tile| if textured { t.pixels } else { rs };
    tiles.retain(|t| *t == first || t.inputs * taps(t) * t.channels4 <= 72);
    tiles.sort_by_key(|t| *t != first);
    tiles.dedup();
    tiles
}

/// [`backward_weight`] with the workspace given (shaped by [`partials_shape`]), with the tile
/// the autotuner picks for this shape.
///
/// Per batch chunk: the weight (and bias) kernels write one partial sum per split of the rows,
/// and `sum_partials` adds them into `dw` (`db`), overwriting for the first chunk and adding for
/// the next, a fixed order. One chunk with one split writes `dw` directly.
pub fn backward_weight_into(
    gpu: &Gpu,
    spec: &Conv2d,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
    db: Option<&GpuTensor>,
    partials: Option<&GpuTensor>,
) -> Result<Launch> {
    let textured = x.is_texture() || dy.is_texture();
    let kernel = match textured {
        true => Kernel::GroupedConvBackwardWeightTextured,
        false => Kernel::GroupedConvBackwardWeight,
    };
    tuned(gpu, kernel, spec, &backward_weight_tiles(spec, textured), |tile| {
        backward_weight_tiled(gpu, spec, x, dy, dw, db, partials, tile)
    })
}

/// The weight gradient with an explicit tile (one of [`backward_weight_tiles`]). When x or dy
/// is packed in a texture ([`pack_activation`]) the `_textured` kernel runs (packing the other
/// one if it is a buffer) and computes the bias gradient too.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight_tiled(
    gpu: &Gpu,
    spec: &Conv2d,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
    db: Option<&GpuTensor>,
    partials: Option<&GpuTensor>,
    tile: Tile,
) -> Result<Launch> {
    let op = Kernel::GroupedConvBackwardWeight.name();
    spec.validate(op)?;
    check_kernel(op, spec)?;
    check_shape(op, "dw", dw, &spec.w_shape())?;
    let mut launch = Launch::new();
    let textured = x.is_texture() || dy.is_texture();
    let texels = match textured {
        true => Some(weight_grad_texels(gpu, spec, x, dy, &mut launch)?),
        false => {
            check_shape(op, "x", x, &spec.x_shape())?;
            check_shape(op, "dy", dy, &spec.y_shape())?;
            None
        }
    };
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
    let plan = WeightGradPlan::new(&gpu.limits, spec, x.label(), dy.label(), Some((tile, textured)))?;
    let taps = tile.pixels;
    if textured
        && (tile.inputs % 4 != 0
            || ![1, spec.s, spec.r * spec.s].contains(&taps)
            || tile.inputs * taps * tile.channels4 > 72
            || tile.channels4 > 4)
    {
        return Err(Error::invalid(op, format!("{tile} is not a tile of the textured kernel")));
    }
    let wpart = match (plan.direct(), partials) {
        (true, _) => None,
        (false, Some(part)) => {
            check_shape(op, "partials", part, &[plan.splits, dw.numel()])?;
            Some(part)
        }
        (false, None) => {
            return Err(Error::invalid(
                op,
                format!(
                    "the weight gradient needs a partial-sum workspace of {} x {}",
                    plan.splits,
                    dw.numel()
                ),
            ))
        }
    };
    let (p, q) = spec.out_hw();
    let (xs, ys) = (spec.c * spec.h * spec.w, spec.k * p * q);
    let mut overrides = vec![
        ("R", spec.r as f64),
        ("S", spec.s as f64),
        ("SH", spec.stride.0 as f64),
        ("SW", spec.stride.1 as f64),
        ("TK4", plan.tk4 as f64),
    ];
    if textured {
        let (rows, cols) = match taps {
            1 => (1, 1),
            t if t == spec.r * spec.s => (spec.r, spec.s),
            _ => (1, spec.s),
        };
        overrides.extend([
            ("CB4", (plan.cb / 4) as f64),
            ("TAPS", taps as f64),
            ("TR", rows as f64),
            ("TS", cols as f64),
        ]);
    } else {
        overrides.push(("CB", plan.cb as f64));
    }
    // The bias partials are K floats a split: small enough to own.
    let bpart = match db {
        Some(db) if !plan.direct() => Some(GpuTensor::zeros(gpu, &format!("{} partials", db.label()), &[plan.splits, spec.k])?),
        _ => None,
    };
    let mut placeholder = None;
    for (i, &(first, n)) in plan.chunks.iter().enumerate() {
        let params = Params {
            rows_per_split: plan.rows_per_split as u32,
            n_base: first as u32,
            ..Params::new(spec, n)
        };
        let zs = (n * p).div_ceil(plan.rows_per_split);
        let groups = [plan.xgroups as u32, plan.kblocks as u32, zs as u32];
        if let Some((xt, dyt)) = &texels {
            let bias_out = match (&bpart, db) {
                (Some(part), _) => part,
                (None, Some(db)) => db,
                (None, None) => &*placeholder.insert(GpuTensor::zeros(gpu, "no bias", &[1])?),
            };
            let args = [xt.into(), dyt.into(), wpart.unwrap_or(dw).into(), bias_out.into()];
            launch.push(Step::new(
                gpu,
                Kernel::GroupedConvBackwardWeightTextured,
                &overrides,
                &params,
                &args,
                groups,
            )?);
        } else {
            let args = [
                Arg::range(x, first * xs, n * xs),
                Arg::range(dy, first * ys, n * ys),
                wpart.unwrap_or(dw).into(),
            ];
            launch.push(Step::new(
                gpu,
                Kernel::GroupedConvBackwardWeight,
                &overrides,
                &params,
                &args,
                groups,
            )?);
        }
        if let (Some(db), None) = (db, &texels) {
            let args = [Arg::range(dy, first * ys, n * ys), bpart.as_ref().unwrap_or(db).into()];
            launch.push(Step::new(
                gpu,
                Kernel::GroupedConvBackwardBias,
                &[],
                &params,
                &args,
                [spec.k.div_ceil(WG) as u32, 1, zs as u32],
            )?);
        }
        if let Some(part) = wpart {
            launch.push(sum_partials(gpu, part, dw, zs, plan.splits, 1.0, i > 0)?);
        }
        if let (Some(part), Some(db)) = (&bpart, db) {
            launch.push(sum_partials(gpu, part, db, zs, plan.splits, 1.0, i > 0)?);
        }
    }
    launch.scratch.extend(bpart);
    launch.scratch.extend(placeholder);
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
