//! The update phase: adaptive gradient clipping, then SGD with momentum, one node per parameter
//! (`sgd_agc_update`, or `sgd_update` where AGC is off or exempts the parameter).
//!
//! Order (DeepMind's `SGD_AGC`, timm's train loop): AGC clips the *raw* gradient, then the
//! update adds weight decay and momentum. AGC's units follow timm (a conv weight per output
//! channel, a gain `[K,1,1,1]` per channel, biases and skip gains whole) and the classifier
//! (weight and bias) is exempt; [`AgcStyle::DeepMind`] instead clips gains as whole vectors and
//! exempts only the classifier weight. Weight decay applies to the `*.weight` tensors.
//!
//! A standardized conv weight's update takes its unit norms from the weight standardization's
//! statistics and its backward's sums (`given_norms`) rather than summing them again.

use super::autodiff::Gradients;
use super::{Graph, Op, Role, TensorId};
use crate::error::{Error, Result};
use crate::ops::agc::Agc;
use crate::ops::sgd::Sgd;

/// Whose AGC conventions to follow (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AgcStyle {
    #[default]
    Timm,
    DeepMind,
}

/// Adaptive gradient clipping settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgcConfig {
    /// lambda: the largest ratio of a unit's gradient norm to its weight norm.
    pub clip: f32,
    pub eps: f32,
    pub style: AgcStyle,
}

/// The optimizer of a training plan. The learning rate is not here: it changes every step and
/// is read from the step info.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optimizer {
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    pub agc: Option<AgcConfig>,
}

impl Optimizer {
    /// The NFNet paper's recipe (and the parity fixtures'): SGD with Nesterov momentum 0.9,
    /// weight decay 2e-5, AGC with lambda 0.01 and eps 1e-3 in timm's units.
    pub fn paper() -> Optimizer {
        Optimizer {
            momentum: 0.9,
            weight_decay: 2e-5,
            nesterov: true,
            agc: Some(AgcConfig {
                clip: 0.01,
                eps: 1e-3,
                style: AgcStyle::Timm,
            }),
        }
    }

    /// Checks the settings with the learning rate `lr`, errors reported under `op` and naming
    /// the command-line flags: a learning rate, momentum and weight decay that are finite and
    /// not negative; AGC's clip finite and > 0, its eps finite and >= 0.
    pub fn validate(&self, op: &str, lr: f32) -> Result<()> {
        let ok = |v: f32| v.is_finite() && v >= 0.0;
        if !(ok(lr) && ok(self.momentum) && ok(self.weight_decay)) {
            return Err(Error::invalid(
                op,
                format!(
                    "lr (--lr) {lr}, momentum (--momentum) {} and weight decay (--weight-decay) {}: expected finite numbers >= 0",
                    self.momentum, self.weight_decay
                ),
            ));
        }
        if let Some(agc) = &self.agc {
            if !(agc.clip.is_finite() && agc.clip > 0.0 && ok(agc.eps)) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "AGC's clip (--agc-clip) {} and eps (--agc-eps) {}: expected finite numbers, the clip > 0 (0 turns AGC off) \
                         and the eps >= 0",
                        agc.clip, agc.eps
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Appends the update node of every parameter, with a `momentum.<name>` tensor each. With
/// `accumulate` each gradient is first summed into an `accum.<name>` tensor (the mean over the
/// `micro_batches`) and the update phase reads the sums (which data-parallel training replaces
/// by their mean over the ranks).
pub fn add_optimizer(graph: &mut Graph, grads: &Gradients, opt: &Optimizer, micro_batches: usize, accumulate: bool) {
    let step_info = graph.step_info();
    let mut grads = grads.params.clone();
    if accumulate {
        let first = graph.nodes.len();
        for (param, grad) in grads.iter_mut() {
            let def = graph.tensors[*param].clone();
            let acc = graph.tensor(format!("accum.{}", def.name), &def.shape, Role::Accumulator);
            let scale = 1.0 / micro_batches as f32;
            graph.node_into(
                format!("{}.accumulate", def.name),
                Op::GradAccumulate(scale),
                &[step_info, *grad],
                &[acc],
            );
            *grad = acc;
        }
        place_after_writers(graph, first);
    }
    graph.update_start = Some(graph.nodes.len());
    for &(param, grad) in &grads {
        let def = graph.tensors[param].clone();
        let Role::Param(info) = &def.role else { continue };
        let clip = opt.agc.and_then(|agc| {
            let is_head_bias = info.head && def.name.ends_with(".bias");
            let exempt = match agc.style {
                AgcStyle::Timm => info.head,
                AgcStyle::DeepMind => info.head && !is_head_bias,
            };
            let whole_gain = agc.style == AgcStyle::DeepMind && def.name.ends_with(".gain");
            (!exempt).then(|| match whole_gain {
                true => Agc::whole(def.numel(), agc.clip, agc.eps),
                false => Agc::for_shape(&def.shape, agc.clip, agc.eps),
            })
        });
        let momentum = graph.tensor(format!("momentum.{}", def.name), &def.shape, Role::Momentum);
        let sgd = Sgd {
            momentum: opt.momentum,
            weight_decay: if info.weight_decay { opt.weight_decay } else { 0.0 },
            nesterov: opt.nesterov,
        };
        let (op, norms) = match clip {
            Some(units) => (Op::SgdAgcUpdate(units, sgd), given_norms(graph, param, grad, &units)),
            None => (Op::SgdUpdate(sgd), None),
        };
        let inputs: Vec<TensorId> = [step_info, grad].into_iter().chain(norms.into_iter().flatten()).collect();
        graph.node_into(format!("{}.sgd", def.name), op, &inputs, &[param, momentum]);
    }
}

/// Moves every node from `first` on (a gradient's `accumulate`) to just after the last earlier
/// node that writes its gradient (input 1): a gradient's sum is complete as soon as the backward
/// pass has made it, the last layers' first, so data-parallel ranks can start exchanging those
/// while the rest of the backward pass runs (`crate::train::data_parallel`).
fn place_after_writers(graph: &mut Graph, first: usize) {
    let moved = graph.nodes.split_off(first);
    let mut after: Vec<Vec<super::Node>> = vec![vec![]; first];
    for node in moved {
        let writer = (0..first).rev().find(|&i| graph.nodes[i].outputs.contains(&node.inputs[1]));
        after[writer.expect("the backward pass writes every gradient")].push(node);
    }
    let before = std::mem::take(&mut graph.nodes);
    for (node, then) in before.into_iter().zip(after) {
        graph.nodes.push(node);
        graph.nodes.extend(then);
    }
}

/// `[stats, g_sq]` for `param`'s AGC update: the weight standardization's mean and variance of
/// `param` and its backward's squared unit norms of `grad`, where AGC's units are the
/// standardization's (a conv weight's output channels) and that backward alone wrote `grad`
/// (not so with micro-batches, where the update reads the accumulated sum).
fn given_norms(graph: &Graph, param: TensorId, grad: TensorId, agc: &Agc) -> Option<[TensorId; 2]> {
    let stats = graph.nodes.iter().find_map(|n| match &n.op {
        Op::WeightStd(ws) if n.inputs[0] == param && (ws.k, ws.fan_in) == (agc.units, agc.unit_len) => Some(n.outputs[1]),
        _ => None,
    })?;
    match graph.sole_writer(grad) {
        Some(n) if matches!(n.op, Op::WeightStdBackward(_)) && n.outputs[0] == grad => Some([stats, n.outputs[2]]),
        _ => None,
    }
}

/// Appends an exponential moving average of every parameter, `ema.<name>`, updated after the
/// optimizer with the decay in the step info.
pub fn add_ema(graph: &mut Graph) {
    let info = graph.step_info();
    let params: Vec<_> = graph
        .params()
        .map(|(id, def, _)| (id, def.name.clone(), def.shape.clone()))
        .collect();
    for (param, name, shape) in params {
        let ema = graph.tensor(format!("ema.{name}"), &shape, Role::Ema);
        graph.node_into(format!("{name}.ema"), Op::EmaUpdate, &[info, param], &[ema]);
    }
}
