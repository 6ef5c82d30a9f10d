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
//! Padding is given per side, so TF/JAX 'SAME' (asymmetric for stride 2: [`Conv2d::same`]) and
//! PyTorch's symmetric padding ([`Conv2d::symmetric`]) are both exact.
//!
//! The module by pass: [`packing`] lays weights (and, for textures, activations) out as the
//! kernels read them; [`forward`](mod@forward), [`backward_input`](mod@backward_input) and
//! [`backward_weight`](mod@backward_weight) launch the three
//! passes on packed operands; [`tiles`](mod@tiles) lists each pass's register tiles; [`standalone`] runs a
//! pass on its own from unpacked weights; [`cpu`] is the f64 reference.
//!
//! Every launcher takes its choices as data: where the operands live ([`Storage`]: storage
//! buffers, or packed 4-channel texels read by the `_textured` kernels, several times faster on
//! a software device such as lavapipe) follows from the tensors it is given, and the register
//! tile ([`Tile`]) is an argument. A tile may also name a kernel whose invocations share loads
//! ([`Share`]): `_subgroup` kernels broadcast the operand every lane of a subgroup needs (1x1,
//! on texels), `_workgroup` kernels stage operand tiles in workgroup memory (on buffers, shaped
//! for GPUs). All of these change which invocation computes what, never the order of a sum, so
//! every storage and tile gives bitwise the same result. The plan packs each operand
//! once per step and asks the tuner (`crate::tune`) for the tiles.
//!
//! The weight and bias gradients contract over N*P*Q: the rows (n, p) are cut into splits, each
//! split writes a partial sum, and `sum_partials` adds them in a fixed order (deterministic).
//! Batches whose tensors exceed one storage binding are split along N into several dispatches.

pub mod backward_input;
pub mod backward_weight;
pub mod cpu;
pub mod forward;
pub mod packing;
pub mod standalone;
pub mod tiles;

pub use backward_input::backward_input;
pub use backward_weight::{backward_weight, partials_shape};
pub use forward::forward;
pub use packing::{pack_activation, pack_weight, pack_weight_pair, packed_activation_shape, packed_len, Packing, Prologue};
pub use tiles::{tiles, Pass, Share, Tile};

use crate::error::{Error, Result};
use crate::gpu::{batch_chunks, Arg, Gpu, GpuTensor, Kernel};

/// Zero padding on each side of the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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
        let total = |i: usize, k: usize, st: usize| ((i.div_ceil(st.max(1)).max(1) - 1) * st + k).saturating_sub(i);
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
        let ph = (stride.0.saturating_sub(1) + r.saturating_sub(1)) / 2;
        let pw = (stride.1.saturating_sub(1) + s.saturating_sub(1)) / 2;
        Padding {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }
}

/// The shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// A square `kernel` x `kernel` conv of `x` `[N, C, H, W]` into `k` channels at `stride`,
    /// with TF/JAX 'SAME' padding, one group and no bias (see [`Conv2d::groups`],
    /// [`Conv2d::with_bias`], [`Conv2d::padding`]).
    pub fn same(x: [usize; 4], k: usize, kernel: usize, stride: usize) -> Conv2d {
        let [n, c, h, w] = x;
        Conv2d {
            n,
            c,
            h,
            w,
            k,
            r: kernel,
            s: kernel,
            groups: 1,
            stride: (stride, stride),
            pad: Padding::same(h, w, kernel, kernel, (stride, stride)),
            bias: false,
        }
    }

    /// [`Conv2d::same`] with PyTorch's symmetric padding.
    pub fn symmetric(x: [usize; 4], k: usize, kernel: usize, stride: usize) -> Conv2d {
        Conv2d {
            pad: Padding::symmetric(kernel, kernel, (stride, stride)),
            ..Conv2d::same(x, k, kernel, stride)
        }
    }

    /// The conv with `groups` groups.
    pub fn groups(self, groups: usize) -> Conv2d {
        Conv2d { groups, ..self }
    }

    /// The conv with a bias (`true`) or without.
    pub fn with_bias(self, bias: bool) -> Conv2d {
        Conv2d { bias, ..self }
    }

    /// The conv with the padding `pad`.
    pub fn padding(self, pad: Padding) -> Conv2d {
        Conv2d { pad, ..self }
    }

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

/// Where the conv kernels read their packed weights and activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Storage {
    /// Storage buffers (the buffer kernels).
    #[default]
    Buffer,
    /// rgba32float textures: packed weights, and activations as 4-channel texels
    /// ([`pack_activation`]), read by the `_textured` kernels.
    Texture,
}

impl Storage {
    /// The storage used untuned on `gpu`: textures on a CPU adapter (a software rasterizer such
    /// as lavapipe, llvmpipe or SwiftShader, where a texel fetch costs a fraction of a
    /// bounds-checked buffer load: the conv kernels run 2-4 times faster), buffers elsewhere.
    pub fn untuned(gpu: &Gpu) -> Storage {
        match gpu.info.device_type {
            wgpu::DeviceType::Cpu => Storage::Texture,
            _ => Storage::Buffer,
        }
    }

    /// The storage of a tensor: a texture-backed one is `Texture`.
    pub fn of(t: &GpuTensor) -> Storage {
        match t.is_texture() {
            true => Storage::Texture,
            false => Storage::Buffer,
        }
    }

    /// A new zero-filled tensor of `shape` in this storage.
    pub fn tensor(self, gpu: &Gpu, label: &str, shape: &[usize]) -> Result<GpuTensor> {
        match self {
            Storage::Buffer => GpuTensor::zeros(gpu, label, shape),
            Storage::Texture => GpuTensor::texture(gpu, label, shape),
        }
    }
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::Buffer => "buffer",
            Storage::Texture => "texture",
        })
    }
}

impl std::str::FromStr for Storage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Storage> {
        match s {
            "buffer" => Ok(Storage::Buffer),
            "texture" => Ok(Storage::Texture),
            other => Err(Error::invalid(
                "conv storage",
                format!("expected `buffer` or `texture`, got `{other}`"),
            )),
        }
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
    n_base: u32,
    _pad: [u32; 4],
}

impl Params {
    /// The shape fields for a batch chunk of `n` images.
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

/// Invocations per workgroup of the conv kernels.
const WG: usize = 64;

/// The weight vec4s the forward and input-gradient `_workgroup` kernels stage at once (`wsh`).
const STAGED: usize = 512;

/// The lanes each channel tile's pixel tiles are rounded up to (the shaders' `out_tile` and
/// `in_tile`): a whole workgroup for the kernels that share loads, so that no subgroup or
/// workgroup spans two channel tiles.
fn align(tile: Tile) -> usize {
    match tile.share {
        Share::Lane => 1,
        Share::Subgroup | Share::Workgroup => WG,
    }
}

/// The kernel of `pass` on operands in `storage`, once `spec` is a valid conv of the shapes the
/// tiled kernels are written for, `tile` one of the pass's tiles at it, and `gpu` runs the
/// subgroup kernels if `tile` is theirs.
fn pass_kernel(gpu: &Gpu, pass: Pass, spec: &Conv2d, storage: Storage, tile: Tile) -> Result<Kernel> {
    let kernel = pass.tile_kernel(storage, tile);
    let op = kernel.name();
    spec.validate(op)?;
    check_kernel(op, spec)?;
    if !tiles(pass, spec, storage).contains(&tile) {
        return Err(Error::invalid(op, format!("{tile} is not one of its tiles for this shape")));
    }
    if kernel.needs_subgroups() && !gpu.shares_subgroups() {
        return Err(Error::invalid(
            op,
            format!("needs subgroups of 8 to 64 lanes, which {} does not offer", gpu.describe()),
        ));
    }
    Ok(kernel)
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

/// The batch chunks `(first, count)` whose x (`x` names it) and y (`y`) slices fit one binding.
fn chunks(limits: &wgpu::Limits, op: &str, spec: &Conv2d, x: &str, y: &str) -> Result<Vec<(usize, usize)>> {
    let (p, q) = spec.out_hw();
    batch_chunks(
        limits,
        op,
        spec.n,
        &[(x, (spec.c * spec.h * spec.w * 4) as u64), (y, (spec.k * p * q * 4) as u64)],
    )
}

/// The number of outputs per invocation along a row of `cols` pixels (at most `max`) that
/// minimises the loads per row: `ceil(cols / tp)` tiles, each loading `span(tp)` inputs
/// plus `per_tile` weights.
fn row_tile(cols: usize, max: usize, span: impl Fn(usize) -> usize, per_tile: usize) -> usize {
    (1..=max.min(cols.max(1)))
        .min_by_key(|&tp| (cols.div_ceil(tp) * (span(tp) + per_tile), usize::MAX - tp))
        .unwrap_or(1)
}

/// Checks that a bias tensor (or its gradient; `what` names it) is given iff the conv has a
/// bias, and that it is `[K]`.
fn check_bias(op: &str, what: &str, spec: &Conv2d, b: Option<&GpuTensor>) -> Result<()> {
    match (spec.bias, b) {
        (true, Some(b)) => crate::ops::check_shape(op, what, b, &[spec.k]),
        (false, None) => Ok(()),
        (true, None) => Err(Error::invalid(
            op,
            format!("the conv has a bias (spec.bias) but no {what} tensor was given"),
        )),
        (false, Some(_)) => Err(Error::invalid(
            op,
            format!("a {what} tensor was given but the conv has none (spec.bias = false)"),
        )),
    }
}

/// The bias binding: the bias, or (without one) a 1-element placeholder the shader never
/// reads, kept alive in `placeholder`.
fn bias_arg<'a>(gpu: &Gpu, op: &str, spec: &Conv2d, b: Option<&'a GpuTensor>, placeholder: &'a mut Option<GpuTensor>) -> Result<Arg<'a>> {
    check_bias(op, "bias", spec, b)?;
    match b {
        Some(b) => Ok(b.into()),
        None => Ok((&*placeholder.insert(GpuTensor::zeros(gpu, "no bias", &[1])?)).into()),
    }
}
