//! The entry points of the fuzz targets (`fuzz/`, `cargo +nightly fuzz run <target>`): each
//! takes the bytes of one file as a user could hand it to the engine and runs every check the
//! engine makes on such a file before any GPU work. Whatever the bytes, each returns (an error
//! for bad input), never panics, hangs or allocates more than the file's size justifies. The
//! ordinary tests replay the committed corpora (`fuzz/corpus/<target>/`) through the same
//! functions, so CI needs no nightly toolchain.

use crate::data::cifar::Cifar;
use crate::data::{folder, Source};
use crate::error::Result;
use crate::io::{check_finite, read_safetensors_bytes};
use crate::model::checkpoint::CheckpointFile;
use crate::model::forward::{check_input, check_labels};
use crate::model::recipe::inference_graph;
use crate::model::weights::{self, Head, Weights};
use crate::model::ModelConfig;
use crate::train::{TrainOptions, TrainState};

/// The targets, by name (the fuzz target and corpus folder of each).
pub const TARGETS: [(&str, fn(&[u8]) -> Result<()>); 6] = [
    ("weights", weights),
    ("checkpoint", checkpoint),
    ("model_config", model_config),
    ("input_file", input_file),
    ("cifar", cifar),
    ("image", image),
];

/// The model the weights target checks files against: the smallest of the family's shape (one
/// block, a few channels), so that a whole weights file is a small seed.
pub const TINY_MODEL: &str = r#"{"name": "tiny", "flavour": "timm", "depths": [1], "widths": [8], "stem": [4, 4, 4, 8],
 "group_width": 4, "bottleneck": 0.5, "se_ratio": 0.5, "activation": "relu", "final_conv": 0, "ws": "timm",
 "ws_eps": 1e-05, "num_classes": 10}"#;

/// A weights file (safetensors, timm's names) checked against [`TINY_MODEL`], as `--init`
/// and `--weights` check it.
pub fn weights(bytes: &[u8]) -> Result<()> {
    let weights = Weights {
        source: "fuzz.safetensors".into(),
        tensors: read_safetensors_bytes(bytes, "fuzz.safetensors")?,
    };
    let tiny = ModelConfig::from_json(TINY_MODEL)?;
    let graph = inference_graph(&tiny, 1, (32, 32))?;
    weights::check(&graph.graph, &weights, Head::Fresh(0)).map(|_| ())
}

/// A training checkpoint: its options (the model config among them) and state parsed and
/// validated, its parameters checked against the model it names, as `--resume`, `eval` and
/// `predict` read it.
pub fn checkpoint(bytes: &[u8]) -> Result<()> {
    let file = CheckpointFile::from_bytes(bytes, "fuzz.safetensors")?;
    let options: TrainOptions = file.field("options")?;
    let _: TrainState = file.field("state")?;
    let classes = file.classes()?;
    options.validate()?;
    if classes.len() != options.model.num_classes {
        return Err(crate::Error::invalid("checkpoint", "class names and class count differ"));
    }
    let graph = inference_graph(&options.model, 1, (32, 32))?;
    let params = file.weights(options.ema_decay.is_some());
    weights::check(&graph.graph, &params, Head::Strict).map(|_| ())
}

/// A JSON model config (`--model FILE.json`): parsed, validated and built into its graph.
pub fn model_config(bytes: &[u8]) -> Result<()> {
    let text = std::str::from_utf8(bytes).map_err(|e| crate::Error::invalid("model config", e))?;
    let config = ModelConfig::from_json(text)?;
    inference_graph(&config, 1, (32, 32)).map(|_| ())
}

/// The input file of `nfnet forward`: `input` (N,3,H,W f32, finite) and optional `labels`.
pub fn input_file(bytes: &[u8]) -> Result<()> {
    let file = read_safetensors_bytes(bytes, "fuzz.safetensors")?;
    let input = file
        .get("input")
        .ok_or_else(|| crate::Error::invalid("input", "no `input` tensor"))?;
    let (n, _, _) = check_input(&input.shape)?;
    check_finite("fuzz.safetensors", "input", input.as_f32("input")?)?;
    match file.get("labels") {
        Some(labels) => check_labels(labels, n, 10).map(|_| ()),
        None => Ok(()),
    }
}

/// A CIFAR-10 batch file: its records checked, then the first few read as images.
pub fn cifar(bytes: &[u8]) -> Result<()> {
    let data = Cifar::from_bytes(bytes.to_vec(), "fuzz.bin")?;
    for i in 0..data.len().min(4) {
        let _ = (data.label(i), data.image(i));
    }
    Ok(())
}

/// An image file as an image folder decodes it (any format the `image` crate reads).
pub fn image(bytes: &[u8]) -> Result<()> {
    folder::decode_bytes(bytes, 64).map(|_| ()).map_err(|reason| crate::Error::Format {
        path: "fuzz image".into(),
        message: reason,
    })
}
