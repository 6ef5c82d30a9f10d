//! # nfnet in a browser tab
//!
//! The nfnet library compiled to `wasm32-unknown-unknown` (its `--no-default-features` build)
//! and driven from JavaScript through wasm-bindgen. The kernels are the same WGSL shaders as
//! natively; wgpu hands them to the page's WebGPU device, and the host side (the graph, the
//! planner, the data generator, the CPU references) is the same Rust compiled to wasm.
//!
//! Two pages use this module (both in `examples/web/`, served by `tools/web-demo.sh`):
//!
//! * `index.html`, the demo ([`demo`]): trains the small `nano` NFNet on the embedded procedural
//!   dataset in the tab, draws the loss and accuracy as they come, then classifies what the user
//!   draws or drops on the page.
//! * `test.html`, the browser test ([`checks`], run headless by `tools/web-test.sh`): the same
//!   model run in the browser and natively must agree: forward logits, loss and every gradient,
//!   and the weights after ten training steps; then every kernel against its CPU reference.
//!
//! A page has one thread and no blocking waits: every call here that touches the GPU is async
//! and returns a JavaScript `Promise` that resolves when the GPU's answer is back, so the page
//! keeps drawing while the model trains.

pub mod checks;
pub mod demo;

use nfnet::{Gpu, GpuOptions};
use std::cell::OnceCell;
use wasm_bindgen::prelude::*;

/// Runs when the module is instantiated: a Rust panic then reaches the console with its
/// message and location instead of a bare "unreachable executed".
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    /// The page's GPU context, opened once (see [`gpu`]).
    static GPU: OnceCell<&'static Gpu> = const { OnceCell::new() };
}

/// The page's GPU context, opened on first use with the adapter the browser hands out.
///
/// It lives as long as the page (leaked on purpose): trainers and classifiers borrow it, and a
/// `'static` borrow lets them live inside objects JavaScript holds. A page opens one device.
pub async fn gpu() -> Result<&'static Gpu, JsValue> {
    if let Some(gpu) = GPU.with(|g| g.get().copied()) {
        return Ok(gpu);
    }
    let gpu: &'static Gpu = Box::leak(Box::new(Gpu::request(&GpuOptions::default()).await.map_err(js_error)?));
    // Another caller may have opened one meanwhile (the await above yields): keep the first.
    Ok(GPU.with(|g| *g.get_or_init(|| gpu)))
}

/// What wgpu makes of the page's adapter: its device type and the lanes of the engine's
/// reductions there (which fix their summation order). A page learns the adapter's name from
/// the browser (`GPUAdapter.info`); wgpu leaves it empty.
#[wasm_bindgen]
pub async fn adapter() -> Result<String, JsValue> {
    let gpu = gpu().await?;
    Ok(format!("{:?} device, {} reduction lanes", gpu.info.device_type, gpu.reduce_lanes()))
}

/// A library error (or anything displayable) as a JavaScript `Error`.
pub(crate) fn js_error(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

/// A JSON value as a JavaScript object (through `JSON.parse`: plain data, no classes).
pub(crate) fn to_js(value: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).expect("serde_json writes valid JSON")
}
