//! The checkpoint file: one safetensors file whose tensors are every parameter under its timm
//! name (so a checkpoint is also a weights file), `momentum.<name>`, and `ema.<name>` when the
//! run keeps a moving average; and whose metadata are JSON strings: the format, the training
//! options (the model config, resolution and evaluation crop among them), the training state
//! and the class names. Training reads and writes all of it; inference reads what it needs.
//! Written atomically: a crash leaves the previous checkpoint.

use super::weights::Weights;
use crate::error::{Error, Result};
use crate::io::{read_safetensors_bytes_with_metadata, read_safetensors_with_metadata, write_safetensors, HostTensor};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The format tag every checkpoint carries.
pub const FORMAT: &str = "nfnet-checkpoint-1";

/// A checkpoint as stored; see the module docs.
pub struct CheckpointFile {
    /// The path it was read from.
    pub source: String,
    pub tensors: BTreeMap<String, HostTensor>,
    metadata: HashMap<String, String>,
}

impl CheckpointFile {
    /// Reads a checkpoint (any safetensors file with nfnet's checkpoint metadata).
    pub fn read(path: &Path) -> Result<CheckpointFile> {
        let (tensors, metadata) = read_safetensors_with_metadata(path)?;
        CheckpointFile::new(path.display().to_string(), tensors, metadata)
    }

    /// A checkpoint already in memory; `source` names it in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<CheckpointFile> {
        let (tensors, metadata) = read_safetensors_bytes_with_metadata(bytes, source)?;
        CheckpointFile::new(source.into(), tensors, metadata)
    }

    fn new(source: String, tensors: BTreeMap<String, HostTensor>, metadata: HashMap<String, String>) -> Result<CheckpointFile> {
        let file = CheckpointFile { source, tensors, metadata };
        if file.metadata.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(file.error(format!(
                "not an nfnet checkpoint (no `format: {FORMAT}` metadata); a plain weights file is loaded as weights"
            )));
        }
        Ok(file)
    }

    /// Writes `tensors` and the JSON `fields` (key, value) to `path`, atomically.
    pub fn write(path: &Path, tensors: &BTreeMap<String, HostTensor>, fields: &[(&str, String)]) -> Result<()> {
        let mut metadata: HashMap<String, String> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        metadata.insert("format".into(), FORMAT.into());
        write_safetensors(path, tensors, Some(metadata))
    }

    /// The metadata field `key`, parsed from JSON.
    pub fn field<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let text = (self.metadata.get(key)).ok_or_else(|| self.error(format!("the checkpoint has no `{key}` metadata")))?;
        serde_json::from_str(text).map_err(|e| self.error(format!("{key}: {e}")))
    }

    /// The model's parameters as a weights file under their timm names: the moving average
    /// (`ema.<name>`) with `ema`, else the trained values; momentum left out.
    pub fn weights(&self, ema: bool) -> Weights {
        let tensors = (self.tensors.iter())
            .filter_map(|(name, t)| match (ema, name.strip_prefix("ema.")) {
                (true, Some(param)) => Some((param.to_string(), t.clone())),
                (false, _) if !name.starts_with("momentum.") && !name.starts_with("ema.") => Some((name.clone(), t.clone())),
                _ => None,
            })
            .collect();
        Weights {
            source: self.source.clone(),
            tensors,
        }
    }

    /// The class names, in label order.
    pub fn classes(&self) -> Result<Vec<String>> {
        self.field("classes")
    }

    fn error(&self, message: String) -> Error {
        Error::Format {
            path: self.source.clone(),
            message,
        }
    }
}
