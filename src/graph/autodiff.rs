//! Reverse-mode autodiff: appends the backward nodes of a forward graph.
//!
//! The forward nodes are visited in reverse; each op's gradient rule (the `match` below, one arm
//! per op, like a table) reads the gradient of its outputs and contributes to the gradients of its
//! inputs. The first contribution to a tensor's gradient creates it and overwrites (`=`); every
//! later one is emitted with `accumulate` (`+=`), which is how fan-out (the residual stream,
//! SE's input, a transition block's activated input) sums its gradients without atomics.
//!
//! Identity gradients share memory: the shortcut of `y = alpha*g*r + shortcut` gets `dy` itself,
//! no copy. That is safe because the only other reader of `dy`, `residual_backward`, is emitted
//! first (it belongs to the later forward node), before anything accumulates into the shared
//! buffer.
//!
//! Parameter gradients are named `grad.<param>`; the packed weights the input gradient of a conv
//! needs are built by a second `grouped_conv_pack_weight` in the input-inner layout.

use super::{Graph, Op, Role, TensorId};
use crate::error::{Error, Result};
use crate::ops::grouped_conv::{self, Packing};

/// The gradients autodiff produced: `param id -> gradient id`, in parameter order.
pub struct Gradients {
    pub params: Vec<(TensorId, TensorId)>,
}

/// Per-tensor gradient bookkeeping while walking backwards.
struct Grads {
    of: Vec<Option<TensorId>>,
}

impl Grads {
    /// The gradient tensor of `t` for a new contribution, and whether to accumulate into it.
    fn contribute(&mut self, g: &mut Graph, t: TensorId) -> (TensorId, bool) {
        match self.of[t] {
            Some(d) => (d, true),
            None => {
                let (name, shape) = (g.tensors[t].name.clone(), g.tensors[t].shape.clone());
                let name = if matches!(g.tensors[t].role, Role::Param(_)) {
                    format!("grad.{name}")
                } else {
                    format!("d.{name}")
                };
                let d = g.tensor(name, &shape, Role::Value);
                self.of.resize(g.tensors.len(), None);
                self.of[t] = Some(d);
                (d, false)
            }
        }
    }
}

/// Appends to `graph` the backward nodes from the loss node (which already writes `dlogits`).
/// `limits` sizes the conv weight gradients' partial-sum workspaces.
/// Returns every parameter's gradient.
pub fn backward(graph: &mut Graph, limits: &wgpu::Limits) -> Result<Gradients> {
    let forward: Vec<_> = graph.nodes.clone();
    let mut grads = Grads {
        of: vec![None; graph.tensors.len()],
    };
    let mut seeded = false;
    for node in forward.iter().rev() {
        let (ins, outs) = (&node.inputs, &node.outputs);
        let name = &node.name;
        // The gradient of this node's first output, if anything downstream needs it.
        let dy = outs.first().and_then(|&o| grads.of.get(o).copied().flatten());
        match &node.op {
            Op::SoftmaxXent(_) => {
                // The fused loss already wrote dlogits: it *is* the gradient of the logits.
                grads.of[ins[0]] = Some(outs[1]);
                seeded = true;
            }
            _ if dy.is_none() => {}
            Op::Linear(spec) => {
                let dy = dy.expect("checked above");
                if needs_grad(graph, ins[0]) {
                    let (dx, acc) = grads.contribute(graph, ins[0]);
                    graph.node_into(
                        format!("{name}.backward_input"),
                        Op::LinearBackwardInput(*spec, acc),
                        &[dy, ins[1]],
                        &[dx],
                    );
                }
                let (dw, _) = grads.contribute(graph, ins[1]);
                let mut outputs = vec![dw];
                if spec.bias {
                    outputs.push(grads.contribute(graph, ins[2]).0);
                }
                graph.node_into(
                    format!("{name}.backward_weight"),
                    Op::LinearBackwardWeight(*spec),
                    &[ins[0], dy],
                    &outputs,
                );
            }
            Op::Conv(spec) => {
                let dy = dy.expect("checked above");
                // Weight (and bias) gradient, with its partial-sum workspace.
                let packed_fwd = ins[1];
                let w_hat = graph
                    .nodes
                    .iter()
                    .find(|n| n.outputs.contains(&packed_fwd))
                    .map(|n| n.inputs[0])
                    .ok_or_else(|| {
                        Error::invalid(
                            "autodiff",
                            format!("{name}: the conv's packed weights come from no PackWeight node"),
                        )
                    })?;
                let (dw_hat, _) = grads.contribute(graph, w_hat);
                let mut outputs = vec![dw_hat];
                if spec.bias {
                    outputs.push(grads.contribute(graph, ins[2]).0);
                }
                if let Some(shape) = grouped_conv::partials_shape(limits, spec) {
                    outputs.push(graph.tensor(format!("{name}.partials"), &shape, Role::Scratch));
                }
                graph.node_into(
                    format!("{name}.backward_weight"),
                    Op::ConvBackwardWeight(*spec),
                    &[ins[0], dy],
                    &outputs,
                );
                if needs_grad(graph, ins[0]) {
                    let len = grouped_conv::packed_len(spec, Packing::InputInner);
                    let packed = graph.node(
                        format!("{name}.pack_input"),
                        Op::PackWeight(*spec, Packing::InputInner),
                        &[w_hat],
                        &[("packed", &[len])],
                    )[0];
                    let (dx, acc) = grads.contribute(graph, ins[0]);
                    graph.node_into(
                        format!("{name}.backward_input"),
                        Op::ConvBackwardInput(*spec, acc),
                        &[dy, packed],
                        &[dx],
                    );
                }
            }
            Op::PackWeight(..) => {} // handled with its conv
            Op::PackActivation(..) | Op::PackWeightPair(_) => {
                return Err(Error::invalid(
                    "autodiff",
                    format!("{name}: {} is added by the plan, after the backward pass", node.op.name()),
                ))
            }
            Op::WeightStd(spec) => {
                let dw_hat = dy.expect("checked above");
                let (dw, _) = grads.contribute(graph, ins[0]);
                let (dgain, _) = grads.contribute(graph, ins[1]);
                let w_name = graph.tensors[ins[0]].name.clone();
                let dw_sq = graph.tensor(format!("grad_sq.{w_name}"), &[spec.k], Role::Value);
                graph.node_into(
                    format!("{name}.backward"),
                    Op::WeightStdBackward(*spec),
                    &[ins[0], ins[1], outs[1], dw_hat],
                    &[dw, dgain, dw_sq],
                );
            }
            Op::Act(spec) => {
                let (dx, acc) = grads.contribute(graph, ins[0]);
                graph.node_into(
                    format!("{name}.backward"),
                    Op::ActBackward(*spec, acc),
                    &[ins[0], dy.expect("checked")],
                    &[dx],
                );
            }
            Op::AvgPool(spec) => {
                let (dx, acc) = grads.contribute(graph, ins[0]);
                graph.node_into(
                    format!("{name}.backward"),
                    Op::AvgPoolBackward(*spec, acc),
                    &[dy.expect("checked")],
                    &[dx],
                );
            }
            Op::GlobalPool(spec) => {
                let (dx, acc) = grads.contribute(graph, ins[0]);
                graph.node_into(
                    format!("{name}.backward"),
                    Op::GlobalPoolBackward(*spec, acc),
                    &[dy.expect("checked")],
                    &[dx],
                );
            }
            Op::SeGate(spec) => {
                let (dr, acc) = grads.contribute(graph, ins[1]);
                let (ds, _) = grads.contribute(graph, ins[0]);
                graph.node_into(
                    format!("{name}.backward"),
                    Op::SeGateBackward(*spec, acc),
                    &[ins[0], ins[1], dy.expect("checked")],
                    &[dr, ds],
                );
            }
            Op::Residual(spec) => {
                let dy = dy.expect("checked above");
                identity_shortcut(&mut grads, name, ins[1], dy)?;
                let (dr, _) = grads.contribute(graph, ins[0]);
                let mut outputs = vec![dr];
                let mut inputs = vec![dy, ins[0]];
                if let Some(&gain) = ins.get(2) {
                    inputs.push(gain);
                    outputs.push(grads.contribute(graph, gain).0);
                }
                graph.node_into(format!("{name}.backward"), Op::ResidualBackward(*spec), &inputs, &outputs);
            }
            Op::SeResidual(spec) => {
                let dy = dy.expect("checked above");
                identity_shortcut(&mut grads, name, ins[2], dy)?;
                let (dr, acc) = grads.contribute(graph, ins[1]);
                let (ds, _) = grads.contribute(graph, ins[0]);
                let mut outputs = vec![dr, ds];
                let mut inputs = vec![dy, ins[0], ins[1]];
                if let Some(&gain) = ins.get(3) {
                    inputs.push(gain);
                    outputs.push(grads.contribute(graph, gain).0);
                }
                graph.node_into(format!("{name}.backward"), Op::SeResidualBackward(*spec, acc), &inputs, &outputs);
            }
            Op::Dropout(spec) => {
                let (dx, acc) = grads.contribute(graph, ins[1]);
                if acc {
                    return Err(Error::invalid(
                        "autodiff",
                        format!("{name}: dropout's input fans out, which its backward cannot accumulate"),
                    ));
                }
                graph.node_into(
                    format!("{name}.backward"),
                    Op::Dropout(*spec),
                    &[ins[0], dy.expect("checked")],
                    &[dx],
                );
            }
            other => return Err(Error::invalid("autodiff", format!("{name}: {} is not a forward op", other.name()))),
        }
    }
    if !seeded {
        return Err(Error::invalid(
            "autodiff",
            "the graph has no loss node to start the backward pass from",
        ));
    }
    let params = graph.params().map(|(id, _, _)| id).collect::<Vec<_>>();
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let g = grads
            .of
            .get(p)
            .copied()
            .flatten()
            .ok_or_else(|| Error::invalid("autodiff", format!("parameter {} gets no gradient", graph.tensors[p].name)))?;
        out.push((p, g));
    }
    Ok(Gradients { params: out })
}

/// A residual add's shortcut takes dy itself as its gradient (no copy), which needs the
/// shortcut to have no gradient yet.
fn identity_shortcut(grads: &mut Grads, name: &str, shortcut: TensorId, dy: TensorId) -> Result<()> {
    if grads.of[shortcut].is_some() {
        return Err(Error::invalid(
            "autodiff",
            format!("{name}: the shortcut already has a gradient; the identity rule needs it first"),
        ));
    }
    grads.of[shortcut] = Some(dy);
    Ok(())
}

/// Whether a tensor's gradient is wanted: everything but the input images and labels.
fn needs_grad(g: &Graph, t: TensorId) -> bool {
    !matches!(g.tensors[t].role, Role::Input | Role::Labels)
}
