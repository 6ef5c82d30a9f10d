//! Builds the forward graph of an NFNet from its config, with timm's parameter names.
//!
//! ```text
//! stem:    conv1 (3x3/2) act conv2 act conv3 act conv4 (3x3/2)            (no act after conv4)
//! block:   h = act(x) * beta
//!          shortcut = transition ? conv1x1(avgpool2x2(h) if strided) : x
//!          r = conv1 (1x1) -> act -> conv2 (3x3, groups, stride) -> act -> conv2b (3x3, groups)
//!              -> act -> conv3 (1x1) -> SE: r * 2 * sigmoid(fc2(relu(fc1(mean(r)))))
//!              -> drop path (training)
//!          y = alpha * skipinit_gain * r + shortcut
//! head:    final_conv (1x1) -> act -> mean -> dropout (training) -> fc
//! ```
//! Every conv is a WS conv with weight, bias and gain: `weight_std` then `grouped_conv` on its
//! standardized weights `w_hat` (how the conv kernels lay them out is the plan's business).
//! In the DeepMind flavour `act` is gamma * GELU and padding is TF 'SAME'; in the timm flavour
//! `act` is plain, gamma multiplies every WS conv instead, and padding is symmetric.

use super::config::{BlockLayout, Flavour, ModelConfig};
use crate::error::{Error, Result};
use crate::graph::{Graph, Init, Op, ParamInfo, Role, TensorId};
use crate::ops::avg_pool::AvgPool;
use crate::ops::dropout::{Dropout, Granularity};
use crate::ops::global_pool::GlobalPool;
use crate::ops::grouped_conv::Conv2d;
use crate::ops::linear::Linear;
use crate::ops::residual::Residual;
use crate::ops::scaled_act::{Activation, ScaledAct};
use crate::ops::se_gate::SeGate;
use crate::ops::se_residual::SeResidual;
use crate::ops::softmax_xent::SoftmaxXent;
use crate::ops::weight_std::WeightStd;

/// What the graph is for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Logits only: no dropout, no stochastic depth, no loss.
    Eval,
    /// Logits and the loss (with label smoothing) ready for `autodiff::backward`, with dropout
    /// and stochastic depth as the config sets them. With `mixed_targets` the labels are
    /// `[N, 3]` MixUp/CutMix pairs (see `ops::softmax_xent`).
    Train { label_smoothing: f32, mixed_targets: bool },
}

/// The graph of one model at one batch size and resolution, with the ids a caller needs.
pub struct Model {
    pub config: ModelConfig,
    pub graph: Graph,
    pub input: TensorId,
    pub logits: TensorId,
    /// Labels and loss in `Mode::Train`.
    pub labels: Option<TensorId>,
    pub loss: Option<TensorId>,
    /// The loss gradient written by the loss node, the seed of the backward pass.
    pub dlogits: Option<TensorId>,
}

struct Builder<'a> {
    cfg: &'a ModelConfig,
    g: Graph,
    mode: Mode,
    /// Counts dropout layers, so each gets its own random stream.
    streams: u32,
    seed: u64,
}

impl Builder<'_> {
    fn param(&mut self, name: String, shape: &[usize], init: Init, weight_decay: bool) -> TensorId {
        let head = name.starts_with("head.");
        self.g.tensor(name, shape, Role::Param(ParamInfo { init, weight_decay, head }))
    }

    fn nchw(&self, t: TensorId) -> [usize; 4] {
        let s = self.g.shape(t);
        [s[0], s[1], s[2], s[3]]
    }

    /// A WS conv: parameters `{name}.weight`, `.bias`, `.gain`, then standardize and convolve.
    fn ws_conv(&mut self, name: &str, x: TensorId, out: usize, k: usize, stride: usize, groups: usize, gain_init: f32) -> TensorId {
        let x_shape = self.nchw(x);
        let spec = match self.cfg.flavour {
            Flavour::DeepMind => Conv2d::same(x_shape, out, k, stride),
            Flavour::Timm => Conv2d::symmetric(x_shape, out, k, stride),
        }
        .groups(groups)
        .with_bias(true);
        let fan_in = x_shape[1] / groups * k * k;
        let weight = self.param(format!("{name}.weight"), &spec.w_shape(), Init::FanIn, true);
        let bias = self.param(format!("{name}.bias"), &[out], Init::Const(0.0), false);
        let gain = self.param(format!("{name}.gain"), &[out, 1, 1, 1], Init::Const(gain_init), false);
        let multiplier = match self.cfg.flavour {
            Flavour::DeepMind => 1.0,
            Flavour::Timm => self.cfg.gamma() as f32,
        };
        let ws = WeightStd {
            k: out,
            fan_in,
            eps: self.cfg.ws_eps as f32,
            form: self.cfg.ws.form(),
            multiplier,
        };
        let standardized = self.g.node(
            format!("{name}.ws"),
            Op::WeightStd(ws),
            &[weight, gain],
            &[("w_hat", &spec.w_shape()), ("stats", &[out, 2])],
        );
        self.g.node(
            name.to_string(),
            Op::Conv(spec),
            &[x, standardized[0], bias],
            &[("y", &spec.y_shape())],
        )[0]
    }

    /// The block activation: gamma * act(x) * scale in the DeepMind flavour, act(x) * scale in timm's.
    fn act(&mut self, name: &str, x: TensorId, scale: f64) -> TensorId {
        let gamma = match self.cfg.flavour {
            Flavour::DeepMind => self.cfg.gamma(),
            Flavour::Timm => 1.0,
        };
        let spec = ScaledAct {
            act: self.cfg.activation.activation(),
            gamma: (gamma * scale) as f32,
        };
        let shape = self.g.shape(x).to_vec();
        self.g.node(name.to_string(), Op::Act(spec), &[x], &[("y", &shape)])[0]
    }

    fn dropout(&mut self, name: &str, x: TensorId, rate: f64, granularity: Granularity) -> TensorId {
        let (rescale, keep) = match granularity {
            Granularity::Element => (true, 1.0 - rate),
            // Drop path: DeepMind keeps the expectation off (no 1/keep), timm rescales.
            Granularity::Sample { .. } => (self.cfg.flavour == Flavour::Timm, 1.0 - rate),
        };
        self.streams += 1;
        let spec = Dropout {
            keep: keep as f32,
            rescale,
            granularity,
            seed: self.seed,
            stream: self.streams,
        };
        let shape = self.g.shape(x).to_vec();
        let info = self.g.step_info();
        self.g.node(name.to_string(), Op::Dropout(spec), &[info, x], &[("y", &shape)])[0]
    }

    fn stem(&mut self, x: TensorId) -> TensorId {
        let chans = self.cfg.stem.clone();
        let mut y = x;
        for (i, (&c, stride)) in chans.iter().zip([2, 1, 1, 2]).enumerate() {
            y = self.ws_conv(&format!("stem.conv{}", i + 1), y, c, 3, stride, 1, 1.0);
            if i < 3 {
                y = self.act(&format!("stem.act{}", i + 2), y, 1.0);
            }
        }
        y
    }

    fn block(&mut self, b: &BlockLayout, x: TensorId) -> TensorId {
        let p = format!("stages.{}.{}", b.stage, b.index);
        let h = self.act(&format!("{p}.act1"), x, b.beta);
        let shortcut = if b.transition {
            let mut s = h;
            if b.stride > 1 {
                let [n, c, hh, ww] = self.nchw(h);
                let pool = AvgPool { n, c, h: hh, w: ww };
                s = self
                    .g
                    .node(format!("{p}.downsample.pool"), Op::AvgPool(pool), &[h], &[("y", &pool.y_shape())])[0];
            }
            self.ws_conv(&format!("{p}.downsample.conv"), s, b.out_chs, 1, 1, 1, 1.0)
        } else {
            x
        };
        let mut r = self.ws_conv(&format!("{p}.conv1"), h, b.mid_chs, 1, 1, 1, 1.0);
        r = self.act(&format!("{p}.act2"), r, 1.0);
        r = self.ws_conv(&format!("{p}.conv2"), r, b.mid_chs, 3, b.stride, b.groups, 1.0);
        r = self.act(&format!("{p}.act2b"), r, 1.0);
        r = self.ws_conv(&format!("{p}.conv2b"), r, b.mid_chs, 3, 1, b.groups, 1.0);
        r = self.act(&format!("{p}.act3"), r, 1.0);
        // timm's own flavour starts the residual branch at zero through conv3's gain.
        let gain_init = if self.cfg.flavour == Flavour::Timm { 0.0 } else { 1.0 };
        r = self.ws_conv(&format!("{p}.conv3"), r, b.out_chs, 1, 1, 1, gain_init);
        let [n, c, hh, ww] = self.nchw(r);
        let drop_path = matches!(self.mode, Mode::Train { .. }) && b.drop_path > 0.0;
        let excite = (b.se_hidden > 0).then(|| self.squeeze_excite(&format!("{p}.attn_last"), r, b.se_hidden));
        let skip = (self.cfg.flavour == Flavour::DeepMind).then(|| self.param(format!("{p}.skipinit_gain"), &[], Init::Const(0.0), false));
        let residual = Residual {
            alpha: self.cfg.alpha as f32,
        };
        // With nothing between the SE gate and the add, one kernel does both.
        if let (Some((s, gate)), false) = (excite, drop_path) {
            let mut inputs = vec![s, r, shortcut];
            inputs.extend(skip);
            let spec = SeResidual { gate, residual };
            return self.g.node(p, Op::SeResidual(spec), &inputs, &[("y", &[n, c, hh, ww])])[0];
        }
        if let Some((s, gate)) = excite {
            r = self
                .g
                .node(format!("{p}.attn_last.gate"), Op::SeGate(gate), &[s, r], &[("y", &[n, c, hh, ww])])[0];
        }
        if drop_path {
            r = self.dropout(
                &format!("{p}.drop_path"),
                r,
                b.drop_path,
                Granularity::Sample { per_sample: c * hh * ww },
            );
        }
        let mut inputs = vec![r, shortcut];
        inputs.extend(skip);
        self.g.node(p, Op::Residual(residual), &inputs, &[("y", &[n, c, hh, ww])])[0]
    }

    /// SE's squeeze and excitation: the gate logits `s [N, C]` and the gate that applies them to `r`.
    fn squeeze_excite(&mut self, p: &str, r: TensorId, hidden: usize) -> (TensorId, SeGate) {
        let [n, c, h, w] = self.nchw(r);
        let pool = GlobalPool { n, c, h, w };
        let squeezed = self.g.node(format!("{p}.pool"), Op::GlobalPool(pool), &[r], &[("y", &[n, c])])[0];
        let s = self.linear(&format!("{p}.fc1"), squeezed, hidden, Init::FanIn, true);
        let relu = ScaledAct {
            act: Activation::Relu,
            gamma: 1.0,
        };
        let s = self.g.node(format!("{p}.act"), Op::Act(relu), &[s], &[("y", &[n, hidden])])[0];
        let s = self.linear(&format!("{p}.fc2"), s, c, Init::FanIn, true);
        let gate = SeGate {
            n,
            c,
            h,
            w,
            gain: self.cfg.attn_gain as f32,
        };
        (s, gate)
    }

    /// A linear layer; SE's projections keep timm's 1x1-conv weight shape `[O, I, 1, 1]`.
    fn linear(&mut self, name: &str, x: TensorId, out: usize, init: Init, conv_shaped: bool) -> TensorId {
        let [n, i] = [self.g.shape(x)[0], self.g.shape(x)[1]];
        let wshape: Vec<usize> = if conv_shaped { vec![out, i, 1, 1] } else { vec![out, i] };
        let weight = self.param(format!("{name}.weight"), &wshape, init, true);
        let bias = self.param(format!("{name}.bias"), &[out], Init::Const(0.0), false);
        let spec = Linear {
            n,
            in_features: i,
            out_features: out,
            bias: true,
        };
        self.g
            .node(name.to_string(), Op::Linear(spec), &[x, weight, bias], &[("y", &[n, out])])[0]
    }
}

/// Builds the graph of `config` for a batch of `n` images of `(height, width)`. `seed` seeds
/// dropout and stochastic depth.
pub fn build(config: &ModelConfig, n: usize, (height, width): (usize, usize), mode: Mode, seed: u64) -> Result<Model> {
    if n == 0 {
        return Err(Error::invalid("model", "batch size 0: expected at least 1 image"));
    }
    if height == 0 || width == 0 {
        return Err(Error::invalid(
            "model",
            format!("input resolution {height}x{width}: expected at least 1x1 pixels"),
        ));
    }
    let blocks = config.blocks()?;
    let mut b = Builder {
        cfg: config,
        g: Graph::default(),
        mode,
        streams: 0,
        seed,
    };
    let input = b.g.tensor("input", &[n, 3, height, width], Role::Input);
    let mut x = b.stem(input);
    for block in &blocks {
        x = b.block(block, x);
    }
    if config.final_conv > 0 {
        x = b.ws_conv("final_conv", x, config.final_conv, 1, 1, 1, 1.0);
    }
    // DeepMind keeps gamma in the final activation; timm's own flavour applies it plain.
    x = b.act("final_act", x, 1.0);
    let [_, c, h, w] = b.nchw(x);
    let pool = GlobalPool { n, c, h, w };
    let mut features = b.g.node("head.global_pool", Op::GlobalPool(pool), &[x], &[("y", &[n, c])])[0];
    if matches!(mode, Mode::Train { .. }) && config.dropout > 0.0 {
        features = b.dropout("head.drop", features, config.dropout, Granularity::Element);
    }
    let logits = b.linear("head.fc", features, config.num_classes, Init::Normal(0.01), false);
    let (mut labels, mut loss, mut dlogits) = (None, None, None);
    if let Mode::Train {
        label_smoothing,
        mixed_targets,
    } = mode
    {
        let spec = SoftmaxXent {
            n,
            classes: config.num_classes,
            smoothing: label_smoothing,
            mixed: mixed_targets,
        };
        let l = b.g.tensor("labels", &spec.labels_shape(), Role::Labels);
        let out = b.g.node(
            "loss",
            Op::SoftmaxXent(spec),
            &[logits, l],
            &[("loss", &[1]), ("dlogits", &[n, config.num_classes])],
        );
        (labels, loss, dlogits) = (Some(l), Some(out[0]), Some(out[1]));
    }
    Ok(Model {
        config: config.clone(),
        graph: b.g,
        input,
        logits,
        labels,
        loss,
        dlogits,
    })
}
