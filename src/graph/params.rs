//! The parameters of a model on the GPU, by name: one store is shared by the plans of a model
//! (a training step and the evaluation over the same weights).

use super::Graph;
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use std::collections::HashMap;

/// Parameters by name, shared by the plans of one model (training and evaluation).
pub struct ParamStore {
    tensors: Vec<(String, GpuTensor)>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// Zero-filled parameters for every `Role::Param` tensor of `graph`.
    pub fn for_graph(gpu: &Gpu, graph: &Graph) -> Result<ParamStore> {
        let mut store = ParamStore {
            tensors: Vec::new(),
            index: HashMap::new(),
        };
        for (_, def, _) in graph.params() {
            store.index.insert(def.name.clone(), store.tensors.len());
            store
                .tensors
                .push((def.name.clone(), GpuTensor::zeros(gpu, &def.name, &def.shape)?));
        }
        Ok(store)
    }

    pub fn get(&self, name: &str) -> Option<&GpuTensor> {
        self.index.get(name).map(|&i| &self.tensors[i].1)
    }

    /// `(name, tensor)` in graph order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GpuTensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// A store over existing tensors (the moving averages of a training plan, say).
    pub fn from_tensors(tensors: Vec<(String, GpuTensor)>) -> ParamStore {
        let index = tensors.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        ParamStore { tensors, index }
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}
