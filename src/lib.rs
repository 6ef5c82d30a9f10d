//! # nfnet
//!
//! Normalizer-Free ResNets (Brock et al. 2021) trained and run on any GPU that wgpu reaches:
//! Vulkan, Metal, DX12 (and GL where it serves), with hand-written WGSL compute kernels.
//!
//! ## A tour
//!
//! * [`gpu`] opens the adapter ([`gpu::Gpu`]), owns the pipeline cache, and turns wgpu
//!   validation errors into [`Error`]s. [`gpu::GpuTensor`] is a labelled f32 buffer with a shape.
//! * [`ops`] is the kernel library. Each op module states its maths and shapes, holds the f64
//!   CPU reference that defines it (`ops::<op>::cpu`), and launchers that check shapes and
//!   return a [`gpu::Launch`]: pipelines and bind groups built once, replayed at every step.
//!   A run is one command buffer with one compute pass ([`gpu::Gpu::run`]).
//! * [`graph`] describes a computation as tensors and nodes. [`nfnet::build`] writes an NFNet's
//!   forward graph from its [`nfnet::NfnetConfig`]; [`graph::autodiff`] appends the backward
//!   nodes; [`graph::optim`] the AGC and SGD updates; [`graph::plan::Plan`] compiles it all once
//!   (shapes checked, buffers shared by liveness, bind groups built) and replays it each step
//!   with one submit.
//! * [`nfnet::weights`] reads and writes timm's safetensors weights.
//!
//! ## Conventions
//!
//! Dimension letters, used in every doc comment and shader: N batch, C input channels, H W
//! input height and width, K output channels, G groups, R S kernel height and width, P Q output
//! height and width. Activations are NCHW, conv weights OIHW (K, C/G, R, S), all f32.
//!
//! Every reduction is deterministic: partial sums then a fixed-order aggregate, never float
//! atomics, so the same inputs on the same adapter give bitwise the same outputs.

pub mod bench;
pub mod classify;
pub mod data;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod nfnet;
pub mod ops;
#[doc(hidden)]
pub mod testing;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, GpuTensor};
