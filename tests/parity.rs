//! Parity with timm: the fixtures in tests/data were written by tools/make_reference.py
//! (PyTorch + timm, float32 on the CPU). The engine on the adapter must reproduce timm's logits
//! and loss within 1e-4 relative L2, every gradient within 1e-3, and every parameter after two
//! AGC + SGD steps within 1e-4, for both flavours.

use crate::support::{gpu_or_skip, rel_l2};
use nfnet::graph::optim::Optimizer;
use nfnet::io::{read_safetensors, HostTensor};
use nfnet::model::forward::{forward, ForwardOptions};
use nfnet::model::{ModelConfig, Weights};
use nfnet::Tuner;
use std::path::PathBuf;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file)
}

fn parity(name: &str) {
    let Some(gpu) = gpu_or_skip() else { return };
    let config = ModelConfig::load(data(&format!("{name}.json")).to_str().unwrap()).unwrap();
    let weights = Weights {
        source: name.into(),
        tensors: read_safetensors(&data(&format!("{name}.weights.safetensors"))).unwrap(),
    };
    let input = read_safetensors(&data(&format!("{name}.input.safetensors"))).unwrap();
    let expected = read_safetensors(&data(&format!("{name}.expected.safetensors"))).unwrap();
    let options = ForwardOptions {
        grads: true,
        train_steps: 2,
        lr: 0.1,
        // What make_reference.py steps with: the paper's recipe.
        optimizer: Optimizer::paper(),
    };
    let got = forward(
        gpu,
        &Tuner::off(),
        &config,
        &weights,
        &input["input"],
        Some(&input["labels"]),
        &options,
    )
    .unwrap();
    let mut failures = Vec::new();
    let mut worst = (0.0f64, String::new());
    for (key, want) in &expected {
        let tol = if key.starts_with("grad.") { 1e-3 } else { 1e-4 };
        let Some(g) = got.get(key) else {
            failures.push(format!("{key}: missing from the engine's output"));
            continue;
        };
        let f64s = |t: &HostTensor| t.as_f32(key).unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>();
        assert_eq!(g.shape, want.shape, "{key}: shape");
        let (err, report) = rel_l2(&f64s(g), &f64s(want));
        if err > worst.0 {
            worst = (err, key.clone());
        }
        if !(err <= tol) {
            failures.push(format!("{key}: {report} (tolerance {tol:.0e})"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} tensors differ from timm:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
    eprintln!(
        "{name}: {} tensors match timm; worst rel L2 {:.2e} ({})",
        expected.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn dm_mini_matches_timm() {
    parity("dm_mini");
}

#[test]
fn test_nfnet_matches_timm() {
    parity("test_nfnet");
}

#[test]
fn the_forward_command_writes_timm_logits_and_loss() {
    if gpu_or_skip().is_none() {
        return;
    }
    let out = std::env::temp_dir().join(format!("nfnet-cli-forward-{}.safetensors", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_nfnet"))
        .args(["forward", "--model"])
        .arg(data("dm_mini.json"))
        .arg("--weights")
        .arg(data("dm_mini.weights.safetensors"))
        .arg("--input")
        .arg(data("dm_mini.input.safetensors"))
        .arg("--output")
        .arg(&out)
        .status()
        .expect("the nfnet binary runs");
    assert!(status.success(), "nfnet forward failed: {status}");
    let got = read_safetensors(&out).unwrap();
    let expected = read_safetensors(&data("dm_mini.expected.safetensors")).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), ["logits", "loss"]);
    for key in ["logits", "loss"] {
        let f = |t: &HostTensor| t.as_f32(key).unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>();
        let (err, report) = rel_l2(&f(&got[key]), &f(&expected[key]));
        assert!(err <= 1e-4, "{key}: {report}");
    }
    std::fs::remove_file(out).ok();
}
