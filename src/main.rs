//! The `nfnet` command line.

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices => devices(),
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
