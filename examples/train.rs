//! A short training program on the library API: the same code runs on Vulkan, Metal or DX12
//! (and on lavapipe without a GPU), whatever adapter wgpu finds.
//!
//!   cargo run --release --example train [-- EPOCHS]
//!
//! It trains the small `nano` NFNet on 2,000 images of the embedded dataset, evaluates on 500
//! held-out ones after every epoch, and leaves a checkpoint, `metrics.csv` and `metrics.png` in
//! a temporary folder.

use nfnet::data;
use nfnet::nfnet::NfnetConfig;
use nfnet::train::{Event, TrainOptions, Trainer};
use nfnet::Gpu;

fn main() -> anyhow::Result<()> {
    let epochs = std::env::args().nth(1).map(|e| e.parse()).transpose()?.unwrap_or(2);
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());

    // The embedded dataset needs no download: 2000 training and 500 held-out images.
    let dataset = data::open("synthetic:2000:500", None, 0.0, 0, 64)?;
    let options = TrainOptions {
        epochs,
        ..TrainOptions::new(NfnetConfig::builtin("nano").expect("a built-in model"))
    };
    let mut trainer = Trainer::new(&gpu, options, &dataset, None)?;

    let out = std::env::temp_dir().join("nfnet-example-train");
    trainer.fit(&dataset, &out, &mut |event| match event {
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
