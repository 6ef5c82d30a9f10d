//! `dropout`: dropout and stochastic depth (drop path) from a counter-based RNG.
//!
//! ```text
//! x [len]   y [len]          y = x * mask * scale,  dx = dy * mask * scale (the same kernel)
//! mask unit of element e:    m = pass * units + e / per_mask   (per_mask 1: dropout; C*H*W:
//!                            drop path, one per sample; units = len / per_mask)
//! mask[m] = philox4x32_10(counter (m, stream, step, 0), key seed).x / 2^32 < keep   (top 24 bits)
//! scale   = 1/keep (inverted dropout; timm's drop path) or 1 (DeepMind's drop path)
//! ```
//! The mask is a pure function of (seed, stream, step, unit), so the backward recomputes it
//! instead of storing it, and a run is reproducible from its seed. `stream` separates layers;
//! the step and the pass come from the step info. `m` numbers the units of the step's global
//! batch (the pass is the micro-batch's place among all ranks' passes), so a batch split into
//! micro-batches or over data-parallel ranks draws the masks it would draw whole.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_same, check_shape, chunked, step_info};

/// Which elements share a mask value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Independent per element (dropout).
    Element,
    /// One value per sample of `per_sample` elements (stochastic depth / drop path).
    Sample { per_sample: usize },
}

/// One dropout or drop-path application.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of keeping a unit, in (0, 1].
    pub keep: f32,
    /// Divide kept units by `keep` (inverted dropout, timm) or not (DeepMind's drop path).
    pub rescale: bool,
    pub granularity: Granularity,
    pub seed: u64,
    /// Separates layers that share a seed.
    pub stream: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    per_mask: u32,
    index_base: u32,
    stream: u32,
    keep: f32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    units: u32,
    _pad: [u32; 3],
}

impl Dropout {
    fn per_mask(&self) -> usize {
        match self.granularity {
            Granularity::Element => 1,
            Granularity::Sample { per_sample } => per_sample,
        }
    }

    fn scale(&self) -> f32 {
        if self.rescale {
            1.0 / self.keep
        } else {
            1.0
        }
    }
}

/// `y = x * mask * scale` for the step and pass in `info`; for the backward pass
/// `x = dy`, `y = dx`.
pub fn apply(gpu: &Gpu, spec: &Dropout, info: &GpuTensor, x: &GpuTensor, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::DropoutApply;
    let op = kernel.name();
    if !(spec.keep > 0.0 && spec.keep <= 1.0) {
        return Err(Error::invalid(op, format!("keep probability must be in (0, 1], got {}", spec.keep)));
    }
    check_same(op, "y", x, y)?;
    let per_mask = spec.per_mask();
    if per_mask == 0 || x.numel() % per_mask != 0 {
        return Err(Error::shape(
            op,
            "elements per sample",
            format!("a divisor of {}", x.numel()),
            per_mask,
        ));
    }
    check_shape(op, "step info", info, &step_info::SHAPE)?;
    chunked(gpu, kernel, x.numel(), &[(info, 0), (x, 1), (y, 1)], 1, 256, |first, n| Params {
        len: n as u32,
        per_mask: per_mask as u32,
        index_base: first as u32,
        stream: spec.stream,
        keep: spec.keep,
        scale: spec.scale(),
        seed_lo: spec.seed as u32,
        seed_hi: (spec.seed >> 32) as u32,
        units: (x.numel() / per_mask) as u32,
        _pad: [0; 3],
    })
}

/// The reference (bit-exact for the mask, f64 for the values).
pub mod cpu {
    use super::Dropout;

    /// Philox4x32-10 (Salmon et al. 2011), as `shaders/common/philox.wgsl`.
    pub fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
        let (mut c, mut k) = (counter, key);
        for _ in 0..10 {
            let p0 = 0xD251_1F53u64 * c[0] as u64;
            let p1 = 0xCD9E_8D57u64 * c[2] as u64;
            c = [
                (p1 >> 32) as u32 ^ c[1] ^ k[0],
                p1 as u32,
                (p0 >> 32) as u32 ^ c[3] ^ k[1],
                p0 as u32,
            ];
            k = [k[0].wrapping_add(0x9E37_79B9), k[1].wrapping_add(0xBB67_AE85)];
        }
        c
    }

    /// Whether mask unit `m` (of the step's global batch) is kept at `step`.
    pub fn kept(spec: &Dropout, step: u32, m: u32) -> bool {
        let bits = philox([m, spec.stream, step, 0], [spec.seed as u32, (spec.seed >> 32) as u32])[0];
        ((bits >> 8) as f32 * (1.0 / 16_777_216.0)) < spec.keep
    }

    /// `x` is pass `pass` of the step (see [`super::step_info::StepInfo::pass_index`]).
    pub fn apply(spec: &Dropout, step: u32, pass: u32, x: &[f64]) -> Vec<f64> {
        let per = spec.per_mask();
        let (scale, units) = (spec.scale() as f64, (x.len() / per) as u32);
        x.iter()
            .enumerate()
            .map(|(e, v)| {
                if kept(spec, step, pass * units + (e / per) as u32) {
                    v * scale
                } else {
                    0.0
                }
            })
            .collect()
    }
}
