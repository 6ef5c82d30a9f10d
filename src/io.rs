//! Tensors on the host and the files that hold them: safetensors files (weights, checkpoints,
//! the inputs and outputs of `nfnet forward`) read into [`HostTensor`]s, and written atomically
//! ([`write_atomic`]: a temporary file, then a rename), so that a crash never leaves a torn file.

use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A tensor read from a file: f32 values (converted from f16, bf16, f64) or i64 (labels).
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// One tensor of a safetensors file, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

impl HostTensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> HostTensor {
        HostTensor {
            shape: shape.to_vec(),
            data: HostData::F32(data),
        }
    }

    pub fn i64(shape: &[usize], data: Vec<i64>) -> HostTensor {
        HostTensor {
            shape: shape.to_vec(),
            data: HostData::I64(data),
        }
    }

    /// The values as f32, or an error naming the tensor if it holds integers.
    pub fn as_f32(&self, name: &str) -> Result<&[f32]> {
        match &self.data {
            HostData::F32(v) => Ok(v),
            HostData::I64(_) => Err(Error::invalid("tensor", format!("{name} holds integers, expected f32 values"))),
        }
    }
}

fn format_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads every tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    read_safetensors_with_metadata(path).map(|(t, _)| t)
}

/// Reads every tensor of a safetensors file and its string metadata.
pub fn read_safetensors_with_metadata(path: &Path) -> Result<(BTreeMap<String, HostTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        error: source,
    })?;
    parse_safetensors(&bytes, path)
}

/// Reads every tensor of a safetensors file already in memory (a browser's `fetch`, an
/// embedded asset); `source` names it in errors.
pub fn read_safetensors_bytes(bytes: &[u8], source: &str) -> Result<BTreeMap<String, HostTensor>> {
    parse_safetensors(bytes, Path::new(source)).map(|(t, _)| t)
}

/// [`read_safetensors_bytes`] with the file's string metadata.
pub fn read_safetensors_bytes_with_metadata(bytes: &[u8], source: &str) -> Result<(BTreeMap<String, HostTensor>, HashMap<String, String>)> {
    parse_safetensors(bytes, Path::new(source))
}

/// The tensors and string metadata of safetensors `bytes`, errors naming `path`.
fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<(BTreeMap<String, HostTensor>, HashMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format_error(path, format!("not a valid safetensors file: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(|e| format_error(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => HostData::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
            Dtype::F64 => HostData::F32(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
            ),
            Dtype::F16 => HostData::F32(
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => HostData::F32(
                raw.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::I64 => HostData::I64(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect(),
            ),
            Dtype::I32 => HostData::I64(
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect(),
            ),
            other => {
                return Err(format_error(
                    path,
                    format!("tensor {name} has dtype {other:?}; expected f32, f16, bf16, f64, i64 or i32"),
                ))
            }
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

/// How many of `values` are NaN or infinite and where the first is, or `None` when all are
/// finite numbers.
pub fn non_finite(values: &[f32]) -> Option<String> {
    let first = values.iter().position(|v| !v.is_finite())?;
    let bad = values[first..].iter().filter(|v| !v.is_finite()).count();
    Some(format!(
        "{bad} of {} values are NaN or infinite (the first at index {first}: {})",
        values.len(),
        values[first]
    ))
}

/// An error unless every value of tensor `name` of `file` is a finite number: weights or
/// images holding a NaN or an infinity would only spread it through every output.
pub fn check_finite(file: &str, name: &str, values: &[f32]) -> Result<()> {
    match non_finite(values) {
        None => Ok(()),
        Some(found) => Err(Error::NotFinite {
            what: format!("{file}: {name}"),
            message: format!("{found}; expected finite numbers"),
        }),
    }
}

/// Writes tensors to a safetensors file atomically: a temporary file beside it, then a rename,
/// so a crash never leaves a truncated file under the final name.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>, metadata: Option<HashMap<String, String>>) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, bytes): (Dtype, &[u8]) = match &t.data {
                HostData::F32(v) => (Dtype::F32, bytemuck::cast_slice(v)),
                HostData::I64(v) => (Dtype::I64, bytemuck::cast_slice(v)),
            };
            safetensors::tensor::TensorView::new(dtype, t.shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| format_error(path, format!("{name}: {e}")))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, metadata).map_err(|e| format_error(path, e))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file and a rename (atomic on POSIX and Windows):
/// a crash at any moment leaves either the old file or the new one, never a torn one.
///
/// For fault-injection tests, `NFNET_TEST_WRITE_PAUSE_MS` pauses halfway through writing the
/// temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.display().to_string(),
        error: source,
    };
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        f.write_all(head).map_err(io)?;
        if let Some(ms) = std::env::var("NFNET_TEST_WRITE_PAUSE_MS").ok().and_then(|v| v.parse().ok()) {
            f.flush().map_err(io)?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        f.write_all(tail).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}
