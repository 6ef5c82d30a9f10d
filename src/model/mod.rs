//! The NFNet model family: configs ([`config`]: the built-in variants, JSON files, and each
//! block's derived shape), the graph builder ([`builder`]: a config to a forward graph with
//! timm's parameter names), weights in timm's layout ([`weights`]), the one recipe for a
//! training step and an inference pass ([`recipe`]), the checkpoint file ([`checkpoint`]), the
//! parity run of `nfnet forward` ([`forward`]), and the layer table of `nfnet info`
//! ([`describe`](mod@describe)).

pub mod builder;
pub mod checkpoint;
pub mod config;
pub mod describe;
pub mod forward;
pub mod recipe;
pub mod weights;

pub use builder::{build, Mode, Model};
pub use config::ModelConfig;
pub use describe::describe;
pub use recipe::{InferencePlan, TrainingPlan, TrainingSetup};
pub use weights::Weights;
