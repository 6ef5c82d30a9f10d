//! The `nfnet` command line: it parses arguments ([`cli::args`]), calls the library, and
//! renders what comes back ([`cli::commands`]). Every rule lives in the library.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};
use cli::commands;
use nfnet::ops::grouped_conv::Storage;
use nfnet::{ModelConfig, TuneOptions, Tuner};
use std::sync::Arc;

fn main() {
    // Without a desktop session, Mesa's Vulkan device-select layer probes for a Wayland display
    // anyway, and libwayland prints "XDG_RUNTIME_DIR is invalid or not set" at every instance.
    // The layer only orders the adapters, which the library sorts itself: off, before any
    // thread starts.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    let cli = Cli::parse();
    // Errors are for people: the message and its causes, no backtrace, and the flag to change
    // where the library's error names a setting.
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        if let Some(hint) = e.downcast_ref::<nfnet::Error>().and_then(hint) {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// The command-line flag behind a setting that an error names.
fn hint(e: &nfnet::Error) -> Option<&'static str> {
    let message = e.to_string();
    match e {
        nfnet::Error::Invalid { op, .. } if op == "resume" && message.contains("not of the requested model") => {
            Some("leave --model out to continue the checkpoint's model")
        }
        nfnet::Error::Invalid { op, .. } if op == "data" && message.contains("validation split") => {
            Some("give --val-data DIR, or a larger --val-split")
        }
        nfnet::Error::Format { .. } if message.contains("not an nfnet checkpoint") => {
            Some("a plain weights file goes to --init (train) or --weights (forward, predict)")
        }
        _ => None,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut tune = TuneOptions::from_env()?;
    if cli.no_autotune {
        tune.enabled = false;
    }
    if let Some(storage) = &cli.conv_storage {
        tune.conv_storage = Some(storage.parse::<Storage>()?);
    }
    // A first run on an adapter times its kernels (within the tuner's budget): say so while it
    // does, on stderr.
    let status = Arc::new(commands::TuneStatus::default());
    if tune.enabled {
        tune.progress = Some(status.hook());
    }
    let tuner = Tuner::new(tune);
    let result = match cli.command {
        Command::Devices => commands::devices(),
        Command::Info { model, resolution, batch } => {
            print!("{}", nfnet::model::describe(&ModelConfig::load(&model)?, resolution, batch)?);
            Ok(())
        }
        Command::Forward(args) => commands::forward(&args, &tuner, &status),
        Command::Train(args) => commands::train(&args, &tuner, &status),
        Command::Eval(args) => commands::eval(&args, &tuner, &status),
        Command::Predict(args) => commands::predict(&args, &tuner, &status),
        Command::Bench(args) => commands::bench(&args, &tuner, &status),
    };
    status.done(); // where a command stopped before it could
    result
}
