//! The engine inside an application that already owns a wgpu device (a Bevy or egui renderer):
//! the application hands the engine clones of its device and queue, and the engine trains and
//! classifies on them, next to the application's own work.
//!
//!   cargo run --release --example app_device
//!
//! In Bevy the handles are the `RenderDevice`'s `wgpu_device()`, the `RenderQueue` and the
//! `RenderAdapterInfo`; in egui-wgpu, the `RenderState`'s `device`, `queue` and `adapter`.

use nfnet::data::{self, DataSpec, OpenOptions};
use nfnet::{Gpu, GpuOptions, ModelConfig, TrainOptions, Trainer, Tuner};

fn main() -> anyhow::Result<()> {
    // The application's side: an instance, an adapter and a device it opened for itself.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("my app"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;

    // The engine on that device: limits and features are the device's own.
    let gpu = Gpu::from_device(adapter.get_info(), device.clone(), queue.clone(), &GpuOptions::default())?;
    println!("engine on the application's device: {}", gpu.describe());

    let data = data::open(&DataSpec::new("synthetic:64:16"), &OpenOptions::default())?;
    let options = TrainOptions {
        epochs: 1,
        batch_size: 16,
        ..TrainOptions::new(ModelConfig::load("nano")?)
    };
    let mut trainer = Trainer::new(&gpu, &Tuner::off(), options, &data)?;
    trainer.train_epoch(&data, &mut |_| {})?;
    let probabilities = trainer.classifier()?.classify(&[data.val.image(0)])?;
    let (class, p) = nfnet::classify::top_k(&probabilities[0], 1)[0];
    println!("after one epoch: image 0 of the validation set is {class} ({:.0}%)", 100.0 * p);

    // The application keeps using its device as before.
    device.poll(wgpu::PollType::wait_indefinitely())?;
    Ok(())
}
