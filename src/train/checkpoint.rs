//! Checkpoints: one safetensors file with everything a run needs to continue bit for bit.
//!
//! Tensors: every parameter under its timm name (so a checkpoint is also a weights file for
//! `nfnet forward --weights`), `momentum.<name>`, and `ema.<name>` when the EMA is on. Metadata
//! (JSON strings): the format, the training options (model config included), the state (step,
//! epoch, position in the epoch, best top-1) and the class names. The data order and every
//! random draw are functions of the seed, epoch and position, so they need no saved state.
//! Written atomically (`weights::write_atomic`): a crash leaves the previous checkpoint.

use super::{TrainOptions, TrainState, Trainer};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nfnet::weights::{self, HostTensor};
use crate::nfnet::NfnetConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const FORMAT: &str = "nfnet-checkpoint-1";

/// A checkpoint read from disk.
pub struct Checkpoint {
    pub options: TrainOptions,
    pub state: TrainState,
    pub classes: Vec<String>,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Writes the trainer's tensors and state to `path`.
pub fn save(trainer: &Trainer, path: &Path) -> Result<()> {
    let mut tensors = BTreeMap::new();
    for (name, t) in trainer.state_tensors() {
        tensors.insert(name, HostTensor::f32(t.shape(), t.read_f32(trainer.gpu)?));
    }
    let json = |v: serde_json::Result<String>| v.expect("training state always serializes");
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("options".to_string(), json(serde_json::to_string(&trainer.options))),
        ("state".to_string(), json(serde_json::to_string(&trainer.state))),
        ("classes".to_string(), json(serde_json::to_string(&trainer.classes))),
    ]);
    weights::write_safetensors(path, &tensors, Some(metadata))
}

/// Reads a checkpoint (any safetensors file with nfnet's checkpoint metadata).
pub fn read(path: &Path) -> Result<Checkpoint> {
    let (tensors, meta) = weights::read_safetensors_with_metadata(path)?;
    let bad = |m: String| Error::Format {
        path: path.display().to_string(),
        message: m,
    };
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not an nfnet checkpoint (no `format: {FORMAT}` metadata); a plain weights file goes to --init or --weights"
        )));
    }
    let field = |key: &str| meta.get(key).ok_or_else(|| bad(format!("the checkpoint has no `{key}` metadata")));
    let options = serde_json::from_str(field("options")?).map_err(|e| bad(format!("options: {e}")))?;
    let state = serde_json::from_str(field("state")?).map_err(|e| bad(format!("state: {e}")))?;
    let classes = serde_json::from_str(field("classes")?).map_err(|e| bad(format!("classes: {e}")))?;
    Ok(Checkpoint {
        options,
        state,
        classes,
        tensors,
    })
}

/// A trainer that continues `path` on `data`. With `model`, the checkpoint must be of that
/// model; with `epochs`, the run is extended (or shortened) to that many epochs.
pub fn resume<'g>(gpu: &'g Gpu, path: &Path, data: &Dataset, model: Option<&NfnetConfig>, epochs: Option<usize>) -> Result<Trainer<'g>> {
    let ckpt = read(path)?;
    if let Some(m) = model {
        let mut wanted = m.clone();
        wanted.num_classes = ckpt.options.model.num_classes;
        if wanted != ckpt.options.model {
            return Err(Error::invalid(
                "resume",
                format!(
                    "{} is a checkpoint of model {:?}, not of the requested model {:?}; leave --model out to continue it",
                    path.display(),
                    ckpt.options.model.name,
                    m.name
                ),
            ));
        }
    }
    if ckpt.classes != data.classes() {
        return Err(Error::invalid(
            "resume",
            format!(
                "{} was trained on classes {:?}, the data has {:?}",
                path.display(),
                ckpt.classes,
                data.classes()
            ),
        ));
    }
    if ckpt.state.train_images != 0 && ckpt.state.train_images != data.train.len() {
        return Err(Error::invalid(
            "resume",
            format!(
                "{} was trained on {} images, the data has {}; resume on the same data",
                path.display(),
                ckpt.state.train_images,
                data.train.len()
            ),
        ));
    }
    let mut options = ckpt.options.clone();
    if let Some(e) = epochs {
        options.epochs = e;
    }
    let mut trainer = Trainer::build(gpu, options, data)?;
    let source = path.display().to_string();
    for (name, t) in trainer.state_tensors() {
        let host = ckpt.tensors.get(&name).ok_or_else(|| Error::Weights {
            file: source.clone(),
            missing: vec![name.clone()],
            unexpected: vec![],
            misshaped: vec![],
        })?;
        if host.shape != t.shape() {
            let m = format!("{name} (expected {:?}, got {:?})", t.shape(), host.shape);
            return Err(Error::Weights {
                file: source,
                missing: vec![],
                unexpected: vec![],
                misshaped: vec![m],
            });
        }
        t.write_f32(gpu, host.as_f32(&name)?)?;
    }
    trainer.state = ckpt.state;
    Ok(trainer)
}
