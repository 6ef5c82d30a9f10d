//! Memory: where each tensor of a lowered graph lives, decided without a GPU (so `nfnet info`
//! can print it). Inputs, labels, parameters and their optimizer state, kept outputs and
//! prepared weights get buffers of their own; every other tensor lives from the first node
//! that touches it to the last, and tensors whose lifetimes do not overlap share memory.

use super::lower::lower;
use super::PlanOptions;
use crate::gpu::TEXTURE_WIDTH;
use crate::graph::Op;
use crate::graph::{Graph, Role, TensorId};
use crate::ops::grouped_conv::Storage;

/// Where each tensor's memory comes from, decided without a GPU (also for `nfnet info`).
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Nodes of the prepare phase and of the step, in order.
    pub prepare: Vec<usize>,
    pub step: Vec<usize>,
    /// Tensors with a buffer of their own.
    pub dedicated: Vec<bool>,
    /// The shared buffer of every other tensor that some node touches.
    pub slot: Vec<Option<usize>>,
    /// Size of each shared buffer.
    pub slot_bytes: Vec<u64>,
    /// Tensors that live in textures (packed conv weights, when planned so).
    pub texture: Vec<bool>,
    /// Shared slots that are textures rather than buffers.
    pub slot_texture: Vec<bool>,
}

/// Memory figures of a plan, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Parameters (and their momentum and moving average).
    pub params: u64,
    /// Inputs, labels, kept outputs and prepared weights.
    pub other_dedicated: u64,
    /// The shared buffers of activations, gradients and workspaces.
    pub shared: u64,
    /// The sum of the sizes of every tensor that lives in a shared buffer.
    pub shared_tensors: u64,
    /// The sum of the sizes of every tensor in the graph.
    pub all_tensors: u64,
}

impl MemoryPlan {
    /// Plans the memory of the lowered `graph` (see the [`super`] docs); with `storage` textures,
    /// packed conv weights and activations live in textures.
    pub fn new(graph: &Graph, options: &PlanOptions, storage: Storage) -> MemoryPlan {
        let count = graph.tensors.len();
        let mut texture = vec![false; count];
        if storage == Storage::Texture {
            for node in graph
                .nodes
                .iter()
                .filter(|n| matches!(n.op, Op::PackWeight(..) | Op::PackWeightPair(_) | Op::PackActivation(..)))
            {
                node.outputs.iter().for_each(|&t| texture[t] = true);
            }
        }
        // A texture holds whole rows of TEXTURE_WIDTH texels.
        let row = (4 * TEXTURE_WIDTH * 4) as u64;
        let bytes = |t: TensorId| match texture[t] {
            true => graph.tensors[t].bytes().div_ceil(row) * row,
            false => graph.tensors[t].bytes(),
        };
        let mut dedicated: Vec<bool> = graph
            .tensors
            .iter()
            .map(|t| !matches!(t.role, Role::Value | Role::Scratch))
            .collect();
        for &k in &options.keep {
            dedicated[k] = true;
        }
        let (prepare, step, prepared) = phases(graph, options.prepare_params);
        // Prepared tensors read by the step must survive between runs.
        for &i in &step {
            for &t in &graph.nodes[i].inputs {
                if prepared[t] {
                    dedicated[t] = true;
                }
            }
        }
        let order: Vec<usize> = prepare.iter().chain(&step).copied().collect();
        let (slot, slot_bytes, slot_texture) = share(graph, &order, &dedicated, &texture, bytes);
        MemoryPlan {
            prepare,
            step,
            dedicated,
            slot,
            slot_bytes,
            texture,
            slot_texture,
        }
    }

    /// The memory figures of this plan for `graph`.
    pub fn report(&self, graph: &Graph) -> MemoryReport {
        let mut r = MemoryReport {
            shared: self.slot_bytes.iter().sum(),
            ..Default::default()
        };
        for (t, def) in graph.tensors.iter().enumerate() {
            r.all_tensors += def.bytes();
            if self.slot[t].is_some() {
                r.shared_tensors += def.bytes();
            } else if self.dedicated[t] {
                match def.role {
                    Role::Param(_) | Role::Momentum | Role::Ema | Role::Accumulator => r.params += def.bytes(),
                    _ => r.other_dedicated += def.bytes(),
                }
            }
        }
        r
    }
}

/// The shared slots of the tensors that are not `dedicated`, over the timeline `order` of node
/// indices: each tensor's slot, each slot's size and whether it is a texture. Greedy best fit in
/// order of first use; a texture tensor (`texture`) only shares with textures; `bytes` gives a
/// tensor's size in memory.
fn share(
    graph: &Graph,
    order: &[usize],
    dedicated: &[bool],
    texture: &[bool],
    bytes: impl Fn(TensorId) -> u64,
) -> (Vec<Option<usize>>, Vec<u64>, Vec<bool>) {
    let count = graph.tensors.len();
    // Lifetimes over the timeline.
    let (mut first, mut last) = (vec![usize::MAX; count], vec![0usize; count]);
    for (time, &i) in order.iter().enumerate() {
        let node = &graph.nodes[i];
        for &t in node.inputs.iter().chain(&node.outputs) {
            first[t] = first[t].min(time);
            last[t] = last[t].max(time);
        }
    }
    // Greedy best-fit assignment in order of first use.
    const WASTE: u64 = 4;
    let mut slot = vec![None; count];
    let mut slot_bytes: Vec<u64> = Vec::new();
    let mut slot_texture: Vec<bool> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut live: Vec<TensorId> = Vec::new();
    for time in 0..order.len() {
        live.retain(|&t| {
            let done = last[t] < time;
            if done {
                free.push(slot[t].expect("live tensors have a slot"));
            }
            !done
        });
        let node = &graph.nodes[order[time]];
        for &t in node.inputs.iter().chain(&node.outputs) {
            if dedicated[t] || slot[t].is_some() || first[t] != time {
                continue;
            }
            let need = bytes(t);
            let kind = |s: &usize| slot_texture[*s] == texture[t];
            // The smallest free slot that holds the tensor, unless it is more than
            // WASTE times larger: a small tensor that lives long (statistics kept for the
            // update) would pin a large slot. Else the largest smaller slot, grown.
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, s)| kind(s) && slot_bytes[**s] >= need && slot_bytes[**s] <= need.saturating_mul(WASTE))
                .min_by_key(|(_, &s)| slot_bytes[s])
                .map(|(i, _)| i);
            let pick = fit.or_else(|| {
                free.iter()
                    .enumerate()
                    .filter(|(_, s)| kind(s) && slot_bytes[**s] < need)
                    .max_by_key(|(_, &s)| slot_bytes[s])
                    .map(|(i, _)| i)
            });
            let s = match pick {
                Some(i) => free.swap_remove(i),
                None => {
                    slot_bytes.push(0);
                    slot_texture.push(texture[t]);
                    slot_bytes.len() - 1
                }
            };
            slot_bytes[s] = slot_bytes[s].max(need);
            slot[t] = Some(s);
            live.push(t);
        }
    }
    (slot, slot_bytes, slot_texture)
}

/// The prepare phase (with `prepare_params`: every node that reads only parameters or prepared
/// tensors and writes no persistent state), the step (every other node), and which tensors the
/// prepare phase writes.
fn phases(graph: &Graph, prepare_params: bool) -> (Vec<usize>, Vec<usize>, Vec<bool>) {
    let mut prepared = vec![false; graph.tensors.len()];
    let (mut prepare, mut step) = (Vec::new(), Vec::new());
    for (i, node) in graph.nodes.iter().enumerate() {
        let param_only = prepare_params
            && node
                .inputs
                .iter()
                .all(|&t| prepared[t] || matches!(graph.tensors[t].role, Role::Param(_)))
            && node.outputs.iter().all(|&t| {
                !matches!(
                    graph.tensors[t].role,
                    Role::Param(_) | Role::Momentum | Role::Ema | Role::Accumulator
                )
            });
        if param_only {
            node.outputs.iter().for_each(|&t| prepared[t] = true);
            prepare.push(i);
        } else {
            step.push(i);
        }
    }
    (prepare, step, prepared)
}

/// The memory figures of `graph` planned as `Plan::new` would on an adapter with `limits` whose
/// conv kernels read `storage`, without a GPU.
pub fn report(graph: &Graph, options: &PlanOptions, storage: Storage, limits: &wgpu::Limits) -> MemoryReport {
    let lowered = lower(graph, &options.keep, storage, limits);
    MemoryPlan::new(&lowered, options, storage).report(&lowered)
}
