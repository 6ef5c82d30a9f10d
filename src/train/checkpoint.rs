//! Training checkpoints: everything a run needs to continue bit for bit, in the checkpoint file
//! ([`crate::model::checkpoint`]): the parameters, momentum and moving averages, the options
//! (model config included), the state (step, epoch, position in the epoch, best top-1) and the
//! class names. The data order and every random draw are functions of the seed, epoch and
//! position, so they need no saved state.

#[cfg(not(target_arch = "wasm32"))]
use super::Trainer;
use super::{TrainOptions, TrainState};
use crate::error::Result;
use crate::io::HostTensor;
use crate::model::checkpoint::CheckpointFile;
use std::collections::BTreeMap;
use std::path::Path;

/// A training checkpoint read from disk.
pub struct Checkpoint {
    /// The path it was read from.
    pub source: String,
    pub options: TrainOptions,
    pub state: TrainState,
    pub classes: Vec<String>,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Writes the trainer's tensors and state to `path` (atomically: a failed write leaves the old
/// file). A tensor holding a NaN or an infinity is an error and nothing is written: a
/// checkpoint is always one a run can continue from.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(trainer: &Trainer, path: &Path) -> Result<()> {
    let mut tensors = BTreeMap::new();
    for (name, t) in trainer.state_tensors() {
        let values = t.read_f32(trainer.gpu)?;
        if let Some(found) = crate::io::non_finite(&values) {
            return Err(crate::error::Error::NotFinite {
                what: name,
                message: format!("{found}; {} was not written (the file there, if any, is unchanged)", path.display()),
            });
        }
        tensors.insert(name, HostTensor::f32(t.shape(), values));
    }
    let json = |v: serde_json::Result<String>| v.expect("training state always serializes");
    let fields = [
        ("options", json(serde_json::to_string(&trainer.options))),
        ("state", json(serde_json::to_string(&trainer.state))),
        ("classes", json(serde_json::to_string(&trainer.classes))),
    ];
    CheckpointFile::write(path, &tensors, &fields)
}

/// Reads a training checkpoint.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let file = CheckpointFile::read(path)?;
    Ok(Checkpoint {
        options: file.field("options")?,
        state: file.field("state")?,
        classes: file.classes()?,
        source: file.source,
        tensors: file.tensors,
    })
}
