//! The plan: a graph compiled for one GPU, replayed every step.
//!
//! `Plan::new` does all the work that can fail, once:
//! 1. **Lowering** ([`lower`]): the storage layout of the conv operands (packed weights, and
//!    texels where the [`Tuner`] chose textures), paired packings, partial-sum workspaces.
//! 2. **Phases.** With `prepare_params` (inference), nodes that read only parameters (weight
//!    standardization and packing) form a prepare phase, run by [`Plan::prepare`] when the
//!    weights change, not per call. Every other node runs at every step.
//! 3. **Memory** ([`memory`]). Inputs, labels, parameters, momentum, kept outputs and prepared
//!    weights get buffers of their own. Every other tensor lives from the first node that
//!    touches it to the last, and tensors whose lifetimes do not overlap share one buffer (best
//!    fit among the free buffers at most 4 times the tensor's size, else the largest smaller
//!    one grown); packed conv operands in textures pool the same way among themselves. Two
//!    tensors bound by the same node never share, so no dispatch binds one buffer twice.
//! 4. **Launches** (`launch`). Each node becomes a [`Launch`]: shapes checked by its op's
//!    launcher, the conv tiles asked of the tuner, pipelines fetched from the cache, bind groups
//!    built. This is where shape errors surface.
//!
//! [`Plan::step`] then encodes every launch into one command buffer with one compute pass and
//! submits it once; it creates no buffer and no bind group.

mod launch;
mod lower;
pub mod memory;

pub use lower::lower;
pub use memory::{MemoryPlan, MemoryReport};

use super::{Graph, Node, ParamStore, Role, TensorId};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, GpuTensor, GpuTimer, Launch};
use crate::tune::Tuner;

/// What a plan keeps and how it runs.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Tensors to keep readable after a step (outputs); every other value may share memory.
    pub keep: Vec<TensorId>,
    /// Run the parameter-only nodes once, in [`Plan::prepare`], instead of at every step.
    pub prepare_params: bool,
}

/// A graph compiled for one GPU; see the module docs.
pub struct Plan {
    /// The lowered graph.
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
    /// Compiles `graph`, taking its parameters from `store` (by name) and its adapter-dependent
    /// choices from `tuner`.
    pub fn new(gpu: &Gpu, graph: Graph, store: &ParamStore, options: &PlanOptions, tuner: &Tuner) -> Result<Plan> {
        let storage = tuner.conv_storage(gpu);
        let graph = lower(&graph, &options.keep, storage, &gpu.limits);
        let memory_plan = MemoryPlan::new(&graph, options, storage);
        let tensors = allocate(gpu, &graph, &memory_plan, store)?;
        let build = |nodes: &[usize]| -> Result<Vec<Launch>> {
            nodes
                .iter()
                .map(|&i| launch::launch(gpu, tuner, &graph.nodes[i], &tensors))
                .collect()
        };
        let prepare = build(&memory_plan.prepare)?;
        let step = build(&memory_plan.step)?;
        let update_from = match graph.update_start {
            Some(start) => memory_plan.step.iter().position(|&i| i >= start).unwrap_or(step.len()),
            None => step.len(),
        };
        Ok(Plan {
            memory: memory_plan.report(&graph),
            graph,
            tensors,
            prepare,
            step,
            step_nodes: memory_plan.step,
            update_from,
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
            let start = web_time::Instant::now();
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
        let end = if with_update { self.step.len() } else { self.update_from };
        self.submit_launches(gpu, 0..end, timer, after).map(|(seconds, _)| seconds)
    }

    /// Submits the update phase alone: a data-parallel step's, once the gradients averaged over
    /// the ranks are in place (its passes went without it).
    pub fn submit_update(&self, gpu: &Gpu) -> Result<()> {
        self.submit_launches(gpu, self.update_from..self.step.len(), None, |_| Ok(()))
            .map(|_| ())
    }

    /// Submits the step's launches `launches` (positions in the step, the update phase from
    /// [`Plan::update_from`]) and then what `after` encodes, in one submit: a pass cut into
    /// pieces so that the host can read what the first pieces wrote while the GPU runs the rest.
    pub fn submit_range(
        &self,
        gpu: &Gpu,
        launches: std::ops::Range<usize>,
        after: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<wgpu::SubmissionIndex> {
        self.submit_launches(gpu, launches, None, after).map(|(_, index)| index)
    }

    /// Where the update phase starts among the step's launches.
    pub fn update_from(&self) -> usize {
        self.update_from
    }

    /// How many of the step's first launches write every tensor named in `names` (the last
    /// writer's position plus one); `None` when the step writes one of them nowhere.
    pub fn written_after(&self, names: &[&str]) -> Option<usize> {
        let written =
            |id: TensorId| (self.step_nodes.iter().rposition(|&n| self.graph.nodes[n].outputs.contains(&id))).map(|position| position + 1);
        names
            .iter()
            .map(|n| self.graph.find(n).and_then(written))
            .try_fold(0, |most, p| Some(most.max(p?)))
    }

    fn submit_launches(
        &self,
        gpu: &Gpu,
        launches: std::ops::Range<usize>,
        timer: Option<&GpuTimer>,
        after: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<(f64, wgpu::SubmissionIndex)> {
        let started = web_time::Instant::now();
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nfnet step") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("nfnet step"),
                timestamp_writes: timer.map(GpuTimer::pass_writes),
            });
            for launch in &self.step[launches] {
                launch.encode(&mut pass);
            }
        }
        if let Some(timer) = timer {
            timer.resolve(&mut encoder);
        }
        after(&mut encoder)?;
        let index = gpu.submit(encoder.finish());
        let seconds = started.elapsed().as_secs_f64();
        gpu.take_errors("step").map(|_| (seconds, index))
    }
}

/// The memory of every tensor of the lowered `graph` as `memory_plan` places it: the parameters
/// from `store`, views of the shared pools, and tensors of their own (`None`: touched by no node).
fn allocate(gpu: &Gpu, graph: &Graph, memory_plan: &MemoryPlan, store: &ParamStore) -> Result<Vec<Option<GpuTensor>>> {
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
            _ => None,
        };
        tensors.push(tensor);
    }
    Ok(tensors)
}
