//! Weights in timm's layout: seeded initialisation, and loading with a full check of names and
//! shapes.
//!
//! Names and layouts are timm's `state_dict`'s: convs OIHW, gains `(O,1,1,1)`, `skipinit_gain` a
//! scalar `()`, SE projections `(O,I,1,1)`, `head.fc.weight` `(classes, features)`. Loading lists
//! every missing, unexpected and mis-shaped tensor in one error; with [`Head::Fresh`] a
//! classifier of another class count is left out and freshly initialised instead (fine-tuning).

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Init, ParamStore};
use crate::io::{check_finite, read_safetensors, HostTensor};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

/// Named tensors (a timm `state_dict`) and where they came from, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub source: String,
    pub tensors: BTreeMap<String, HostTensor>,
}

impl Weights {
    /// The tensors of a safetensors file.
    pub fn read(path: &Path) -> Result<Weights> {
        Ok(Weights {
            source: path.display().to_string(),
            tensors: read_safetensors(path)?,
        })
    }

    /// Every parameter of `store`, read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_store(gpu: &Gpu, store: &ParamStore, source: &str) -> Result<Weights> {
        pollster::block_on(Weights::from_store_async(gpu, store, source))
    }

    /// [`Weights::from_store`] without blocking (in a browser).
    pub async fn from_store_async(gpu: &Gpu, store: &ParamStore, source: &str) -> Result<Weights> {
        let mut tensors = BTreeMap::new();
        for (name, t) in store.iter() {
            tensors.insert(name.to_string(), HostTensor::f32(t.shape(), t.read_f32_async(gpu).await?));
        }
        Ok(Weights {
            source: source.into(),
            tensors,
        })
    }
}

/// What [`load`] does with a classifier whose shape differs from the model's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Refuse it, with every other problem, as a weights error.
    Strict,
    /// Leave it out and initialise a fresh one from the seed (fine-tuning on other classes).
    Fresh(u64),
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

/// Loads `weights` into `store` (the parameters of `graph`), checking every name and shape
/// first; a classifier of another shape is refused or replaced as `head` says.
pub fn load(gpu: &Gpu, graph: &Graph, store: &ParamStore, weights: &Weights, head: Head) -> Result<LoadReport> {
    let (plan, report) = check(graph, weights, head)?;
    for (name, values) in plan {
        store.get(&name).expect("checked against the graph").write_f32(gpu, values)?;
    }
    let Head::Fresh(seed) = head else { return Ok(report) };
    for name in &report.reinitialised {
        let (_, def, info) = graph.params().find(|(_, d, _)| &d.name == name).expect("a parameter of the graph");
        store
            .get(name)
            .expect("in the store")
            .write_f32(gpu, &init_values(name, &def.shape, info.init, seed))?;
    }
    Ok(report)
}

/// What [`load`] checks before it writes anything: every parameter of `graph` in `weights`
/// with its shape, as f32, finite, and nothing else in the file (a classifier of another shape
/// refused or reported as `head` says). The values to write, by name, and the report.
pub fn check<'w>(graph: &Graph, weights: &'w Weights, head: Head) -> Result<(Vec<(String, &'w [f32])>, LoadReport)> {
    let (tensors, new_head) = (&weights.tensors, matches!(head, Head::Fresh(_)));
    let (mut missing, mut misshaped, mut not_f32, mut report) = (Vec::new(), Vec::new(), Vec::new(), LoadReport::default());
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
                Err(_) => not_f32.push(def.name.clone()),
            },
        }
    }
    let names: std::collections::HashSet<&str> = graph.params().map(|(_, d, _)| d.name.as_str()).collect();
    let unexpected: Vec<String> = tensors.keys().filter(|k| !names.contains(k.as_str())).cloned().collect();
    if !missing.is_empty() || !unexpected.is_empty() || !misshaped.is_empty() || !not_f32.is_empty() {
        return Err(Error::Weights {
            file: weights.source.clone(),
            missing,
            unexpected,
            misshaped,
            not_f32,
        });
    }
    for (name, values) in &plan {
        check_finite(&weights.source, name, values)?;
    }
    Ok((plan, report))
}
