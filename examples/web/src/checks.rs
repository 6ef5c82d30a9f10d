//! The browser test's checks (`test.html`, run headless by `tools/web-test.sh`).
//!
//! The browser build must compute what the native build computes. `tools/web-test.sh` runs
//! `nfnet forward --grads --train-steps 10` natively on small fixture models and serves its
//! output; the page fetches the same weights, input and native output, runs the same model in
//! the browser ([`check_parity`]) and compares tensor by tensor, in relative L2 error:
//!
//! * (a) the forward logits, the loss and every parameter's gradient, within 1e-5;
//! * (b) every parameter after ten AGC + SGD steps on the batch, within 1e-4 (ten steps let
//!   rounding differences grow a little).
//!
//! The two builds run on different adapters (natively lavapipe or a GPU, here the browser's
//! WebGPU device, SwiftShader when headless) whose `exp`, `erf` and fused multiply-adds round
//! differently, so the results agree to rounding, not bitwise. Every tensor is held to the
//! tolerance, with no absolute floor: `tools/web-test.sh` has checked natively that each
//! fixture is well posed (every weight one ulp off moves no tensor by more than the tolerance),
//! so rounding alone cannot fail a tensor here and a failure is a real difference.
//!
//! Then [`check_kernels`] runs every kernel of the library on a small odd-shaped case against
//! its f64 CPU reference (`nfnet::ops::selfcheck`).

use crate::js_error;
use nfnet::graph::optim::Optimizer;
use nfnet::io::{read_safetensors_bytes, HostTensor};
use nfnet::model::forward::{forward_async, ForwardOptions};
use nfnet::model::{ModelConfig, Weights};
use nfnet::ops::selfcheck::errors;
use nfnet::Tuner;
use serde_json::json;
use wasm_bindgen::prelude::*;

/// Relative L2 error of the forward outputs and gradients, and of the weights after the steps.
pub const FORWARD_TOLERANCE: f64 = 1e-5;
pub const STEPS_TOLERANCE: f64 = 1e-4;

/// One group of compared tensors: the worst error and everything over the tolerance.
struct Group {
    tolerance: f64,
    tensors: usize,
    worst: (f64, String),
    failures: Vec<String>,
}

impl Group {
    fn new(tolerance: f64) -> Group {
        Group {
            tolerance,
            tensors: 0,
            worst: (0.0, String::new()),
            failures: vec![],
        }
    }

    fn compare(&mut self, name: &str, got: Option<&HostTensor>, want: &HostTensor) {
        self.tensors += 1;
        let Some(got) = got else {
            self.failures.push(format!("{name}: missing from the browser's output"));
            return;
        };
        if got.shape != want.shape {
            self.failures
                .push(format!("{name}: shape {:?} in the browser, {:?} natively", got.shape, want.shape));
            return;
        }
        // Relative L2 error and RMS difference, both infinite with a NaN or an infinity in the
        // browser's output.
        let (err, rms) = match (got.as_f32(name), want.as_f32(name)) {
            (Ok(g), Ok(w)) => {
                let e = errors(g, w.iter().map(|&v| v as f64));
                (e.rel_l2, e.rms)
            }
            _ => (f64::INFINITY, f64::INFINITY),
        };
        // `!(err <= worst)` also catches a NaN.
        if !(err <= self.worst.0) {
            self.worst = (err, name.to_string());
        }
        if !(err <= self.tolerance) {
            self.failures.push(format!(
                "{name}: rel L2 {err:.3e} > {:.0e}, RMS difference {rms:.2e}",
                self.tolerance
            ));
        }
    }

    fn report(&self, label: &str) -> serde_json::Value {
        json!({
            "check": label,
            "ok": self.failures.is_empty() && self.tensors > 0,
            "tensors": self.tensors,
            "worst": if self.worst.0.is_finite() { json!(self.worst.0) } else { json!("inf") },
            "worstTensor": self.worst.1,
            "tolerance": self.tolerance,
            "failures": self.failures,
        })
    }
}

/// Runs model `config_json` (a JSON `ModelConfig`) with the safetensors `weights` on `input`
/// (`input` and `labels`) in the browser, with gradients and `steps` training steps, and
/// compares with `native`, what `nfnet forward --grads --train-steps <steps>` wrote with the
/// same files. The steps use the command's defaults: lr 0.1 and the paper's optimizer.
///
/// Resolves to `[forward, steps]`, each `{check, ok, tensors, worst, worstTensor, tolerance,
/// failures}`.
#[wasm_bindgen(js_name = checkParity)]
pub async fn check_parity(
    name: String,
    config_json: String,
    weights: Vec<u8>,
    input: Vec<u8>,
    native: Vec<u8>,
    steps: usize,
) -> Result<JsValue, JsValue> {
    let gpu = crate::gpu().await?;
    let config = ModelConfig::from_json(&config_json).map_err(js_error)?;
    let weights = Weights {
        source: format!("{name}.weights.safetensors"),
        tensors: read_safetensors_bytes(&weights, &format!("{name}.weights.safetensors")).map_err(js_error)?,
    };
    let input = read_safetensors_bytes(&input, &format!("{name}.input.safetensors")).map_err(js_error)?;
    let native = read_safetensors_bytes(&native, &format!("{name}.native.safetensors")).map_err(js_error)?;
    let tensor = |key: &str| {
        input
            .get(key)
            .ok_or_else(|| js_error(format!("{name}.input.safetensors has no `{key}`")))
    };
    let options = ForwardOptions {
        grads: true,
        train_steps: steps,
        lr: 0.1,
        optimizer: Optimizer::paper(),
    };
    let got = forward_async(
        gpu,
        &Tuner::off(),
        &config,
        &weights,
        tensor("input")?,
        Some(tensor("labels")?),
        &options,
    )
    .await
    .map_err(js_error)?;

    let (mut forward, mut trained) = (Group::new(FORWARD_TOLERANCE), Group::new(STEPS_TOLERANCE));
    let step_prefix = format!("step{steps}.");
    for (key, want) in &native {
        let group = if key.starts_with(&step_prefix) {
            &mut trained
        } else {
            &mut forward
        };
        group.compare(key, got.get(key), want);
    }
    // Every parameter must have been compared in both groups (a native file without the
    // gradients or the steps would make the check vacuous).
    for (key, group) in [("grad.", &mut forward), (step_prefix.as_str(), &mut trained)] {
        let params = weights.tensors.len();
        let compared = native.keys().filter(|k| k.starts_with(key)).count();
        if compared != params {
            group
                .failures
                .push(format!("the native output has {compared} `{key}*` tensors for {params} parameters"));
        }
    }
    for key in got.keys().filter(|k| !native.contains_key(*k)) {
        forward.failures.push(format!("{key}: computed in the browser, absent natively"));
    }
    let report = json!([forward.report("forward"), trained.report(&format!("{steps} steps"))]);
    Ok(crate::to_js(&report))
}

/// (c): every kernel of the library against its f64 CPU reference on a small odd-shaped case
/// (`nfnet::ops::selfcheck`). Resolves to one `{name, maxAbs, relL2, ok, note}` per kernel.
#[wasm_bindgen(js_name = checkKernels)]
pub async fn check_kernels() -> Result<JsValue, JsValue> {
    let gpu = crate::gpu().await?;
    let rows: Vec<serde_json::Value> = (nfnet::ops::selfcheck::run(gpu).await.iter())
        .map(|k| {
            // JSON has no infinity: a NaN left in an output reads as "inf".
            let number = |v: f64| if v.is_finite() { json!(v) } else { json!("inf") };
            json!({
                "name": k.name,
                "maxAbs": number(k.max_abs),
                "relL2": number(k.rel_l2),
                "ok": k.ok,
                "note": k.note,
            })
        })
        .collect();
    Ok(crate::to_js(&json!(rows)))
}
