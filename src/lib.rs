//! # nfnet
//!
//! Normalizer-Free ResNets (Brock et al. 2021) trained and run on any GPU that wgpu reaches:
//! Vulkan, Metal, DX12 (and GL where it serves), with hand-written WGSL compute kernels.
//!
//! ## Embedding it
//!
//! Train a small NFNet for a few steps on the embedded dataset, then classify an image:
//!
//! ```
//! use nfnet::data::{self, DataSpec, OpenOptions};
//! use nfnet::{Gpu, ModelConfig, TrainOptions, Trainer, Tuner};
//!
//! # fn main() -> nfnet::Result<()> {
//! # // A developer's machine without any adapter has nothing to run this on (CI always has one).
//! # if nfnet::gpu::list_adapters().is_empty() && std::env::var_os("CI").is_none() { return Ok(()); }
//! let gpu = Gpu::new()?;
//! let tuner = Tuner::off(); // the default kernels; `Tuner::new(TuneOptions::default())` times them
//! let data = data::open(&DataSpec::new("synthetic:64:16"), &OpenOptions::default())?;
//! let options = TrainOptions {
//!     epochs: 1,
//!     batch_size: 16,
//!     ..TrainOptions::new(ModelConfig::load("nano")?)
//! };
//! let mut trainer = Trainer::new(&gpu, &tuner, options, &data)?;
//! trainer.train_epoch(&data, &mut |_event| {})?;
//!
//! let classifier = trainer.classifier()?;
//! let probabilities = classifier.classify(&[data.val.image(0)])?;
//! let (class, p) = nfnet::classify::top_k(&probabilities[0], 1)[0];
//! println!("{} ({:.0}%)", classifier.classes[class], 100.0 * p);
//! # assert_eq!(trainer.state.step, 4);
//! # assert!((probabilities[0].iter().sum::<f32>() - 1.0).abs() < 1e-4);
//! # Ok(())
//! # }
//! ```
//!
//! ## A tour, bottom up
//!
//! Each module uses only the ones above it in this list.
//!
//! * [`error`]: the one [`Error`] type; every error names what was wrong and what was expected.
//! * [`io`]: tensors on the host, safetensors files, atomic writes.
//! * [`data`]: labelled image sources (the embedded dataset, image folders, CIFAR-10) and the
//!   loader that augments and batches them on background threads.
//! * [`gpu`]: the context ([`Gpu`]: adapter, device, queue, pipeline cache, wgpu errors as
//!   [`Error`]s), tensors ([`GpuTensor`]), and [`gpu::Launch`]es: pipelines and bind groups
//!   built once, replayed as one command buffer with one compute pass.
//! * [`ops`]: the kernel library. Each op states its maths and shapes, holds the f64 CPU
//!   reference that defines it (`ops::<op>::cpu`), and launchers that check shapes and return
//!   a launch; choices such as a conv's register tile are arguments.
//! * [`tune`]: the [`Tuner`], which makes the choices that depend on the adapter by timing
//!   (each candidate checked bitwise against the default), within a budget, cached on disk.
//! * [`graph`]: a computation as tensors and nodes that speak maths; [`graph::autodiff`]
//!   appends the backward pass, [`graph::optim`] the AGC and SGD update, and
//!   [`graph::plan::Plan`] lowers it to the adapter (operand layouts), checks every shape,
//!   shares memory by liveness and compiles it once, to replay each step with one submit.
//! * [`model`]: the NFNet family ([`ModelConfig`]), its graph builder, timm's weights, the
//!   checkpoint file, and the one recipe for a training step and an inference pass.
//! * [`classify`]: inference for applications ([`Classifier`]) and evaluation.
//! * [`train`]: the training loop of the paper ([`Trainer`]), checkpoints, metrics.
//! * [`bench`](mod@bench): kernel and model benchmarks (`nfnet bench`).
//!
//! The `nfnet` binary parses its command line and calls these; the library never prints and
//! never exits: progress reaches the caller as events ([`train::Event`]).
//!
//! ## In a browser
//!
//! Without its default features (`cli`: the command line; `plot`: the training-curve PNG) the
//! library builds for `wasm32-unknown-unknown` and runs on the page's WebGPU adapter. There
//! nothing may block, so the core is async where a browser requires it: [`Gpu::request`],
//! [`GpuTensor::read_f32_async`], [`Trainer::train_epoch_async`],
//! [`Classifier::classify_async`], [`model::forward::forward_async`]; the blocking forms
//! (`Gpu::new`, `read_f32`, `train_epoch`, ...) wrap them natively and do not exist in the
//! wasm build. Files, checkpoints, tuning by timing and benchmarks are native only;
//! `examples/web/` is the demo page.
//!
//! ## Conventions
//!
//! Dimension letters, used in every doc comment and shader: N batch, C input channels, H W
//! input height and width, K output channels, G groups, R S kernel height and width, P Q output
//! height and width. Activations are NCHW, conv weights OIHW (K, C/G, R, S), all f32.
//!
//! Every reduction is deterministic: partial sums then a fixed-order aggregate, never float
//! atomics, so the same inputs on the same adapter give bitwise the same outputs.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod classify;
pub mod data;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod model;
pub mod ops;
pub mod train;
pub mod tune;

pub use classify::{Classifier, ClassifierOptions};
pub use data::{DataSpec, Dataset};
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, GpuTensor};
pub use model::ModelConfig;
pub use train::{TrainOptions, Trainer};
pub use tune::{TuneOptions, Tuner};
