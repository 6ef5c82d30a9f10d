//! The smallest end-to-end run: one grouped, strided convolution on the GPU, printed next to
//! the f64 CPU reference that defines it.
//!
//!   cargo run --release --example conv

use nfnet::ops::grouped_conv::{self, standalone, Conv2d, Storage};
use nfnet::{Gpu, GpuTensor};

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());

    // A 3x3, stride-2 conv of a 1x4x6x6 input into 4 channels, 2 groups, a bias, and TF 'SAME'
    // padding (0 before, 1 after on even sizes).
    let spec = Conv2d::same([1, 4, 6, 6], 4, 3, 2).groups(2).with_bias(true);
    let x: Vec<f32> = (0..spec.x_shape().iter().product::<usize>())
        .map(|i| (i % 7) as f32 - 3.0)
        .collect();
    let w: Vec<f32> = (0..spec.w_shape().iter().product::<usize>())
        .map(|i| (i % 5) as f32 * 0.1 - 0.2)
        .collect();
    let b = vec![0.5f32; spec.k];

    let tx = GpuTensor::from_f32(&gpu, "x", &spec.x_shape(), &x)?;
    let tw = GpuTensor::from_f32(&gpu, "w", &spec.w_shape(), &w)?;
    let tb = GpuTensor::from_f32(&gpu, "b", &[spec.k], &b)?;
    let ty = GpuTensor::zeros(&gpu, "y", &spec.y_shape())?;
    let launch = standalone::forward(&gpu, &spec, Storage::Buffer, &tx, &tw, Some(&tb), &ty)?;
    gpu.run(&[&launch])?;
    let got = ty.read_f32(&gpu)?;

    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let want = grouped_conv::cpu::forward(&spec, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
    println!("y {:?}", spec.y_shape());
    println!("{:>4} {:>12} {:>12}", "i", "gpu", "cpu (f64)");
    for (i, (g, c)) in got.iter().zip(&want).enumerate() {
        println!("{i:>4} {g:>12.6} {c:>12.6}");
    }
    Ok(())
}
