//! The plan: a graph compiled for one GPU, replayed every step.
//!
//! `Plan::new` does all the work that can fail, once:
//! 1. **Phases.** With `prepare_params` (inference), nodes that read only parameters (weight
//!    standardization and packing) form a prepare phase, run by [`Plan::prepare`] when the
//!    weights change, not per call. Every other node runs at every step.
//! 2. **Memory.** Inputs, labels, parameters, momentum, kept outputs and prepared weights get
//!    buffers of their own. Every other tensor lives from the first node that touches it to the
//!    last, and tensors whose lifetimes do not overlap share one buffer (best fit among the
//!    free buffers at most 4 times the tensor's size, else the largest smaller one grown).
//!    Two tensors bound by the same node never share, so no dispatch binds one buffer twice.
//!    First [`rewrite`] pairs each conv's two weight packings and, where the adapter's conv
//!    kernels read textures ([`Gpu::conv_textures`]), packs every conv's activations into
//!    texels ([`with_conv_texels`]); the outputs of `PackWeight`, `PackWeightPair` and
//!    `PackActivation` nodes then live in textures, pooled the same way among themselves.
//! 3. **Launches.** Each node becomes a [`Launch`]: shapes checked by its op's launcher,
//!    pipelines fetched from the cache, bind groups built. This is where shape errors surface.
//!
//! [`Plan::step`] then encodes every launch into one command buffer with one compute pass and
//! submits it once; it creates no buffer and no bind group.

use super::{Graph, Node, Op, Role, TensorId};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, GpuTensor, GpuTimer, Launch, TEXTURE_WIDTH};
use crate::ops::grouped_conv::{Conv2d, Packing, Prologue};
use crate::ops::{
    avg_pool, dropout, ema, global_pool, grad_accumulate, grouped_conv, linear, residual, scaled_act, se_gate, se_residual, sgd,
    softmax_xent, weight_std,
};
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

/// What a plan keeps and how it runs.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Tensors to keep readable after a step (outputs); every other value may share memory.
    pub keep: Vec<TensorId>,
    /// Run the parameter-only nodes once, in [`Plan::prepare`], instead of at every step.
    pub prepare_params: bool,
}

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
    /// Plans the memory of `graph` (see the module docs); with `textures`, packed conv weights
    /// and activations live in textures.
    pub fn new(graph: &Graph, options: &PlanOptions, textures: bool) -> MemoryPlan {
        let count = graph.tensors.len();
        let mut texture = vec![false; count];
        if textures {
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
        // Phases: a node is a prepare node if everything it reads is a parameter or prepared.
        let mut prepared = vec![false; count];
        let (mut prepare, mut step) = (Vec::new(), Vec::new());
        for (i, node) in graph.nodes.iter().enumerate() {
            let param_only = options.prepare_params
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
        // Prepared tensors read by the step must survive between runs.
        for &i in &step {
            for &t in &graph.nodes[i].inputs {
                if prepared[t] {
                    dedicated[t] = true;
                }
            }
        }
        // Lifetimes over the timeline prepare ++ step.
        let order: Vec<usize> = prepare.iter().chain(&step).copied().collect();
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

/// A graph compiled for one GPU; see the module docs.
pub struct Plan {
    graph: Graph,
    tensors: Vec<Option<GpuTensor>>,
    prepare: Vec<Launch>,
    step: Vec<Launch>,
    step_nodes: Vec<usize>,
    /// Position in `step` where the update phase (`Graph::update_start`) begins.
    update_from: usize,
    memory: MemoryReport,
}

impl Plan {
    /// Compiles `graph`, taking its parameters from `store` (by name).
    pub fn new(gpu: &Gpu, graph: Graph, store: &ParamStore, options: &PlanOptions) -> Result<Plan> {
        let textures = gpu.conv_textures();
        let graph = rewrite(graph, &options.keep, textures);
        let memory_plan = MemoryPlan::new(&graph, options, textures);
        let memory = memory_plan.report(&graph);
        let pools: Vec<GpuTensor> = memory_plan
            .slot_bytes
            .iter()
            .zip(&memory_plan.slot_texture)
            .enumerate()
            .map(|(i, (&bytes, &texture))| {
                let shape = [(bytes / 4).max(1) as usize];
                match texture {
                    true => GpuTensor::texture(gpu, &format!("shared texture {i}"), &shape),
                    false => GpuTensor::zeros(gpu, &format!("shared buffer {i}"), &shape),
                }
            })
            .collect::<Result<_>>()?;
        let mut tensors: Vec<Option<GpuTensor>> = Vec::with_capacity(graph.tensors.len());
        for (t, def) in graph.tensors.iter().enumerate() {
            let dtype = if def.role == Role::Labels { DType::U32 } else { DType::F32 };
            let tensor = match (&def.role, memory_plan.slot[t]) {
                (Role::Param(_), _) => {
                    let p = store
                        .get(&def.name)
                        .ok_or_else(|| Error::invalid("plan", format!("the parameter store has no {}", def.name)))?;
                    if p.shape() != def.shape {
                        return Err(Error::shape(
                            "plan",
                            &def.name,
                            format!("{:?}", def.shape),
                            format!("{:?}", p.shape()),
                        ));
                    }
                    Some(p.clone())
                }
                (_, Some(s)) => Some(pools[s].view(&def.name, &def.shape, dtype)?),
                _ if memory_plan.dedicated[t] && memory_plan.texture[t] => Some(GpuTensor::texture(gpu, &def.name, &def.shape)?),
                _ if memory_plan.dedicated[t] => Some(GpuTensor::empty(gpu, &def.name, &def.shape, dtype)?),
                _ => None, // touched by no node
            };
            tensors.push(tensor);
        }
        let build = |nodes: &[usize]| -> Result<Vec<Launch>> { nodes.iter().map(|&i| launch(gpu, &graph.nodes[i], &tensors)).collect() };
        let prepare = build(&memory_plan.prepare)?;
        let step = build(&memory_plan.step)?;
        let update_from = match graph.update_start {
            Some(start) => memory_plan.step.iter().position(|&i| i >= start).unwrap_or(step.len()),
            None => step.len(),
        };
        Ok(Plan {
            graph,
            tensors,
            prepare,
            step,
            step_nodes: memory_plan.step,
            update_from,
            memory,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn memory(&self) -> MemoryReport {
        self.memory
    }

    /// The nodes that run at every step (not those of the prepare phase), in order.
    pub fn step_nodes(&self) -> impl Iterator<Item = &Node> {
        self.step_nodes.iter().map(|&i| &self.graph.nodes[i])
    }

    /// The tensor called `name`, if the plan gave it memory.
    pub fn tensor(&self, name: &str) -> Option<&GpuTensor> {
        self.graph.find(name).and_then(|t| self.tensors[t].as_ref())
    }

    /// The tensor with id `t`.
    pub fn tensor_id(&self, t: TensorId) -> Option<&GpuTensor> {
        self.tensors.get(t).and_then(|t| t.as_ref())
    }

    /// Runs the prepare phase (after the parameters change) and waits.
    pub fn prepare(&self, gpu: &Gpu) -> Result<()> {
        if self.prepare.is_empty() {
            return Ok(());
        }
        gpu.run(&self.prepare.iter().collect::<Vec<_>>())
    }

    /// Runs the step one node at a time, each in its own submit, and returns every node with
    /// the wall-clock seconds its launch took (for profiles, not for training: it waits after
    /// every node).
    pub fn profile(&self, gpu: &Gpu) -> Result<Vec<(&Node, f64)>> {
        let mut out = Vec::with_capacity(self.step.len());
        gpu.wait()?;
        for (launch, &node) in self.step.iter().zip(&self.step_nodes) {
            let start = std::time::Instant::now();
            gpu.run(&[launch])?;
            out.push((&self.graph.nodes[node], start.elapsed().as_secs_f64()));
        }
        Ok(out)
    }

    /// Submits one step: one command buffer, one compute pass, one submit. Does not wait; a
    /// read of any tensor waits for it.
    pub fn step(&self, gpu: &Gpu) -> Result<()> {
        self.submit(gpu, true, |_| Ok(()))
    }

    /// Submits the step's nodes, without the update phase unless `with_update` (the earlier
    /// micro-batches of an accumulated step), then the commands `after` encodes (copies for
    /// readback), all in one command buffer and one submit.
    pub fn submit(&self, gpu: &Gpu, with_update: bool, after: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<()> {
        self.submit_timed(gpu, with_update, None, after).map(|_| ())
    }

    /// [`Plan::submit`] with the compute pass timed by `timer` (read it with
    /// [`GpuTimer::read_ms`]); returns the seconds the CPU spent encoding and submitting.
    pub fn submit_timed(
        &self,
        gpu: &Gpu,
        with_update: bool,
        timer: Option<&GpuTimer>,
        after: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<f64> {
        let started = std::time::Instant::now();
        let end = if with_update { self.step.len() } else { self.update_from };
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nfnet step") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("nfnet step"),
                timestamp_writes: timer.map(GpuTimer::pass_writes),
            });
            for launch in &self.step[..end] {
                launch.encode(&mut pass);
            }
        }
        if let Some(timer) = timer {
            timer.resolve(&mut encoder);
        }
        after(&mut encoder)?;
        gpu.submit(encoder.finish());
        let seconds = started.elapsed().as_secs_f64();
        gpu.take_errors("step").map(|_| seconds)
    }
}

/// The graph `Plan::new` compiles: `graph` with each conv's weight packings paired
/// ([`with_paired_weight_packs`]) and, where the conv kernels read `textures`, its conv
/// activations packed ([`with_conv_texels`]; `keep` as [`PlanOptions::keep`]).
pub fn rewrite(graph: Graph, keep: &[TensorId], textures: bool) -> Graph {
    let graph = with_paired_weight_packs(&graph);
    match textures {
        true => with_conv_texels(&graph, keep),
        false => graph,
    }
}

/// `graph` with each conv's two weight packings, the forward's and the input gradient's that
/// autodiff added, done in one pass at the forward's place ([`grouped_conv::pack_weight_pair`]):
/// the standardized weights are read once, and they die after the forward instead of living
/// until the backward (the input-inner packing lives in their place).
pub fn with_paired_weight_packs(graph: &Graph) -> Graph {
    // The input-inner packing of each packed tensor: (node index, spec, output).
    let mut input_inner: HashMap<TensorId, (usize, Conv2d, TensorId)> = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if let Op::PackWeight(spec, Packing::InputInner) = node.op {
            input_inner.insert(node.inputs[0], (i, spec, node.outputs[0]));
        }
    }
    let mut paired = Vec::new();
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        let mut node = node.clone();
        if let Op::PackWeight(spec, Packing::OutputInner) = node.op {
            if let Some(&(j, ii_spec, ii)) = input_inner.get(&node.inputs[0]) {
                if j > i && ii_spec == spec {
                    node.op = Op::PackWeightPair(spec);
                    node.outputs.push(ii);
                    paired.push(j);
                }
            }
        }
        nodes.push(node);
    }
    let kept = |i: &usize| !paired.contains(i);
    Graph {
        tensors: graph.tensors.clone(),
        nodes: nodes.into_iter().enumerate().filter(|(i, _)| kept(i)).map(|(_, n)| n).collect(),
        update_start: graph.update_start.map(|u| (0..u).filter(kept).count()),
    }
}

/// `graph` with its conv activations packed for the `_textured` kernels: before each conv node
/// a `PackActivation` node writes x (forward, weight gradient) or dy (input and weight gradient)
/// as 4-channel texels ([`grouped_conv::pack_activation`]), and the conv reads those. Conv
/// nodes in a row that read the same tensor (the two gradients of one conv, a shortcut conv
/// and the first conv of its block) share one packing; a packing does not outlive its run of
/// conv nodes, so the texels of an activation do not stay alive from the forward to the
/// backward, except where they stand in for an activation's output that only convs read (below).
///
/// The activations next to convs move into the packings' prologues ([`Prologue`]): an x that
/// an activation computed is packed from the activation's input, the activation applied on the
/// way, and a dy that an activation's backward computed (and nothing else wrote) is packed from
/// the gradient of the activation's output, the backward applied on the way. An activation
/// node whose output is then read by no node and not in `keep` is dropped, with its output's
/// memory. An activation output that only convs read as their x is packed once: the forward's
/// texels serve the weight gradient's x too (they take the output's place in memory, and the
/// activation is not computed again).
pub fn with_conv_texels(graph: &Graph, keep: &[TensorId]) -> Graph {
    let mut out = Graph {
        tensors: graph.tensors.clone(),
        nodes: Vec::with_capacity(graph.nodes.len() * 2),
        update_start: None,
    };
    // For each tensor written by exactly one node, an activation (forward or a backward that
    // overwrites its output): the inputs to pack from and the prologue that gives the tensor.
    let mut activation_of: HashMap<TensorId, (Vec<TensorId>, Prologue)> = HashMap::new();
    for node in &graph.nodes {
        let from = match node.op {
            Op::Act(spec) => (vec![node.inputs[0]], Prologue::Act(spec)),
            Op::ActBackward(spec, false) => (vec![node.inputs[1], node.inputs[0]], Prologue::ActBackward(spec)),
            _ => continue,
        };
        if graph.sole_writer(node.outputs[0]).is_some_and(|w| std::ptr::eq(w, node)) {
            activation_of.insert(node.outputs[0], from);
        }
    }
    // Activation outputs that only convs read, as their x (slot 0).
    let mut only_conv_x: HashMap<TensorId, bool> = activation_of
        .iter()
        .filter(|(t, (_, p))| matches!(p, Prologue::Act(_)) && !keep.contains(t))
        .map(|(&t, _)| (t, true))
        .collect();
    for node in &graph.nodes {
        let x_slot = matches!(node.op, Op::Conv(_) | Op::ConvBackwardWeight(_));
        for (slot, t) in node.inputs.iter().enumerate() {
            if let Some(only) = only_conv_x.get_mut(t) {
                *only &= x_slot && slot == 0;
            }
        }
    }
    // (source, groups, texels) packed in the current run of conv nodes, and those kept for
    // the whole graph.
    let mut packed: Vec<(TensorId, usize, TensorId)> = Vec::new();
    let mut kept: Vec<(TensorId, usize, TensorId)> = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if graph.update_start == Some(i) {
            out.update_start = Some(out.nodes.len());
        }
        // The inputs each conv pass reads as texels, and their names.
        let (groups, slots): (usize, &[(usize, &str)]) = match &node.op {
            Op::Conv(s) => (s.groups, &[(0, "x")]),
            Op::ConvBackwardInput(s, _) => (s.groups, &[(0, "dy")]),
            Op::ConvBackwardWeight(s) => (s.groups, &[(0, "x"), (1, "dy")]),
            Op::PackWeight(..) | Op::PackWeightPair(_) => (0, &[]),
            _ => {
                packed.clear();
                (0, &[])
            }
        };
        let mut node = node.clone();
        for &(slot, what) in slots {
            let src = node.inputs[slot];
            let Ok(shape) = <[usize; 4]>::try_from(&graph.tensors[src].shape[..]) else {
                continue; // not a conv activation: the launcher reports it
            };
            let texels = match packed.iter().chain(&kept).find(|(s, g, _)| (*s, *g) == (src, groups)) {
                Some(&(_, _, t)) => t,
                None => {
                    let texel_shape = grouped_conv::packed_activation_shape(shape, groups);
                    let (inputs, prologue) = activation_of.get(&src).cloned().unwrap_or((vec![src], Prologue::None));
                    let t = out.node(
                        format!("{}.pack_{what}", node.name),
                        Op::PackActivation(groups, prologue),
                        &inputs,
                        &[("texels", &texel_shape)],
                    )[0];
                    match only_conv_x.get(&src) {
                        Some(true) => kept.push((src, groups, t)),
                        _ => packed.push((src, groups, t)),
                    }
                    t
                }
            };
            node.inputs[slot] = texels;
        }
        // A tensor written again (a gradient accumulated into) must be packed again.
        packed.retain(|(s, _, _)| !node.outputs.contains(s));
        out.nodes.push(node);
    }
    // Activations whose every reader now packs from their input.
    let read: std::collections::HashSet<TensorId> = out.nodes.iter().flat_map(|n| n.inputs.iter().copied()).collect();
    let dead =
        |n: &Node| matches!(n.op, Op::Act(_) | Op::ActBackward(_, false)) && !read.contains(&n.outputs[0]) && !keep.contains(&n.outputs[0]);
    let update = out.update_start.map(|u| out.nodes[..u].iter().filter(|n| !dead(n)).count());
    out.nodes.retain(|n| !dead(n));
    out.update_start = update;
    out
}

/// The launch of one node: its op's launcher over the planned tensors.
fn launch(gpu: &Gpu, node: &Node, tensors: &[Option<GpuTensor>]) -> Result<Launch> {
    let get = |t: TensorId| {
        tensors[t]
            .as_ref()
            .ok_or_else(|| Error::invalid("plan", format!("{}: tensor {t} has no memory", node.name)))
    };
    let ins: Vec<&GpuTensor> = node.inputs.iter().map(|&t| get(t)).collect::<Result<_>>()?;
    let outs: Vec<&GpuTensor> = node.outputs.iter().map(|&t| get(t)).collect::<Result<_>>()?;
    let (i, o) = (&ins, &outs);
    let launch = match &node.op {
        Op::WeightStd(s) => weight_std::forward(gpu, s, i[0], i[1], o[0], o[1]),
        Op::PackWeight(s, packing) => grouped_conv::pack_weight(gpu, s, i[0], o[0], *packing),
        Op::PackWeightPair(s) => grouped_conv::pack_weight_pair(gpu, s, i[0], o[0], o[1]),
        Op::PackActivation(groups, prologue) => grouped_conv::pack_activation(gpu, *groups, i[0], *prologue, i.get(1).copied(), o[0]),
        Op::Conv(s) => grouped_conv::forward_packed(gpu, s, i[0], i[1], i.get(2).copied(), o[0]),
        Op::Act(s) => scaled_act::forward(gpu, s, i[0], o[0]),
        Op::AvgPool(s) => avg_pool::forward(gpu, s, i[0], o[0]),
        Op::GlobalPool(s) => global_pool::forward(gpu, s, i[0], o[0]),
        Op::Linear(s) => linear::forward(gpu, s, i[0], i[1], i.get(2).copied(), o[0]),
        Op::SeGate(s) => se_gate::forward(gpu, s, i[0], i[1], o[0]),
        Op::Residual(s) => residual::forward(gpu, s, i[0], i[1], i.get(2).copied(), o[0]),
        Op::SeResidual(s) => se_residual::forward(gpu, s, i[0], i[1], i[2], i.get(3).copied(), o[0]),
        Op::Dropout(s) => dropout::apply(gpu, s, i[0], i[1], o[0]),
        Op::SoftmaxXent(s) => softmax_xent::forward_backward(gpu, s, i[0], i[1], o[0], o[1]),
        Op::WeightStdBackward(s) => weight_std::backward(gpu, s, i[0], i[1], i[2], i[3], o[0], o[1], o[2]),
        Op::ConvBackwardInput(s, acc) => grouped_conv::backward_input_packed(gpu, s, i[0], i[1], o[0], *acc),
        Op::ConvBackwardWeight(s) => {
            let db = s.bias.then(|| o[1]);
            let partials = o.get(1 + s.bias as usize).copied();
            grouped_conv::backward_weight_into(gpu, s, i[0], i[1], o[0], db, partials)
        }
        Op::ActBackward(s, acc) => scaled_act::backward(gpu, s, i[0], i[1], o[0], *acc),
        Op::AvgPoolBackward(s, acc) => avg_pool::backward(gpu, s, i[0], o[0], *acc),
        Op::GlobalPoolBackward(s, acc) => global_pool::backward(gpu, s, i[0], o[0], *acc),
        Op::LinearBackwardInput(s, acc) => linear::backward_input(gpu, s, i[0], i[1], o[0], *acc),
        Op::LinearBackwardWeight(s) => linear::backward_weight(gpu, s, i[0], i[1], o[0], o.get(1).copied()),
        Op::SeGateBackward(s, acc) => se_gate::backward(gpu, s, i[0], i[1], i[2], o[0], o[1], *acc),
        Op::ResidualBackward(s) => residual::backward(gpu, s, i[0], i[1], i.get(2).copied().zip(o.get(1).copied()), o[0]),
        Op::SeResidualBackward(s, acc) => {
            se_residual::backward(gpu, s, i[0], i[1], i[2], i.get(3).copied().zip(o.get(2).copied()), o[0], o[1], *acc)
        }
        Op::SgdUpdate(s) => sgd::update(gpu, s, i[0], i[1], o[0], o[1]),
        Op::SgdAgcUpdate(a, s) => sgd::agc_update(gpu, a, s, i[0], i[1], o[0], o[1], i.get(2).copied().zip(i.get(3).copied())),
        Op::EmaUpdate => ema::update(gpu, i[0], i[1], o[0]),
        Op::GradAccumulate(scale) => grad_accumulate::accumulate(gpu, *scale, i[0], i[1], o[0]),
    };
    launch.map_err(|e| match e {
        Error::Shape { op, what, expected, got } => Error::Shape {
            op: format!("{} ({op})", node.name),
            what,
            expected,
            got,
        },
        Error::Invalid { op, message } => Error::Invalid {
            op: format!("{} ({op})", node.name),
            message,
        },
        other => other,
    })
}
