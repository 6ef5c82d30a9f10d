//! Launches: each node of a lowered graph becomes its op's launch, built once. This is where
//! shape errors surface, named by the node.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Launch};
use crate::graph::{Node, Op, TensorId};
use crate::ops::grouped_conv::{self, Pass, Storage};
use crate::ops::{
    avg_pool, dropout, ema, global_pool, grad_accumulate, linear, residual, scaled_act, se_gate, se_residual, sgd, softmax_xent, weight_std,
};
use crate::tune::Tuner;

/// The launch of one node of a lowered graph: its op's launcher over the planned tensors, the
/// conv tiles from `tuner`.
pub(super) fn launch(gpu: &Gpu, tuner: &Tuner, node: &Node, tensors: &[Option<GpuTensor>]) -> Result<Launch> {
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
        Op::Conv(s) => {
            let tile = tuner.conv_tile(gpu, Pass::Forward, s, Storage::of(i[1]));
            grouped_conv::forward(gpu, s, i[0], i[1], i.get(2).copied(), o[0], tile)
        }
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
        Op::ConvBackwardInput(s, acc) => {
            let tile = tuner.conv_tile(gpu, Pass::BackwardInput, s, Storage::of(i[1]));
            grouped_conv::backward_input(gpu, s, i[0], i[1], o[0], *acc, tile)
        }
        Op::ConvBackwardWeight(s) => {
            let (db, partials) = (s.bias.then(|| o[1]), o.get(1 + s.bias as usize).copied());
            let storage = match (Storage::of(i[0]), Storage::of(i[1])) {
                (Storage::Buffer, Storage::Buffer) => Storage::Buffer,
                _ => Storage::Texture,
            };
            let tile = tuner.conv_tile(gpu, Pass::BackwardWeight, s, storage);
            grouped_conv::backward_weight(gpu, s, i[0], i[1], o[0], db, partials, tile)
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
