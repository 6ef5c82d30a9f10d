//! Model configs: one type for the whole NFNet family, the built-in variants, JSON files, and the
//! derived layout (every block's channels, groups, stride, beta) that the graph builder, the
//! parameter count and the multiply-add count all read.
//!
//! Two flavours, as the two reference implementations write the same network:
//! - `deepmind` (timm's `dm_nfnet_*`, DeepMind's weights): gamma inside every activation, TF
//!   'SAME' padding, a scalar `skipinit_gain` per block (init 0).
//! - `timm` (timm's `nfnet_*`, `nfnet_l0`, `test_nfnet`): gamma folded into every WS conv's
//!   scale, plain activations, symmetric padding, no skip gain (`conv3.gain` starts at 0).
//!
//! The WS form and the GELU form are separate choices; the built-in configs follow timm, so
//! timm's weights give timm's outputs.

use crate::error::{Error, Result};
use crate::ops::scaled_act::Activation;
use crate::ops::weight_std::WsForm;
use serde::{Deserialize, Serialize};

/// Where gamma, padding and skip gains live (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    DeepMind,
    Timm,
}

/// The activation, by the name timm and DeepMind use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActName {
    /// Exact GELU (timm's `F.gelu`).
    Gelu,
    /// tanh-approximated GELU (DeepMind's `jax.nn.gelu`).
    GeluTanh,
    Silu,
    Relu,
}

impl ActName {
    pub fn activation(self) -> Activation {
        match self {
            ActName::Gelu => Activation::Gelu,
            ActName::GeluTanh => Activation::GeluTanh,
            ActName::Silu => Activation::Silu,
            ActName::Relu => Activation::Relu,
        }
    }
}

/// The WS formula, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WsName {
    Timm,
    DeepMind,
}

impl WsName {
    pub fn form(self) -> WsForm {
        match self {
            WsName::Timm => WsForm::Timm,
            WsName::DeepMind => WsForm::DeepMind,
        }
    }
}

fn default_alpha() -> f64 {
    0.2
}
fn default_se_ratio() -> f64 {
    0.5
}
fn default_divisor() -> usize {
    8
}
fn default_attn_gain() -> f64 {
    2.0
}
fn default_ws_eps() -> f64 {
    1e-5
}
fn default_classes() -> usize {
    1000
}
fn default_stem() -> Vec<usize> {
    vec![16, 32, 64, 128]
}

/// The largest config [`ModelConfig::validate`] accepts.
pub const MAX_STAGES: usize = 8;
pub const MAX_DEPTH: usize = 256;
pub const MAX_CHANNELS: usize = 1 << 16;
pub const MAX_CLASSES: usize = 1 << 20;

/// One NFNet. Every field is in the JSON form (`nfnet info --model FILE.json`); the ones with
/// defaults may be left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub flavour: Flavour,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Output channels per stage.
    pub widths: Vec<usize>,
    /// Output channels of the four stem convs (strides 2, 1, 1, 2).
    #[serde(default = "default_stem")]
    pub stem: Vec<usize>,
    /// Channels per group of the 3x3 convs.
    pub group_width: usize,
    /// Bottleneck width as a fraction of the block's output width.
    pub bottleneck: f64,
    /// SE hidden width as a fraction of the block's output width (0: no SE).
    #[serde(default = "default_se_ratio")]
    pub se_ratio: f64,
    /// SE hidden width is rounded to a multiple of this.
    #[serde(default = "default_divisor")]
    pub se_divisor: usize,
    /// Mid widths are rounded to a multiple of this (timm's `ch_div`).
    #[serde(default = "default_divisor")]
    pub ch_div: usize,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// SE's output multiplier (2 in NFNets).
    #[serde(default = "default_attn_gain")]
    pub attn_gain: f64,
    pub activation: ActName,
    /// Width of the final 1x1 conv (0: none).
    pub final_conv: usize,
    pub ws: WsName,
    #[serde(default = "default_ws_eps")]
    pub ws_eps: f64,
    /// Dropout before the classifier (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Stochastic depth rate of the last block (training only).
    #[serde(default)]
    pub stochastic_depth: f64,
    #[serde(default = "default_classes")]
    pub num_classes: usize,
}

/// timm's `make_divisible`: `v` rounded to the nearest multiple of `divisor` (at least
/// `divisor`), bumped up if rounding lost more than `1 - round_limit` of it.
pub fn make_divisible(v: f64, divisor: usize, round_limit: f64) -> usize {
    let d = divisor as f64;
    let mut new_v = (divisor as i64).max(((v + d / 2.0) as i64) / divisor as i64 * divisor as i64) as usize;
    if (new_v as f64) < round_limit * v {
        new_v += divisor;
    }
    new_v
}

/// The derived shape of one NF block.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockLayout {
    pub stage: usize,
    pub index: usize,
    pub in_chs: usize,
    pub out_chs: usize,
    pub mid_chs: usize,
    pub groups: usize,
    pub stride: usize,
    /// `1 / expected_std` of the block's input.
    pub beta: f64,
    /// Whether the shortcut is a (pooled) 1x1 conv of the activated input.
    pub transition: bool,
    /// SE hidden width (0: no SE).
    pub se_hidden: usize,
    /// Stochastic depth rate in training.
    pub drop_path: f64,
}

impl ModelConfig {
    fn base(name: &str, depths: [usize; 4], widths: [usize; 4]) -> ModelConfig {
        ModelConfig {
            name: name.into(),
            flavour: Flavour::DeepMind,
            depths: depths.to_vec(),
            widths: widths.to_vec(),
            stem: vec![16, 32, 64, widths[0] / 2],
            group_width: 128,
            bottleneck: 0.5,
            se_ratio: 0.5,
            se_divisor: 8,
            ch_div: 8,
            alpha: 0.2,
            attn_gain: 2.0,
            activation: ActName::Gelu,
            final_conv: 2 * widths[3],
            ws: WsName::Timm,
            ws_eps: 1e-5,
            dropout: 0.0,
            stochastic_depth: 0.0,
            num_classes: 1000,
        }
    }

    /// A built-in config by name: `f0`..`f7` (timm's `dm_nfnet_f*`), `f0+`..`f7+` (DeepMind's
    /// wider F+), `nfnet_l0`, `test_nfnet` (timm's test model), and small models for tests and
    /// CPU-only machines: `nano` (DeepMind flavour) and `nano_timm`.
    pub fn builtin(name: &str) -> Option<ModelConfig> {
        let key = name.to_ascii_lowercase();
        let key = key.strip_prefix("dm_nfnet_").unwrap_or(&key);
        // DeepMind's dropout per variant (base.py); timm's models default to 0 and users set it.
        let dropouts = [0.2, 0.3, 0.4, 0.4, 0.5, 0.5, 0.5, 0.5];
        let f = |k: usize, plus: bool| {
            let widths = if plus { [384, 768, 2048, 2048] } else { [256, 512, 1536, 1536] };
            let depths = [1, 2, 6, 3].map(|d| d * (k + 1));
            let mut c = ModelConfig::base(&format!("f{k}{}", if plus { "+" } else { "" }), depths, widths);
            c.dropout = dropouts[k];
            c
        };
        let cfg = match key {
            "nfnet_l0" => ModelConfig {
                name: "nfnet_l0".into(),
                flavour: Flavour::Timm,
                stem: vec![16, 32, 64, 128],
                group_width: 64,
                bottleneck: 0.25,
                se_ratio: 0.25,
                activation: ActName::Silu,
                final_conv: 2304,
                ..ModelConfig::base("nfnet_l0", [1, 2, 6, 3], [256, 512, 1536, 1536])
            },
            "test_nfnet" => ModelConfig {
                name: "test_nfnet".into(),
                flavour: Flavour::Timm,
                stem: vec![16, 32, 64, 128],
                group_width: 8,
                bottleneck: 0.25,
                se_ratio: 0.25,
                activation: ActName::Silu,
                final_conv: 192,
                ..ModelConfig::base("test_nfnet", [1, 1, 1, 1], [32, 64, 96, 128])
            },
            "nano" => ModelConfig {
                name: "nano".into(),
                stem: vec![8, 8, 16, 16],
                group_width: 8,
                final_conv: 128,
                num_classes: 10,
                ..ModelConfig::base("nano", [1, 1, 1, 1], [32, 32, 64, 64])
            },
            "nano_timm" => ModelConfig {
                name: "nano_timm".into(),
                flavour: Flavour::Timm,
                stem: vec![8, 8, 16, 16],
                group_width: 8,
                activation: ActName::Silu,
                final_conv: 128,
                num_classes: 10,
                ..ModelConfig::base("nano_timm", [1, 1, 1, 1], [32, 32, 64, 64])
            },
            _ => {
                let plus = key.ends_with('+');
                let k: usize = key.strip_prefix('f')?.trim_end_matches('+').parse().ok()?;
                if k > 7 {
                    return None;
                }
                f(k, plus)
            }
        };
        Some(cfg)
    }

    /// The names `builtin` knows, for help texts.
    pub fn builtin_names() -> Vec<String> {
        let mut v: Vec<String> = (0..8).map(|k| format!("f{k}")).collect();
        v.extend((0..8).map(|k| format!("f{k}+")));
        v.extend(["nfnet_l0", "test_nfnet", "nano", "nano_timm"].map(String::from));
        v
    }

    /// A built-in name or a path to a JSON config.
    pub fn load(name_or_path: &str) -> Result<ModelConfig> {
        if let Some(cfg) = ModelConfig::builtin(name_or_path) {
            return Ok(cfg);
        }
        let path = std::path::Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "json") || path.exists() {
            let bytes = std::fs::read(path).map_err(|source| Error::Io {
                path: name_or_path.into(),
                error: source,
            })?;
            let Ok(text) = String::from_utf8(bytes) else {
                // Most often a weights or checkpoint file given in its place.
                return Err(Error::Format {
                    path: name_or_path.into(),
                    message: "not a JSON model config (a binary file: weights go to --weights, --init or --checkpoint)".into(),
                });
            };
            return ModelConfig::from_json(&text).map_err(|e| match e {
                Error::Invalid { op, message } => Error::Invalid {
                    op: format!("{op} ({name_or_path})"),
                    message,
                },
                other => other,
            });
        }
        Err(Error::invalid(
            "model config",
            format!(
                "{name_or_path:?} is neither a built-in model ({}) nor a JSON file",
                ModelConfig::builtin_names().join(", ")
            ),
        ))
    }

    /// Parses and validates a JSON config.
    pub fn from_json(text: &str) -> Result<ModelConfig> {
        let cfg: ModelConfig =
            serde_json::from_str(text).map_err(|e| Error::invalid("model config", format!("invalid JSON config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serializes")
    }

    /// The stage strides: stage 0 keeps the stem's resolution (the stem already divides by 4).
    pub fn stage_stride(stage: usize) -> usize {
        if stage == 0 {
            1
        } else {
            2
        }
    }

    /// Every block's derived shape, in network order, or a typed error naming the impossible part.
    pub fn blocks(&self) -> Result<Vec<BlockLayout>> {
        self.validate()?;
        let total: usize = self.depths.iter().sum();
        let mut out = Vec::with_capacity(total);
        let mut in_chs = *self.stem.last().expect("validated: a stem");
        let mut expected_var = 1.0f64;
        let mut global = 0;
        for (stage, (&depth, &width)) in self.depths.iter().zip(&self.widths).enumerate() {
            for index in 0..depth {
                let stride = if index == 0 { ModelConfig::stage_stride(stage) } else { 1 };
                let mid = self
                    .mid_width(width)
                    .map_err(|m| Error::invalid("model config", format!("stage {stage}: {m}")))?;
                let se_hidden = if self.se_ratio > 0.0 {
                    make_divisible(width as f64 * self.se_ratio, self.se_divisor, 0.0)
                } else {
                    0
                };
                let drop_path = match self.flavour {
                    // DeepMind: rate * i / N over all blocks (0-based).
                    Flavour::DeepMind => self.stochastic_depth * global as f64 / total as f64,
                    // timm: linspace(0, rate, N).
                    Flavour::Timm if total > 1 => self.stochastic_depth * global as f64 / (total - 1) as f64,
                    Flavour::Timm => 0.0,
                };
                out.push(BlockLayout {
                    stage,
                    index,
                    in_chs,
                    out_chs: width,
                    mid_chs: mid,
                    groups: mid / self.group_width,
                    stride,
                    beta: 1.0 / expected_var.sqrt(),
                    transition: in_chs != width || stride != 1,
                    se_hidden,
                    drop_path,
                });
                if index == 0 {
                    expected_var = 1.0;
                }
                expected_var += self.alpha * self.alpha;
                in_chs = width;
                global += 1;
            }
        }
        Ok(out)
    }

    /// The bottleneck width of a block of output width `width`, as both references compute it:
    /// `width * bottleneck` rounded to `ch_div` (timm's `make_divisible`), then down to a whole
    /// number of groups (DeepMind: `group_width * (width // group_width)`). So F0+'s first stage,
    /// 384 * 0.5 = 192, runs one group of 128.
    ///
    /// Impossible: a stage width that is not a multiple of the group width (no reference config
    /// has one, and the grouped convs could not split it), or a bottleneck narrower than a group.
    fn mid_width(&self, width: usize) -> std::result::Result<usize, String> {
        if width % self.group_width != 0 {
            return Err(format!(
                "the width {width} is not divisible by the group width {}",
                self.group_width
            ));
        }
        let rounded = make_divisible(width as f64 * self.bottleneck, self.ch_div, 0.9);
        let groups = rounded / self.group_width;
        if groups == 0 {
            return Err(format!(
                "the bottleneck width {rounded} (width {width} x bottleneck {}) is narrower than one group of {}",
                self.bottleneck, self.group_width
            ));
        }
        Ok(groups * self.group_width)
    }

    /// Checks every field and every combination, so that a config that passes builds a graph.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("model config", format!("{}: {m}", self.name)));
        if self.depths.is_empty() || self.depths.len() != self.widths.len() {
            return bad(format!(
                "depths ({}) and widths ({}) must be non-empty and the same length",
                self.depths.len(),
                self.widths.len()
            ));
        }
        if self.depths.contains(&0) || self.widths.contains(&0) {
            return bad("every stage needs at least one block and one channel".into());
        }
        if self.stem.len() != 4 || self.stem.contains(&0) {
            return bad(format!("the stem has four convs with channels > 0, got {:?}", self.stem));
        }
        if self.group_width == 0 || !(self.bottleneck > 0.0) {
            return bad(format!(
                "group width {} and bottleneck {} must be > 0",
                self.group_width, self.bottleneck
            ));
        }
        if self.ch_div == 0 || self.se_divisor == 0 || self.num_classes == 0 {
            return bad("ch_div, se_divisor and num_classes must be > 0".into());
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.0..1.0).contains(&self.stochastic_depth) {
            return bad(format!(
                "dropout {} and stochastic depth {} must be in [0, 1)",
                self.dropout, self.stochastic_depth
            ));
        }
        if !(self.se_ratio >= 0.0) || !(self.ws_eps >= 0.0) || !self.alpha.is_finite() {
            return bad("se_ratio and ws_eps must be >= 0 and alpha finite".into());
        }
        // Far above any NFNet (F7: 4 stages, 48 blocks in one, 3072 channels), low enough that
        // no count in the graph can overflow: a config file that claims more is an error, not
        // an allocation.
        let channels = (self.widths.iter().chain(&self.stem))
            .chain([&self.group_width, &self.ch_div, &self.se_divisor, &self.final_conv])
            .max()
            .copied()
            .unwrap_or(0);
        if self.depths.len() > MAX_STAGES || self.depths.iter().any(|&d| d > MAX_DEPTH) || channels > MAX_CHANNELS {
            return bad(format!(
                "at most {MAX_STAGES} stages of {MAX_DEPTH} blocks and {MAX_CHANNELS} channels, got depths {:?} and {channels} channels",
                self.depths
            ));
        }
        if self.num_classes > MAX_CLASSES {
            return bad(format!("at most {MAX_CLASSES} classes, got {}", self.num_classes));
        }
        let finite = [self.bottleneck, self.se_ratio, self.alpha, self.attn_gain, self.ws_eps];
        if !finite.iter().all(|v| v.is_finite() && v.abs() <= 1e6) {
            return bad(format!(
                "bottleneck, se_ratio, alpha, attn_gain and ws_eps must be finite numbers of sensible size, got {finite:?}"
            ));
        }
        for &w in &self.widths {
            if let Err(m) = self.mid_width(w) {
                return bad(m);
            }
        }
        Ok(())
    }

    /// Channels of the features the classifier reads.
    pub fn num_features(&self) -> usize {
        if self.final_conv > 0 {
            self.final_conv
        } else {
            *self.widths.last().expect("validated")
        }
    }

    /// The activation's gamma (the reference constants).
    pub fn gamma(&self) -> f64 {
        self.activation.activation().nfnet_gamma() as f64
    }
}
