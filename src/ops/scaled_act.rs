//! `scaled_act`: NFNet's gamma-scaled activations, `y = gamma * act(x)`, elementwise.
//!
//! ```text
//! x [any]   y [same]        y = gamma * act(x)
//! dx (+)= dy * gamma * act'(x)
//! ```
//! `gamma` is the reference constant of the activation ([`Activation::nfnet_gamma`]) so that a
//! unit Gaussian input gives unit-variance output; NFNet blocks also fold the block's
//! `beta = 1/expected_std` into it (`gamma * beta`), and SE's inner ReLU uses gamma = 1.
//! GELU comes in timm's exact (erf) form and DeepMind's tanh approximation (jax.nn.gelu's default).

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Kernel, Launch};
use crate::ops::{check_same, chunked_specialized};

/// The activation function inside the scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Identity,
    Relu,
    /// `x * Phi(x)`, exact (timm, `F.gelu`).
    Gelu,
    /// `0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))` (DeepMind, `jax.nn.gelu`).
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
}

impl Activation {
    /// Every activation.
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
    ];

    /// The shader's code for the activation (common/activation.wgsl): the `ACT` override
    /// constant of `scaled_act_*`.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
            Activation::GeluTanh => 3,
            Activation::Silu => 4,
        }
    }

    /// The reference gamma (DeepMind `base.py`, timm `_nonlin_gamma`), verbatim: it makes
    /// `gamma * act(z)` unit-variance for `z ~ N(0, 1)`, as the pretrained weights expect.
    pub fn nfnet_gamma(self) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => 1.713_958_859_443_664_6,
            Activation::Gelu | Activation::GeluTanh => 1.701_504_349_708_557_1,
            Activation::Silu => 1.788_129_329_681_396_5,
        }
    }
}

/// One activation and its scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaledAct {
    pub act: Activation,
    pub gamma: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    gamma: f32,
    accumulate: u32,
    _pad: u32,
}

/// Runs `kernel` (one of the two passes) once per element of `tensors`, the activation its
/// pipeline constant `ACT`: each pipeline is compiled for one function, with no branch over
/// the others (as the conv packings' prologues are).
fn launch(gpu: &Gpu, kernel: Kernel, spec: &ScaledAct, tensors: &[&GpuTensor], accumulate: bool) -> Result<Launch> {
    let per: Vec<(&GpuTensor, usize)> = tensors.iter().map(|&t| (t, 1)).collect();
    let act = [("ACT", spec.act.code() as f64)];
    chunked_specialized(gpu, kernel, &act, tensors[0].numel(), &per, 1, 256, |_, n| Params {
        len: n as u32,
        gamma: spec.gamma,
        accumulate: accumulate as u32,
        _pad: 0,
    })
}

/// `y = gamma * act(x)`.
pub fn forward(gpu: &Gpu, spec: &ScaledAct, x: &GpuTensor, y: &GpuTensor) -> Result<Launch> {
    let kernel = Kernel::ScaledActForward;
    check_same(kernel.name(), "y", x, y)?;
    launch(gpu, kernel, spec, &[x, y], false)
}

/// `dx (+)= dy * gamma * act'(x)`.
pub fn backward(gpu: &Gpu, spec: &ScaledAct, x: &GpuTensor, dy: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<Launch> {
    let kernel = Kernel::ScaledActBackward;
    check_same(kernel.name(), "dy", x, dy)?;
    check_same(kernel.name(), "dx", x, dx)?;
    launch(gpu, kernel, spec, &[x, dy, dx], accumulate)
}

/// The f64 reference.
pub mod cpu {
    use super::{Activation, ScaledAct};
    use std::f64::consts::PI;

    fn gelu_tanh_u(x: f64) -> f64 {
        (2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    pub fn act(a: Activation, x: f64) -> f64 {
        match a {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt())),
            Activation::GeluTanh => 0.5 * x * (1.0 + gelu_tanh_u(x).tanh()),
            Activation::Silu => x * sigmoid(x),
        }
    }

    pub fn act_grad(a: Activation, x: f64) -> f64 {
        match a {
            Activation::Identity => 1.0,
            Activation::Relu => (x > 0.0) as u8 as f64,
            Activation::Gelu => 0.5 * (1.0 + libm::erf(x / 2f64.sqrt())) + x * (-0.5 * x * x).exp() / (2.0 * PI).sqrt(),
            Activation::GeluTanh => {
                let t = gelu_tanh_u(x).tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (2.0 / PI).sqrt() * (1.0 + 3.0 * 0.044715 * x * x)
            }
            Activation::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
        }
    }

    pub fn forward(spec: &ScaledAct, x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| spec.gamma as f64 * act(spec.act, v)).collect()
    }

    pub fn backward(spec: &ScaledAct, x: &[f64], dy: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(dy)
            .map(|(&v, &d)| d * spec.gamma as f64 * act_grad(spec.act, v))
            .collect()
    }
}
