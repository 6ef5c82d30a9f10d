//! The `nfnet` command line.

use clap::{Parser, Subcommand};
use nfnet::graph::optim::{AgcConfig, AgcStyle, Optimizer};
use nfnet::nfnet::{forward, weights, NfnetConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "nfnet", version, about = "NFNets on any GPU that wgpu reaches")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter: name, backend, type, driver and the limits that matter.
    Devices,
    /// Print a model's layer table, parameter count, multiply-adds and planned memory.
    Info {
        /// A built-in model (f0..f7, f0+..f7+, nfnet_l0, test_nfnet, nano, nano_timm) or a JSON config.
        #[arg(long, default_value = "f0")]
        model: String,
        /// Input resolution (default: 256, the F0 test resolution).
        #[arg(long, default_value_t = 256)]
        resolution: usize,
        /// Batch size of the planned inference pass and training step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
    /// Run a checkpoint on a batch: logits, and with labels the loss, gradients and training steps.
    Forward(ForwardArgs),
}

#[derive(clap::Args)]
struct ForwardArgs {
    /// A built-in model or a JSON config.
    #[arg(long)]
    model: String,
    /// Weights in timm's safetensors layout.
    #[arg(long)]
    weights: PathBuf,
    /// A safetensors file with `input` (N,3,H,W f32) and optionally `labels` (N, int64).
    #[arg(long)]
    input: PathBuf,
    /// Where to write `logits`, `loss`, `grad.<name>` and `step<N>.<name>` (safetensors).
    #[arg(long)]
    output: PathBuf,
    /// Also write every parameter's gradient (needs labels).
    #[arg(long)]
    grads: bool,
    /// Train N steps on the same batch and write the parameters after them (needs labels).
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Coupled weight decay on the `*.weight` tensors.
    #[arg(long, default_value_t = 2e-5)]
    weight_decay: f32,
    /// AGC's lambda (0 turns AGC off).
    #[arg(long, default_value_t = 0.01)]
    agc_clip: f32,
    #[arg(long, default_value_t = 1e-3)]
    agc_eps: f32,
    /// Clip gains as whole vectors and the classifier bias too, as DeepMind's code (default: timm's units).
    #[arg(long)]
    agc_deepmind: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices => devices(),
        Command::Info { model, resolution, batch } => {
            let config = NfnetConfig::load(&model)?;
            print!("{}", nfnet::nfnet::describe(&config, resolution, batch)?);
            Ok(())
        }
        Command::Forward(args) => run_forward(&args),
    }
}

fn devices() -> anyhow::Result<()> {
    let adapters = nfnet::gpu::list_adapters();
    if adapters.is_empty() {
        // The same typed error the library gives, with its installation hint.
        nfnet::Gpu::new()?;
    }
    for a in &adapters {
        println!("{a}");
    }
    match nfnet::Gpu::new() {
        Ok(gpu) => println!("\nselected: {}", gpu.describe()),
        Err(e) => println!("\nselected: none ({e})"),
    }
    Ok(())
}

fn run_forward(args: &ForwardArgs) -> anyhow::Result<()> {
    let config = NfnetConfig::load(&args.model)?;
    let weights_file = weights::read_safetensors(&args.weights)?;
    let input_file = weights::read_safetensors(&args.input)?;
    let input = input_file
        .get("input")
        .ok_or_else(|| anyhow::anyhow!("{}: no tensor named `input` (N,3,H,W f32)", args.input.display()))?;
    let agc = (args.agc_clip > 0.0).then_some(AgcConfig {
        clip: args.agc_clip,
        eps: args.agc_eps,
        style: if args.agc_deepmind { AgcStyle::DeepMind } else { AgcStyle::Timm },
    });
    let options = forward::ForwardOptions {
        grads: args.grads,
        train_steps: args.train_steps,
        lr: args.lr,
        optimizer: Optimizer {
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            nesterov: true,
            agc,
        },
    };
    let gpu = nfnet::Gpu::new()?;
    let weights_name = args.weights.display().to_string();
    let out = forward::forward(
        &gpu,
        &config,
        &weights_file,
        &weights_name,
        input,
        input_file.get("labels"),
        &options,
    )?;
    weights::write_safetensors(&args.output, &out, None)?;
    let loss = out
        .get("loss")
        .and_then(|l| l.as_f32("loss").ok())
        .map(|v| format!(", loss {:.6}", v[0]))
        .unwrap_or_default();
    eprintln!("wrote {} tensors to {}{loss}", out.len(), args.output.display());
    Ok(())
}
