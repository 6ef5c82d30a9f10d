//! A short training program on the library API: the same code runs on Vulkan, Metal or DX12
//! (and on lavapipe without a GPU), whatever adapter wgpu finds.
//!
//!   cargo run --release --example train [-- EPOCHS]
//!
//! It trains the small `nano` NFNet on 2,000 images of the embedded dataset, evaluates on 500
//! held-out ones after every epoch, and leaves a checkpoint, `metrics.csv` and `metrics.png` in
//! a temporary folder.

use nfnet::data::{self, DataSpec, OpenOptions};
use nfnet::train::Event;
use nfnet::{Gpu, ModelConfig, TrainOptions, Trainer, TuneOptions, Tuner};

fn main() -> anyhow::Result<()> {
    let epochs = std::env::args().nth(1).map(|e| e.parse()).transpose()?.unwrap_or(2);
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    // Times the kernels' choices on the first run, then reads them from its cache.
    let tuner = Tuner::new(TuneOptions::default());

    // The embedded dataset needs no download: 2000 training and 500 held-out images.
    let data = data::open(&DataSpec::new("synthetic:2000:500"), &OpenOptions::default())?;
    let options = TrainOptions {
        epochs,
        ..TrainOptions::new(ModelConfig::load("nano")?)
    };
    let mut trainer = Trainer::new(&gpu, &tuner, options, &data)?;

    let out = std::env::temp_dir().join("nfnet-example-train");
    trainer.fit(&data, &out, &mut |event| match event {
        Event::Epoch(s) => println!(
            "epoch {}: train loss {:.3}, validation top-1 {:.1}%",
            s.epoch + 1,
            s.train_loss,
            100.0 * s.val.top1
        ),
        Event::Step {
            step, loss: Some(loss), ..
        } => println!("  step {step}: loss {loss:.3}"),
        _ => {}
    })?;
    println!("checkpoint, metrics.csv and metrics.png in {}", out.display());
    Ok(())
}
