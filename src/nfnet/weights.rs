//! Weights in timm's safetensors layout: seeded initialisation, loading with a full check of
//! names and shapes, and atomic saving.
//!
//! Names and layouts are timm's (`../shared/reference/NFNET.md` section 10): convs OIHW, gains
//! `(O,1,1,1)`, `skipinit_gain` a scalar `()`, SE projections `(O,I,1,1)`, `head.fc.weight`
//! `(classes, features)`. Loading lists every missing, unexpected and mis-shaped tensor in one
//! error; with `new_head` a classifier of another class count is left out and freshly
//! initialised instead (fine-tuning).

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use crate::graph::{Graph, Init, Role};
use rand::{Rng, SeedableRng};
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
            HostData::I64(_) => Err(Error::invalid("weights", format!("{name} holds integers, expected floating point"))),
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
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format_error(path, format!("not a valid safetensors file: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).map_err(|e| format_error(path, format!("not a valid safetensors file: {e}")))?;
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

/// A seeded normal draw (Box-Muller).
pub fn normal(rng: &mut rand::rngs::StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The reference initial values of one parameter (each parameter has its own stream, seeded by
/// `seed` and its name, so adding a layer does not change the others).
pub fn init_values(name: &str, shape: &[usize], init: Init, seed: u64) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    let stream = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ stream);
    match init {
        Init::Const(v) => vec![v; numel],
        Init::Normal(std) => (0..numel).map(|_| (normal(&mut rng) * std as f64) as f32).collect(),
        Init::FanIn => {
            let fan_in = numel / shape.first().copied().unwrap_or(1).max(1);
            let std = 1.0 / (fan_in.max(1) as f64).sqrt();
            (0..numel).map(|_| (normal(&mut rng) * std) as f32).collect()
        }
    }
}

/// Sets every parameter of `store` to its reference initial value.
pub fn init(gpu: &Gpu, graph: &Graph, store: &ParamStore, seed: u64) -> Result<()> {
    for (_, def, info) in graph.params() {
        let t = store
            .get(&def.name)
            .ok_or_else(|| Error::invalid("init", format!("the parameter store has no {}", def.name)))?;
        t.write_f32(gpu, &init_values(&def.name, &def.shape, info.init, seed))?;
    }
    Ok(())
}

/// What `load` did beyond copying every tensor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Classifier tensors of another class count, left at their fresh initialisation.
    pub reinitialised: Vec<String>,
}

/// Loads `tensors` (a timm state dict) into `store`, checking every name and shape first. With
/// `new_head`, classifier tensors of another shape are initialised with `seed` instead.
pub fn load(
    gpu: &Gpu,
    graph: &Graph,
    store: &ParamStore,
    tensors: &BTreeMap<String, HostTensor>,
    source: &str,
    new_head: bool,
    seed: u64,
) -> Result<LoadReport> {
    let (mut missing, mut misshaped, mut report) = (Vec::new(), Vec::new(), LoadReport::default());
    let mut plan = Vec::new();
    for (_, def, info) in graph.params() {
        match tensors.get(&def.name) {
            None if new_head && info.head => report.reinitialised.push(def.name.clone()),
            None => missing.push(def.name.clone()),
            Some(t) if t.shape != def.shape => {
                if new_head && info.head {
                    report.reinitialised.push(def.name.clone());
                } else {
                    misshaped.push(format!("{} (expected {:?}, got {:?})", def.name, def.shape, t.shape));
                }
            }
            Some(t) => match t.as_f32(&def.name) {
                Ok(v) => plan.push((def.name.clone(), v)),
                Err(_) => misshaped.push(format!("{} (expected f32 values, got integers)", def.name)),
            },
        }
    }
    let names: std::collections::HashSet<&str> = graph.params().map(|(_, d, _)| d.name.as_str()).collect();
    let unexpected: Vec<String> = tensors.keys().filter(|k| !names.contains(k.as_str())).cloned().collect();
    if !missing.is_empty() || !unexpected.is_empty() || !misshaped.is_empty() {
        return Err(Error::Weights {
            file: source.into(),
            missing,
            unexpected,
            misshaped,
        });
    }
    for (name, values) in plan {
        store.get(&name).expect("checked against the graph").write_f32(gpu, values)?;
    }
    for name in &report.reinitialised {
        let (_, def, info) = graph.params().find(|(_, d, _)| &d.name == name).expect("a parameter of the graph");
        store
            .get(name)
            .expect("in the store")
            .write_f32(gpu, &init_values(name, &def.shape, info.init, seed))?;
    }
    Ok(report)
}

/// Every parameter of `store`, read back, by name.
pub fn read_all(gpu: &Gpu, store: &ParamStore) -> Result<BTreeMap<String, HostTensor>> {
    store
        .iter()
        .map(|(name, t)| Ok((name.to_string(), HostTensor::f32(t.shape(), t.read_f32(gpu)?))))
        .collect()
}

/// The parameters of a graph as `(name, shape)`, for counts and listings.
pub fn param_shapes(graph: &Graph) -> Vec<(String, Vec<usize>)> {
    graph
        .tensors
        .iter()
        .filter(|t| matches!(t.role, Role::Param(_)))
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect()
}
