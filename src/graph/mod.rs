//! The graph: what a model computes, independent of any GPU.
//!
//! A [`Graph`] is a list of labelled tensors ([`TensorDef`]) and of nodes ([`Node`]) in execution
//! order. Each node applies one [`Op`] to input tensors and writes output tensors. The graph
//! speaks maths: a conv reads its standardized weights `w_hat`, not a layout of them. A model
//! builder (`crate::model`) writes the forward nodes; [`autodiff::backward`] appends the backward
//! nodes from each op's gradient rule; [`optim`] appends the update. [`plan::Plan`] then lowers
//! the graph to the adapter (operand layouts, workspaces), checks every shape, assigns buffers by
//! liveness, builds pipelines and bind groups once, and replays them.
//!
//! Tensor roles decide lifetimes: inputs, labels and parameters live as long as the plan (they
//! are written from the host); values and scratch live from their first write to their last
//! use, and share memory with other values whose lifetimes do not overlap.

pub mod autodiff;
pub mod optim;
mod params;
pub mod plan;

pub use params::ParamStore;

use crate::ops::agc::Agc;
use crate::ops::avg_pool::AvgPool;
use crate::ops::dropout::Dropout;
use crate::ops::global_pool::GlobalPool;
use crate::ops::grouped_conv::{Conv2d, Packing, Prologue};
use crate::ops::linear::Linear;
use crate::ops::residual::Residual;
use crate::ops::scaled_act::ScaledAct;
use crate::ops::se_gate::SeGate;
use crate::ops::se_residual::SeResidual;
use crate::ops::sgd::Sgd;
use crate::ops::softmax_xent::SoftmaxXent;
use crate::ops::weight_std::WeightStd;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// How a parameter starts (reference initialisation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, 1/fan_in): kaiming normal, fan-in, linear (convs, SE projections).
    FanIn,
    /// N(0, std^2) (the classifier: 0.01).
    Normal(f32),
    /// Every element the same (gains 1, biases 0, skip gains 0).
    Const(f32),
}

/// What the optimizer does with a parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub init: Init,
    /// Coupled weight decay applies (the `*.weight` tensors).
    pub weight_decay: bool,
    /// Part of the classifier (exempt from AGC; re-initialised when the class count changes).
    pub head: bool,
}

/// What a tensor is for; decides where its memory comes from and how long it lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Written from the host before each step (the images).
    Input,
    /// Class labels, u32, written from the host.
    Labels,
    /// A learnable parameter (persistent).
    Param(ParamInfo),
    /// SGD momentum of a parameter (persistent).
    Momentum,
    /// The moving average of a parameter (persistent).
    Ema,
    /// A parameter's gradient summed over the micro-batches of a step (persistent).
    Accumulator,
    /// The step info the trainer writes before each step (`ops::step_info`).
    StepInfo,
    /// Computed by a node; lives from its first write to its last use.
    Value,
    /// Workspace of one node (partial sums).
    Scratch,
}

/// One tensor of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDef {
    /// A unique label: the timm name of a parameter, or `<node>.<output>`.
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

impl TensorDef {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
}

/// The operations of the graph, each a call of one `ops` launcher. Inputs and outputs are
/// listed in this order in [`Node::inputs`] and [`Node::outputs`]; `?` marks an optional one.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // Forward.
    /// in `[w, gain]`, out `[w_hat, stats]`.
    WeightStd(WeightStd),
    /// in `[x, w_hat, b?]`, out `[y]`; lowered, in `[x, packed (output-inner), b?]`.
    Conv(Conv2d),
    /// in `[x]`, out `[y]`.
    Act(ScaledAct),
    /// in `[x]`, out `[y]`.
    AvgPool(AvgPool),
    /// in `[x]`, out `[y]` (`[N, C]`).
    GlobalPool(GlobalPool),
    /// in `[x, w, b?]`, out `[y]`.
    Linear(Linear),
    /// in `[s, r]`, out `[y]`.
    SeGate(SeGate),
    /// in `[r, shortcut, gain?]`, out `[y]`.
    Residual(Residual),
    /// in `[s, r, shortcut, gain?]`, out `[y]`: the SE gate and the residual in one kernel.
    SeResidual(SeResidual),
    /// in `[step_info, x]`, out `[y]`; also the backward (applied to dy).
    Dropout(Dropout),
    /// in `[logits, labels]`, out `[loss, dlogits]`.
    SoftmaxXent(SoftmaxXent),

    // Backward (appended by autodiff). `accumulate`: add into the output instead of overwriting.
    /// in `[w, gain, stats, dw_hat]`, out `[dw, dgain, dw_sq]` (`dw_sq`: per unit, AGC's).
    WeightStdBackward(WeightStd),
    /// in `[dy, w_hat]`, out `[dx]`; lowered, in `[dy, packed (input-inner)]`.
    ConvBackwardInput(Conv2d, bool),
    /// in `[x, dy]`, out `[dw_hat, db?]`; lowered, out `[dw_hat, db?, partials?]` (the
    /// partial-sum workspace, where the adapter's limits call for one).
    ConvBackwardWeight(Conv2d),
    /// in `[x, dy]`, out `[dx]`.
    ActBackward(ScaledAct, bool),
    /// in `[dy]`, out `[dx]`.
    AvgPoolBackward(AvgPool, bool),
    /// in `[dy]`, out `[dx]`.
    GlobalPoolBackward(GlobalPool, bool),
    /// in `[dy, w]`, out `[dx]`.
    LinearBackwardInput(Linear, bool),
    /// in `[x, dy]`, out `[dw, db?]`.
    LinearBackwardWeight(Linear),
    /// in `[s, r, dy]`, out `[dr, ds]`.
    SeGateBackward(SeGate, bool),
    /// in `[dy, r, gain?]`, out `[dr, dgain?]`.
    ResidualBackward(Residual),
    /// in `[dy, s, r, gain?]`, out `[dr, ds, dgain?]` (`accumulate` applies to dr).
    SeResidualBackward(SeResidual, bool),

    // Update (appended by the plan's optimizer). They modify their outputs in place.
    /// in `[step_info, g]`, out `[w, momentum]` (updated in place).
    SgdUpdate(Sgd),
    /// in `[step_info, g, stats?, g_sq?]`, out `[w, momentum]` (updated in place; `g` clipped
    /// on the way, not written). With `stats` (the weight standardization's mean and variance
    /// of `w`) and `g_sq` (its backward's squared unit norms of `g`) the unit norms are not
    /// summed again.
    SgdAgcUpdate(Agc, Sgd),
    /// in `[step_info, w]`, out `[ema]` (updated in place).
    EmaUpdate,
    /// in `[step_info, g]`, out `[acc]`: `acc = (first micro-batch ? 0 : acc) + scale * g`.
    GradAccumulate(f32),

    // Layout (added by the plan's lowering, `plan::lower`, never by a model or autodiff).
    /// in `[w_hat]`, out `[packed]`.
    PackWeight(Conv2d, Packing),
    /// in `[w_hat]`, out `[packed (output-inner), packed (input-inner)]`: a training step's two
    /// packings in one pass.
    PackWeightPair(Conv2d),
    /// in `[x or dy, act_x?]`, out `[texels]`: a conv's activation as 4-channel texels for the
    /// `_textured` conv kernels, with the conv's groups, through a prologue; `act_x` only with
    /// [`Prologue::ActBackward`].
    PackActivation(usize, Prologue),
}

impl Op {
    /// A short name for labels and errors (the kernel's op name).
    pub fn name(&self) -> &'static str {
        match self {
            Op::WeightStd(_) => "weight_std_forward",
            Op::PackWeight(..) => "grouped_conv_pack_weight",
            Op::PackWeightPair(_) => "grouped_conv_pack_weight_pair",
            Op::PackActivation(..) => "grouped_conv_pack_activation",
            Op::Conv(_) => "grouped_conv_forward",
            Op::Act(_) => "scaled_act_forward",
            Op::AvgPool(_) => "avg_pool_forward",
            Op::GlobalPool(_) => "global_pool_forward",
            Op::Linear(_) => "linear_forward",
            Op::SeGate(_) => "se_gate_forward",
            Op::Residual(_) => "residual_forward",
            Op::SeResidual(_) => "se_residual_forward",
            Op::Dropout(_) => "dropout_apply",
            Op::SoftmaxXent(_) => "softmax_xent_fused",
            Op::WeightStdBackward(_) => "weight_std_backward",
            Op::ConvBackwardInput(..) => "grouped_conv_backward_input",
            Op::ConvBackwardWeight(_) => "grouped_conv_backward_weight",
            Op::ActBackward(..) => "scaled_act_backward",
            Op::AvgPoolBackward(..) => "avg_pool_backward",
            Op::GlobalPoolBackward(..) => "global_pool_backward",
            Op::LinearBackwardInput(..) => "linear_backward_input",
            Op::LinearBackwardWeight(_) => "linear_backward_weight",
            Op::SeGateBackward(..) => "se_gate_backward",
            Op::ResidualBackward(_) => "residual_backward",
            Op::SeResidualBackward(..) => "se_residual_backward",
            Op::SgdUpdate(_) => "sgd_update",
            Op::SgdAgcUpdate(..) => "sgd_agc_update",
            Op::EmaUpdate => "ema_update",
            Op::GradAccumulate(_) => "grad_accumulate",
        }
    }

    /// Multiply-adds of the op (convs and linear layers; what DeepMind's FLOP count counts).
    pub fn macs(&self) -> u64 {
        match self {
            Op::Conv(s) => s.macs(),
            Op::Linear(l) => (l.n * l.in_features * l.out_features) as u64,
            _ => 0,
        }
    }
}

/// One step of the computation.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where it comes from, e.g. `stages.2.1.conv2`.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// Tensors and nodes; see the module docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<TensorDef>,
    pub nodes: Vec<Node>,
    /// The first node of the update phase (AGC, SGD, EMA), which runs once per optimizer step
    /// while the nodes before it run once per micro-batch.
    pub update_start: Option<usize>,
}

impl Graph {
    /// Adds a tensor and returns its id.
    pub fn tensor(&mut self, name: impl Into<String>, shape: &[usize], role: Role) -> TensorId {
        self.tensors.push(TensorDef {
            name: name.into(),
            shape: shape.to_vec(),
            role,
        });
        self.tensors.len() - 1
    }

    /// Adds a node with fresh value outputs of the given shapes; returns the output ids.
    pub fn node(&mut self, name: impl Into<String>, op: Op, inputs: &[TensorId], outputs: &[(&str, &[usize])]) -> Vec<TensorId> {
        let name = name.into();
        let outs: Vec<TensorId> = outputs
            .iter()
            .map(|(o, shape)| self.tensor(format!("{name}.{o}"), shape, Role::Value))
            .collect();
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.to_vec(),
            outputs: outs.clone(),
        });
        outs
    }

    /// Adds a node writing existing tensors.
    pub fn node_into(&mut self, name: impl Into<String>, op: Op, inputs: &[TensorId], outputs: &[TensorId]) {
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
        });
    }

    /// The step-info tensor, created on first use.
    pub fn step_info(&mut self) -> TensorId {
        match self.find("step_info") {
            Some(t) => t,
            None => self.tensor("step_info", &crate::ops::step_info::SHAPE, Role::StepInfo),
        }
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t].shape
    }

    /// The id of the tensor called `name`.
    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The node that writes `t`, where exactly one does (an accumulated gradient has several).
    pub fn sole_writer(&self, t: TensorId) -> Option<&Node> {
        let mut writers = self.nodes.iter().filter(|n| n.outputs.contains(&t));
        match (writers.next(), writers.next()) {
            (Some(n), None) => Some(n),
            _ => None,
        }
    }

    /// The parameters, in creation order (the order of timm's `state_dict`).
    pub fn params(&self) -> impl Iterator<Item = (TensorId, &TensorDef, &ParamInfo)> {
        self.tensors.iter().enumerate().filter_map(|(i, t)| match &t.role {
            Role::Param(p) => Some((i, t, p)),
            _ => None,
        })
    }

    /// Total multiply-adds of the nodes.
    pub fn macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.op.macs()).sum()
    }
}
