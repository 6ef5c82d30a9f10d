//! Lowering: the one step where a graph that speaks maths meets the adapter. Storage layout is
//! decided here and nowhere else:
//! 1. **Weight packings.** Each conv pass reads its `w_hat` packed per group, the forward with
//!    output channels innermost, the input gradient with input channels innermost. A training
//!    step, which needs both, packs both in one pass over `w_hat` at the forward's place
//!    (`grouped_conv_pack_weight_pair`): the standardized weights are read once and die after
//!    the forward, the input-inner packing living in their place until the backward.
//! 2. **Workspaces.** A conv weight gradient gets the partial-sum workspace that the adapter's
//!    binding limit calls for.
//! 3. **Texels.** Where the conv kernels read textures, every conv activation is packed into
//!    4-channel texels, and the activations next to convs move into those packings.

use crate::graph::{Graph, Node, Op, Role, TensorId};
use crate::ops::grouped_conv::{packed_activation_shape, packed_len, partials_shape, Conv2d, Packing, Prologue, Storage};
use std::collections::HashMap;

/// `graph` lowered for an adapter with `limits` whose conv kernels read `storage`; `keep` as
/// [`super::PlanOptions::keep`].
pub fn lower(graph: &Graph, keep: &[TensorId], storage: Storage, limits: &wgpu::Limits) -> Graph {
    let graph = with_workspaces(with_weight_packings(graph), limits);
    match storage {
        Storage::Texture => with_conv_texels(&graph, keep),
        Storage::Buffer => graph,
    }
}

/// Copies `graph`'s tensors into a graph of the nodes `each` emits per node (the update phase
/// starting with the first node emitted for the old update phase's first).
fn rebuild(graph: &Graph, mut each: impl FnMut(&mut Graph, &Node)) -> Graph {
    let mut out = Graph {
        tensors: graph.tensors.clone(),
        nodes: Vec::with_capacity(graph.nodes.len() * 2),
        update_start: None,
    };
    for (i, node) in graph.nodes.iter().enumerate() {
        if graph.update_start == Some(i) {
            out.update_start = Some(out.nodes.len());
        }
        each(&mut out, node);
    }
    out
}

/// `graph` with each conv's weights packed right before the first pass that reads them: the
/// forward reads the output-inner packing, the input gradient the input-inner one, and where a
/// `w_hat` has both readers one `PackWeightPair` writes both (see the module docs).
fn with_weight_packings(graph: &Graph) -> Graph {
    // The packings each (w_hat, conv) needs.
    let mut needs: HashMap<(TensorId, Conv2d), (bool, bool)> = HashMap::new();
    for node in &graph.nodes {
        match node.op {
            Op::Conv(s) => needs.entry((node.inputs[1], s)).or_default().0 = true,
            Op::ConvBackwardInput(s, _) => needs.entry((node.inputs[1], s)).or_default().1 = true,
            _ => {}
        }
    }
    // (w_hat, conv) -> its [output-inner, input-inner] packings, once written.
    let mut packed: HashMap<(TensorId, Conv2d), [Option<TensorId>; 2]> = HashMap::new();
    rebuild(graph, |out, node| {
        let mut node = node.clone();
        let (spec, slot) = match node.op {
            Op::Conv(s) => (s, 0),
            Op::ConvBackwardInput(s, _) => (s, 1),
            _ => return out.nodes.push(node),
        };
        let key = (node.inputs[1], spec);
        let tensors = *packed.entry(key).or_insert_with(|| {
            let (forward, input_gradient) = needs[&key];
            let len = |p| [packed_len(&spec, p)];
            let name = format!("{}.pack_weight", node.name);
            match (forward, input_gradient) {
                (true, true) => {
                    let (oi, ii) = (len(Packing::OutputInner), len(Packing::InputInner));
                    let outs = out.node(
                        name,
                        Op::PackWeightPair(spec),
                        &[key.0],
                        &[("output_inner", &oi), ("input_inner", &ii)],
                    );
                    [Some(outs[0]), Some(outs[1])]
                }
                (true, false) => {
                    let op = Op::PackWeight(spec, Packing::OutputInner);
                    [
                        Some(out.node(name, op, &[key.0], &[("output_inner", &len(Packing::OutputInner))])[0]),
                        None,
                    ]
                }
                _ => {
                    let op = Op::PackWeight(spec, Packing::InputInner);
                    [
                        None,
                        Some(out.node(name, op, &[key.0], &[("input_inner", &len(Packing::InputInner))])[0]),
                    ]
                }
            }
        });
        node.inputs[1] = tensors[slot].expect("the packing this pass reads");
        out.nodes.push(node);
    })
}

/// `graph` with the partial-sum workspace of each conv weight gradient that needs one on an
/// adapter with `limits` (an extra output of the node, `<node>.partials`).
fn with_workspaces(graph: Graph, limits: &wgpu::Limits) -> Graph {
    rebuild(&graph, |out, node| {
        let mut node = node.clone();
        if let Op::ConvBackwardWeight(spec) = &node.op {
            if let Some(shape) = partials_shape(limits, spec) {
                node.outputs
                    .push(out.tensor(format!("{}.partials", node.name), &shape, Role::Scratch));
            }
        }
        out.nodes.push(node);
    })
}

/// `graph` with its conv activations packed for the `_textured` kernels: before each conv node
/// a `PackActivation` node writes x (forward, weight gradient) or dy (input and weight gradient)
/// as 4-channel texels ([`crate::ops::grouped_conv::pack_activation`]), and the conv reads those. Conv
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
fn with_conv_texels(graph: &Graph, keep: &[TensorId]) -> Graph {
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
                    let texel_shape = packed_activation_shape(shape, groups);
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
