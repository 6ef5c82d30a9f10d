//! Reverse-mode autodiff: appends the backward nodes of a forward graph.
//!
//! The forward nodes are visited in reverse; each op's gradient rule (`gradient_rule`: one
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
        let dy = node.outputs.first().and_then(|&o| grads.of.get(o).copied().flatten());
        let mut rule = Rule {
            g: &mut *graph,
            grads: &mut grads,
            node,
        };
        gradient_rule(&mut rule, dy)?;
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

/// The gradient rule of `rule.node`'s op, given the gradient `dy` of its first output (`None`:
/// nothing downstream needs one, and neither do its inputs).
fn gradient_rule(rule: &mut Rule, dy: Option<TensorId>) -> Result<()> {
    let (ins, outs) = (rule.node.inputs.clone(), rule.node.outputs.clone());
    match (rule.node.op.clone(), dy) {
        // The fused loss already wrote dlogits: it *is* the gradient of the logits.
        (Op::SoftmaxXent(_), _) => {
            rule.grads.of[ins[0]] = Some(outs[1]);
            rule.grads.seeded = true;
        }
        (Op::WeightStd(_) | Op::Conv(_) | Op::Act(_) | Op::AvgPool(_) | Op::GlobalPool(_), None) => {}
        (Op::Linear(_) | Op::SeGate(_) | Op::Residual(_) | Op::SeResidual(_) | Op::Dropout(_), None) => {}
        (Op::Linear(s), Some(dy)) => {
            rule.input_grad(ins[0], "backward_input", |acc| Op::LinearBackwardInput(s, acc), &[dy, ins[1]]);
            let outputs = rule.param_grads(&ins[1..], s.bias);
            rule.emit("backward_weight", Op::LinearBackwardWeight(s), &[ins[0], dy], &outputs);
        }
        (Op::Conv(s), Some(dy)) => {
            let outputs = rule.param_grads(&ins[1..], s.bias);
            rule.emit("backward_weight", Op::ConvBackwardWeight(s), &[ins[0], dy], &outputs);
            rule.input_grad(ins[0], "backward_input", |acc| Op::ConvBackwardInput(s, acc), &[dy, ins[1]]);
        }
        (Op::WeightStd(s), Some(dw_hat)) => {
            let (dw, dgain) = (rule.grad(ins[0]).0, rule.grad(ins[1]).0);
            let w_name = rule.g.tensors[ins[0]].name.clone();
            let dw_sq = rule.g.tensor(format!("grad_sq.{w_name}"), &[s.k], Role::Value);
            rule.emit(
                "backward",
                Op::WeightStdBackward(s),
                &[ins[0], ins[1], outs[1], dw_hat],
                &[dw, dgain, dw_sq],
            );
        }
        (Op::Act(s), Some(dy)) => rule.input_grad(ins[0], "backward", |acc| Op::ActBackward(s, acc), &[ins[0], dy]),
        (Op::AvgPool(s), Some(dy)) => rule.input_grad(ins[0], "backward", |acc| Op::AvgPoolBackward(s, acc), &[dy]),
        (Op::GlobalPool(s), Some(dy)) => rule.input_grad(ins[0], "backward", |acc| Op::GlobalPoolBackward(s, acc), &[dy]),
        (Op::SeGate(s), Some(dy)) => {
            let ((dr, acc), (ds, _)) = (rule.grad(ins[1]), rule.grad(ins[0]));
            rule.emit("backward", Op::SeGateBackward(s, acc), &[ins[0], ins[1], dy], &[dr, ds]);
        }
        (Op::Residual(s), Some(dy)) => {
            rule.identity(ins[1], dy)?;
            let mut outputs = vec![rule.grad(ins[0]).0];
            outputs.extend(ins.get(2).map(|&gain| rule.grad(gain).0));
            rule.emit(
                "backward",
                Op::ResidualBackward(s),
                &[&[dy], &ins[..1], &ins[2..]].concat(),
                &outputs,
            );
        }
        (Op::SeResidual(s), Some(dy)) => {
            rule.identity(ins[2], dy)?;
            let ((dr, acc), (ds, _)) = (rule.grad(ins[1]), rule.grad(ins[0]));
            let mut outputs = vec![dr, ds];
            outputs.extend(ins.get(3).map(|&gain| rule.grad(gain).0));
            rule.emit(
                "backward",
                Op::SeResidualBackward(s, acc),
                &[&[dy], &ins[..2], &ins[3..]].concat(),
                &outputs,
            );
        }
        (Op::Dropout(s), Some(dy)) => {
            let (dx, acc) = rule.grad(ins[1]);
            if acc {
                let message = format!("{}: dropout's input fans out, which its backward cannot accumulate", rule.node.name);
                return Err(Error::invalid("autodiff", message));
            }
            rule.emit("backward", Op::Dropout(s), &[ins[0], dy], &[dx]);
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
        ) => return Err(rule.error("not a forward op")),
        (Op::PackWeight(..) | Op::PackWeightPair(_) | Op::PackActivation(..), _) => {
            return Err(rule.error("a layout the plan adds after autodiff"));
        }
    }
    Ok(())
}

/// One forward node's backward, being written.
struct Rule<'a> {
    g: &'a mut Graph,
    grads: &'a mut Grads,
    node: &'a Node,
}

impl Rule<'_> {
    /// The gradient tensor of `t` for a new contribution, and whether to accumulate into it.
    fn grad(&mut self, t: TensorId) -> (TensorId, bool) {
        self.grads.contribute(self.g, t)
    }

    /// Appends the node `<node>.<suffix>`.
    fn emit(&mut self, suffix: &str, op: Op, inputs: &[TensorId], outputs: &[TensorId]) {
        self.g.node_into(format!("{}.{suffix}", self.node.name), op, inputs, outputs);
    }

    /// Appends `op(accumulate)` writing the gradient of the input `x`, unless `x` needs none.
    fn input_grad(&mut self, x: TensorId, suffix: &str, op: impl FnOnce(bool) -> Op, inputs: &[TensorId]) {
        if needs_grad(self.g, x) {
            let (dx, acc) = self.grad(x);
            self.emit(suffix, op(acc), inputs, &[dx]);
        }
    }

    /// The gradients of a layer's weight and (with `bias`) its bias, `params = [w, b?]`.
    fn param_grads(&mut self, params: &[TensorId], bias: bool) -> Vec<TensorId> {
        let mut outputs = vec![self.grad(params[0]).0];
        if bias {
            outputs.push(self.grad(params[1]).0);
        }
        outputs
    }

    /// A residual add's shortcut takes dy itself as its gradient (no copy).
    fn identity(&mut self, shortcut: TensorId, dy: TensorId) -> Result<()> {
        self.grads.identity(&self.node.name, shortcut, dy)
    }

    fn error(&self, what: &str) -> Error {
        Error::invalid("autodiff", format!("{}: {} is {what}", self.node.name, self.node.op.name()))
    }
}

/// Whether a tensor's gradient is wanted: everything but the input images and labels.
fn needs_grad(g: &Graph, t: TensorId) -> bool {
    !matches!(g.tensors[t].role, Role::Input | Role::Labels)
}
