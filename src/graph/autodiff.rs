//! Reverse-mode autodiff: appends the backward nodes of a forward graph.
//!
//! The forward nodes are visited in reverse; each op's gradient rule ([`gradient_rule`]: one
//! exhaustive `match` over [`Op`], a table in the manner of tinygrad's and candle's, so an op
//! without a rule does not compile) reads the gradient of its outputs and contributes to the
//! gradients of its inputs. The first contribution to a tensor's gradient creates it and
//! overwrites (`=`); every later one is emitted with `accumulate` (`+=`), which is how fan-out
//! (the residual stream, SE's input, a transition block's activated input) sums its gradients
//! without atomics.
//!
//! Identity gradients share memory: the shortcut of `y = alpha*g*r + shortcut` gets `dy` itself,
//! no copy. That is safe because the only other reader of `dy`, `residual_backward`, is emitted
//! first (it belongs to the later forward node), before anything accumulates into the shared
//! buffer.
//!
//! Parameter gradients are named `grad.<param>`, others `d.<tensor>`. The backward speaks maths
//! like the forward: a conv's gradients read and write `w_hat`; layouts are the plan's.

use super::{Graph, Node, Op, Role, TensorId};
use crate::error::{Error, Result};

/// The gradients autodiff produced: `param id -> gradient id`, in parameter order.
pub struct Gradients {
    pub params: Vec<(TensorId, TensorId)>,
}

/// Per-tensor gradient bookkeeping while walking backwards.
struct Grads {
    of: Vec<Option<TensorId>>,
    /// Whether the loss node has seeded the walk.
    seeded: bool,
}

impl Grads {
    /// The gradient tensor of `t` for a new contribution, and whether to accumulate into it.
    fn contribute(&mut self, g: &mut Graph, t: TensorId) -> (TensorId, bool) {
        if let Some(d) = self.of[t] {
            return (d, true);
        }
        let (name, shape) = (g.tensors[t].name.clone(), g.tensors[t].shape.clone());
        let name = match g.tensors[t].role {
            Role::Param(_) => format!("grad.{name}"),
            _ => format!("d.{name}"),
        };
        let d = g.tensor(name, &shape, Role::Value);
        self.of.resize(g.tensors.len(), None);
        self.of[t] = Some(d);
        (d, false)
    }

    /// A residual add's shortcut takes dy itself as its gradient (no copy), which needs the
    /// shortcut to have no gradient yet.
    fn identity(&mut self, name: &str, shortcut: TensorId, dy: TensorId) -> Result<()> {
        if self.of[shortcut].is_some() {
            return Err(Error::invalid(
                "autodiff",
                format!("{name}: the shortcut already has a gradient; the identity rule needs it first"),
            ));
        }
        self.of[shortcut] = Some(dy);
        Ok(())
    }
}

/// Appends to `graph` the backward nodes from the loss node (which already writes `dlogits`).
/// Returns every parameter's gradient.
pub fn backward(graph: &mut Graph) -> Result<Gradients> {
    let forward: Vec<Node> = graph.nodes.clone();
    let mut grads = Grads {
        of: vec![None; graph.tensors.len()],
        seeded: false,
    };
    for node in forward.iter().rev() {
        gradient_rule(graph, &mut grads, node)?;
    }
    if !grads.seeded {
        return Err(Error::invalid(
            "autodiff",
            "the graph has no loss node to start the backward pass from",
        ));
    }
    let params: Vec<TensorId> = graph.params().map(|(id, _, _)| id).collect();
    let gradient = |p: TensorId| {
        grads.of.get(p).copied().flatten().ok_or_else(|| {
            let name = &graph.tensors[p].name;
            Error::invalid("autodiff", format!("parameter {name} gets no gradient"))
        })
    };
    let params = params.into_iter().map(|p| Ok((p, gradient(p)?))).collect::<Result<_>>()?;
    Ok(Gradients { params })
}

/// The gradient rule of `node`'s op: appends the nodes that compute the gradients of its inputs
/// from the gradient of its first output (nothing when no gradient reaches that output).
fn gradient_rule(g: &mut Graph, grads: &mut Grads, node: &Node) -> Result<()> {
    let (ins, outs, name) = (&node.inputs, &node.outputs, node.name.as_str());
    let dy = outs.first().and_then(|&o| grads.of.get(o).copied().flatten());
    match (&node.op, dy) {
        // The fused loss already wrote dlogits: it *is* the gradient of the logits.
        (Op::SoftmaxXent(_), _) => {
            grads.of[ins[0]] = Some(outs[1]);
            grads.seeded = true;
        }
        (Op::WeightStd(_) | Op::Conv(_) | Op::Act(_) | Op::AvgPool(_) | Op::GlobalPool(_), None) => {}
        (Op::Linear(_) | Op::SeGate(_) | Op::Residual(_) | Op::SeResidual(_) | Op::Dropout(_), None) => {}
        (Op::Linear(spec), Some(dy)) => {
            if needs_grad(g, ins[0]) {
                let (dx, acc) = grads.contribute(g, ins[0]);
                let op = Op::LinearBackwardInput(*spec, acc);
                g.node_into(format!("{name}.backward_input"), op, &[dy, ins[1]], &[dx]);
            }
            let mut outputs = vec![grads.contribute(g, ins[1]).0];
            if spec.bias {
                outputs.push(grads.contribute(g, ins[2]).0);
            }
            g.node_into(
                format!("{name}.backward_weight"),
                Op::LinearBackwardWeight(*spec),
                &[ins[0], dy],
                &outputs,
            );
        }
        (Op::Conv(spec), Some(dy)) => {
            let mut outputs = vec![grads.contribute(g, ins[1]).0];
            if spec.bias {
                outputs.push(grads.contribute(g, ins[2]).0);
            }
            g.node_into(
                format!("{name}.backward_weight"),
                Op::ConvBackwardWeight(*spec),
                &[ins[0], dy],
                &outputs,
            );
            if needs_grad(g, ins[0]) {
                let (dx, acc) = grads.contribute(g, ins[0]);
                let op = Op::ConvBackwardInput(*spec, acc);
                g.node_into(format!("{name}.backward_input"), op, &[dy, ins[1]], &[dx]);
            }
        }
        (Op::WeightStd(spec), Some(dw_hat)) => {
            let (dw, _) = grads.contribute(g, ins[0]);
            let (dgain, _) = grads.contribute(g, ins[1]);
            let w_name = g.tensors[ins[0]].name.clone();
            let dw_sq = g.tensor(format!("grad_sq.{w_name}"), &[spec.k], Role::Value);
            let inputs = [ins[0], ins[1], outs[1], dw_hat];
            g.node_into(
                format!("{name}.backward"),
                Op::WeightStdBackward(*spec),
                &inputs,
                &[dw, dgain, dw_sq],
            );
        }
        (Op::Act(spec), Some(dy)) => {
            let (dx, acc) = grads.contribute(g, ins[0]);
            g.node_into(format!("{name}.backward"), Op::ActBackward(*spec, acc), &[ins[0], dy], &[dx]);
        }
        (Op::AvgPool(spec), Some(dy)) => {
            let (dx, acc) = grads.contribute(g, ins[0]);
            g.node_into(format!("{name}.backward"), Op::AvgPoolBackward(*spec, acc), &[dy], &[dx]);
        }
        (Op::GlobalPool(spec), Some(dy)) => {
            let (dx, acc) = grads.contribute(g, ins[0]);
            g.node_into(format!("{name}.backward"), Op::GlobalPoolBackward(*spec, acc), &[dy], &[dx]);
        }
        (Op::SeGate(spec), Some(dy)) => {
            let (dr, acc) = grads.contribute(g, ins[1]);
            let (ds, _) = grads.contribute(g, ins[0]);
            g.node_into(
                format!("{name}.backward"),
                Op::SeGateBackward(*spec, acc),
                &[ins[0], ins[1], dy],
                &[dr, ds],
            );
        }
        (Op::Residual(spec), Some(dy)) => {
            grads.identity(name, ins[1], dy)?;
            let (mut inputs, mut outputs) = (vec![dy, ins[0]], vec![grads.contribute(g, ins[0]).0]);
            if let Some(&gain) = ins.get(2) {
                inputs.push(gain);
                outputs.push(grads.contribute(g, gain).0);
            }
            g.node_into(format!("{name}.backward"), Op::ResidualBackward(*spec), &inputs, &outputs);
        }
        (Op::SeResidual(spec), Some(dy)) => {
            grads.identity(name, ins[2], dy)?;
            let (dr, acc) = grads.contribute(g, ins[1]);
            let (ds, _) = grads.contribute(g, ins[0]);
            let (mut inputs, mut outputs) = (vec![dy, ins[0], ins[1]], vec![dr, ds]);
            if let Some(&gain) = ins.get(3) {
                inputs.push(gain);
                outputs.push(grads.contribute(g, gain).0);
            }
            g.node_into(format!("{name}.backward"), Op::SeResidualBackward(*spec, acc), &inputs, &outputs);
        }
        (Op::Dropout(spec), Some(dy)) => {
            let (dx, acc) = grads.contribute(g, ins[1]);
            if acc {
                let message = format!("{name}: dropout's input fans out, which its backward cannot accumulate");
                return Err(Error::invalid("autodiff", message));
            }
            g.node_into(format!("{name}.backward"), Op::Dropout(*spec), &[ins[0], dy], &[dx]);
        }
        (
            Op::WeightStdBackward(_)
            | Op::ConvBackwardInput(..)
            | Op::ConvBackwardWeight(_)
            | Op::ActBackward(..)
            | Op::AvgPoolBackward(..)
            | Op::GlobalPoolBackward(..)
            | Op::LinearBackwardInput(..)
            | Op::LinearBackwardWeight(_)
            | Op::SeGateBackward(..)
            | Op::ResidualBackward(_)
            | Op::SeResidualBackward(..)
            | Op::SgdUpdate(_)
            | Op::SgdAgcUpdate(..)
            | Op::EmaUpdate
            | Op::GradAccumulate(_),
            _,
        ) => {
            return Err(Error::invalid(
                "autodiff",
                format!("{name}: {} is not a forward op", node.op.name()),
            ))
        }
        (Op::PackWeight(..) | Op::PackWeightPair(_) | Op::PackActivation(..), _) => {
            let message = format!("{name}: {} is a layout the plan adds after autodiff", node.op.name());
            return Err(Error::invalid("autodiff", message));
        }
    }
    Ok(())
}

/// Whether a tensor's gradient is wanted: everything but the input images and labels.
fn needs_grad(g: &Graph, t: TensorId) -> bool {
    !matches!(g.tensors[t].role, Role::Input | Role::Labels)
}
