//! How an application embeds the engine: load a model once, then classify image files.
//!
//!   cargo run --release --example classify -- CHECKPOINT IMAGE...
//!
//! CHECKPOINT is a file `nfnet train` wrote (for example runs/nfnet/best.safetensors); it holds
//! the model config, the class names, the resolution and the evaluation crop. Loading builds
//! the inference plan and standardizes the weights once; each `classify` call then only uploads
//! images and runs the plan.

use nfnet::classify::top_k;
use nfnet::data::load_image;
use nfnet::model::checkpoint::CheckpointFile;
use nfnet::{Classifier, ClassifierOptions, Gpu, TuneOptions, Tuner};
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((checkpoint, images)) = args.split_first() else {
        anyhow::bail!("usage: classify CHECKPOINT IMAGE...");
    };
    let gpu = Gpu::new()?;
    let tuner = Tuner::new(TuneOptions::default());
    let checkpoint = CheckpointFile::read(Path::new(checkpoint))?;
    // The model, classes, resolution and crop come from the checkpoint; up to 8 images a pass.
    let options = ClassifierOptions {
        batch: 8,
        ..Default::default()
    };
    let classifier = Classifier::from_checkpoint(&gpu, &tuner, &checkpoint, &options)?;
    for path in images {
        let image = load_image(Path::new(path))?;
        let probabilities = &classifier.classify(&[image])?[0];
        let best: Vec<String> = top_k(probabilities, 3)
            .iter()
            .map(|&(c, p)| format!("{} {:.1}%", classifier.classes[c], 100.0 * p))
            .collect();
        println!("{path}: {}", best.join(", "));
    }
    Ok(())
}
