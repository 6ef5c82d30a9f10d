//! The library's one error type.
//!
//! Every error names what was wrong and what was expected, so that a user can fix the input
//! without reading the source: shape errors carry the op, the argument, the expected and the
//! given value; limit errors carry the tensor, the bytes it needs and the adapter's limit.
//! wgpu validation errors never abort the process: the context captures them (see
//! [`crate::gpu::Gpu`]) and they come back as [`Error::Wgpu`].

use std::fmt;

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter at all: no GPU driver and no software device.
    #[error("no GPU adapter found. {hint}")]
    NoAdapter { hint: String },

    /// `NFNET_ADAPTER` (or the library option) matched none of the adapters.
    #[error("no adapter matches {selector:?}; the adapters are:\n{available}")]
    AdapterNotFound { selector: String, available: String },

    /// The adapter refused to open a device with the limits the engine needs.
    #[error("could not open a device on {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },

    /// A tensor or parameter has the wrong shape, or shapes do not fit together.
    #[error("{op}: {what}: expected {expected}, got {got}")]
    Shape {
        op: String,
        what: String,
        expected: String,
        got: String,
    },

    /// A size exceeds what the adapter allows (and cannot be split further).
    #[error("{op}: {what} needs {need} bytes, but the adapter's {limit} is {have} bytes")]
    Limit {
        op: String,
        what: String,
        need: u64,
        have: u64,
        limit: &'static str,
    },

    /// An argument that is not a shape: an unknown option, a negative rate, a bad label.
    #[error("{op}: {message}")]
    Invalid { op: String, message: String },

    /// A wgpu validation or out-of-memory error captured at run time.
    #[error("wgpu error during {context}: {message}")]
    Wgpu { context: String, message: String },

    /// Reading a buffer back from the GPU failed.
    #[error("reading {label} back from the GPU failed: {message}")]
    Readback { label: String, message: String },

    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },

    /// A file is not in the expected format (truncated, not safetensors, wrong dtype).
    #[error("{path}: {message}")]
    Format { path: String, message: String },

    /// Training diverged: a loss that is not a finite number.
    #[error("the training loss became {loss} at step {step}; training stopped (the last checkpoint, from before it, is kept)")]
    Diverged { step: u64, loss: f32 },

    /// Numbers that must be finite are not: a validation loss, weights about to be saved, an
    /// input or weights file. `what` names them, `message` says where and what happens now.
    #[error("{what}: {message}")]
    NotFinite { what: String, message: String },

    /// Data-parallel training: rank `rank` failed, left, or no longer agrees with rank 0.
    #[error("rank {rank}: {message}")]
    Rank { rank: usize, message: String },

    /// A weights file does not fit the model: every problem, listed at once.
    #[error("{}", weights_message(file, missing, unexpected, misshaped, not_f32))]
    Weights {
        file: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
        misshaped: Vec<String>,
        /// Tensors of the right name and shape that hold integers.
        not_f32: Vec<String>,
    },
}

fn weights_message(file: &str, missing: &[String], unexpected: &[String], misshaped: &[String], not_f32: &[String]) -> String {
    // The first few names of each list: a file of another model can miss hundreds.
    const SHOWN: usize = 6;
    let mut m = format!("{file} does not fit the model:");
    let lists = [
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped", misshaped),
        ("integer (expected f32)", not_f32),
    ];
    for (what, list) in lists {
        if !list.is_empty() {
            m += &format!("\n  {} {what} tensor(s): {}", list.len(), list[..list.len().min(SHOWN)].join(", "));
            if list.len() > SHOWN {
                m += &format!(", and {} more", list.len() - SHOWN);
            }
        }
    }
    if !missing.is_empty() && unexpected.len() >= missing.len() {
        m += "\n  (the file may hold another model's weights: check --model)";
    }
    m
}

impl Error {
    /// A shape error; `expected` and `got` are formatted with `Display`.
    pub fn shape(op: &str, what: &str, expected: impl fmt::Display, got: impl fmt::Display) -> Self {
        Error::Shape {
            op: op.into(),
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    /// An invalid-argument error.
    pub fn invalid(op: &str, message: impl fmt::Display) -> Self {
        Error::Invalid {
            op: op.into(),
            message: message.to_string(),
        }
    }
}
