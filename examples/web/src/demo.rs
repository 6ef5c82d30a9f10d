//! The demo page's model: the `nano` NFNet trained in the tab on the embedded dataset, then
//! asked about the user's drawings.
//!
//! The dataset is the library's own procedural one (`data/synthetic.rs`: ten classes of shapes
//! and textures in random colours, 32x32, drawn from a seed), generated here by the same code
//! compiled to wasm: nothing is downloaded. The training is the library's [`Trainer`] with its
//! defaults for `nano` (SGD with Nesterov momentum, AGC, warm-up then cosine decay, random
//! crops and flips, label smoothing), on fewer images than natively so that a software WebGPU
//! device (SwiftShader, what a headless browser gets) finishes an epoch in seconds.
//!
//! JavaScript drives it one epoch at a time ([`Demo::train_epoch`]): each step's loss reaches a
//! callback as soon as it is read back, and the epoch's validation loss and accuracy come with
//! the returned promise. Between epochs the page may classify an image ([`Demo::classify`]).

use crate::js_error;
use nfnet::data::{self, DataSpec, Dataset, Image, OpenOptions};
use nfnet::train::{Event, TrainOptions, Trainer};
use nfnet::{ModelConfig, Tuner};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// A model in training on the embedded dataset; see the module docs.
#[wasm_bindgen]
pub struct Demo {
    /// Shared with the promises of running calls, which outlive the `&self` they started from.
    state: Rc<RefCell<State>>,
    classes: Vec<String>,
    steps_per_epoch: usize,
    epochs: usize,
}

struct State {
    data: Dataset,
    trainer: Trainer<'static>,
}

#[wasm_bindgen]
impl Demo {
    /// A fresh `nano` NFNet (initialised from seed 0) for `epochs` epochs of batch `batch` over
    /// `train` embedded training images, evaluated on `val` held-out ones.
    pub async fn create(train: usize, val: usize, batch: usize, epochs: usize) -> Result<Demo, JsValue> {
        let gpu = crate::gpu().await?;
        let spec = DataSpec::new(&format!("synthetic:{train}:{val}"));
        let data = data::open(&spec, &OpenOptions::default()).map_err(js_error)?;
        let options = TrainOptions {
            epochs,
            batch_size: batch,
            // Every step's loss, one step late: the curve moves with each step, and each
            // read-back is also where the page yields to the browser to redraw.
            loss_every: 1,
            threads: 1,
            data: spec,
            ..TrainOptions::new(ModelConfig::load("nano").map_err(js_error)?)
        };
        // Tuner::off: the default kernels. Timing candidates would cost more than it saves in
        // a short demo, and a page has no cache directory to keep the choices in.
        let trainer = Trainer::new(gpu, &Tuner::off(), options, &data).map_err(js_error)?;
        Ok(Demo {
            classes: trainer.classes.clone(),
            steps_per_epoch: trainer.steps_per_epoch(),
            epochs,
            state: Rc::new(RefCell::new(State { data, trainer })),
        })
    }

    /// The class names, in label order.
    pub fn classes(&self) -> Vec<String> {
        self.classes.clone()
    }

    #[wasm_bindgen(js_name = stepsPerEpoch)]
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Held-out image `i` as 32x32 RGBA pixels (for an `ImageData`), to show what each class
    /// looks like; its label is `i % 10`.
    pub fn example(&self, i: usize) -> Result<Vec<u8>, JsValue> {
        let state = self.state.try_borrow().map_err(|_| js_error("busy"))?;
        let image = state.data.val.image(i % state.data.val.len());
        Ok(image.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect())
    }

    /// Trains one epoch. `on_step(step, stepsInEpoch, loss)` is called after every step
    /// (`loss` is undefined until that step's loss is read back, one step later). Resolves to
    /// `{epoch, step, trainLoss, valLoss, top1, top5, seconds, imagesPerSecond}` after the
    /// evaluation on the held-out images, or to `null` once every epoch is done.
    #[wasm_bindgen(js_name = trainEpoch)]
    pub fn train_epoch(&self, on_step: js_sys::Function) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            // The borrow lasts the epoch: a second call meanwhile is refused, not interleaved.
            let mut state = state.try_borrow_mut().map_err(|_| js_error("the model is busy"))?;
            let State { data, trainer } = &mut *state;
            if trainer.state.epoch as usize >= trainer.options.epochs {
                return Ok(JsValue::NULL);
            }
            let started = web_time::Instant::now();
            (trainer.state.loss_sum, trainer.state.loss_count) = (0.0, 0);
            let per_epoch = trainer.steps_per_epoch();
            let mut callback_error = None;
            trainer
                .train_epoch_async(data, &mut |event| {
                    if let Event::Step { batch, loss, .. } = event {
                        let loss = loss.map_or(JsValue::UNDEFINED, |l| JsValue::from(l));
                        if let Err(e) = on_step.call3(&JsValue::NULL, &(batch as u32).into(), &(per_epoch as u32).into(), &loss) {
                            callback_error.get_or_insert(e);
                        }
                    }
                })
                .await
                .map_err(js_error)?;
            if let Some(e) = callback_error {
                return Err(e);
            }
            let val = trainer.evaluate_async(&data.val).await.map_err(js_error)?;
            let train_loss = trainer.state.loss_sum / trainer.state.loss_count.max(1) as f64;
            let seconds = started.elapsed().as_secs_f64();
            let epoch = trainer.state.epoch;
            // Where `fit` would write its checkpoint: the next epoch starts at batch 0.
            trainer.state.epoch += 1;
            trainer.state.batch = 0;
            let stats = serde_json::json!({
                "epoch": epoch + 1,
                "step": trainer.state.step,
                "trainLoss": train_loss,
                "valLoss": val.loss,
                "top1": val.top1,
                "top5": val.top5,
                "seconds": seconds,
                "imagesPerSecond": (per_epoch * trainer.options.batch_size) as f64 / seconds.max(1e-9),
            });
            Ok(crate::to_js(&stats))
        })
    }

    /// Class probabilities (a `Float32Array`, label order) of an RGBA image of any size, as
    /// the model sees it: squash-resized to 32x32, transparent pixels on white.
    pub fn classify(&self, rgba: Vec<u8>, width: u32, height: u32) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let state = state.try_borrow().map_err(|_| js_error("the model is busy training"))?;
            let image = rgb_on_white(&rgba, width, height)?;
            let classifier = state.trainer.classifier().map_err(js_error)?;
            let probabilities = classifier.classify_async(&[image]).await.map_err(js_error)?;
            Ok(js_sys::Float32Array::from(&probabilities[0][..]).into())
        })
    }
}

/// An RGB image from RGBA pixels, composited over white (a dropped PNG's transparency).
fn rgb_on_white(rgba: &[u8], width: u32, height: u32) -> Result<Image, JsValue> {
    if width == 0 || height == 0 || rgba.len() != 4 * width as usize * height as usize {
        return Err(js_error(format!(
            "expected {width}x{height} RGBA pixels ({} bytes), got {} bytes",
            4 * width as usize * height as usize,
            rgba.len()
        )));
    }
    let over_white = |c: u8, a: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
    Ok(Image::from_fn(width, height, |x, y| {
        let p = &rgba[4 * (y * width + x) as usize..][..4];
        image::Rgb([over_white(p[0], p[3]), over_white(p[1], p[3]), over_white(p[2], p[3])])
    }))
}
