//! Inference for applications: load weights once, then classify images or evaluate a labelled
//! set.
//!
//! A [`Classifier`] owns an inference plan (weights standardized once, activations sharing
//! memory) for a fixed batch size; `classify` pads the last batch. It is built from a
//! checkpoint (with the moving average of the weights when the run kept one), from timm weights
//! and a model config, or over parameters already on the GPU (a training run's evaluation).
//! Images are squash-resized to `resolution + margin` and centre-cropped, as DeepMind evaluates.

use crate::data::{augment, Image, Loader, LoaderOptions, Source};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::ParamStore;
use crate::model::checkpoint::CheckpointFile;
use crate::model::recipe::{param_store, InferencePlan};
use crate::model::weights::{self, Head, Weights};
use crate::model::{forward, ModelConfig};
use crate::tune::Tuner;
use std::sync::Arc;

/// How a [`Classifier`] sees its images. What is `None` comes from the checkpoint, or else
/// takes the default.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierOptions {
    /// The model's input side (default 224).
    pub resolution: Option<u32>,
    /// Images are squash-resized to `resolution + margin`, then centre-cropped (default:
    /// [`default_margin`] of the resolution).
    pub margin: Option<u32>,
    /// Images per pass.
    pub batch: usize,
    /// Class names in label order (default: the indices).
    pub classes: Option<Vec<String>>,
}

impl Default for ClassifierOptions {
    /// Batch 8, everything else from the checkpoint or the defaults.
    fn default() -> ClassifierOptions {
        ClassifierOptions {
            resolution: None,
            margin: None,
            batch: 8,
            classes: None,
        }
    }
}

/// The evaluation margin by default at `resolution`: 32 pixels from 128 up (the usual resize
/// then centre crop of ImageNet-sized inputs: 224 from 256), none for small images, which have
/// no border to spare.
pub fn default_margin(resolution: u32) -> u32 {
    if resolution >= 128 {
        32
    } else {
        0
    }
}

/// Loss, top-1 and top-5 of an evaluation, with the confusion matrix.
#[derive(Clone, Debug, Default)]
pub struct EvalStats {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
    /// `confusion[true][predicted]`, over the images whose logits are finite.
    pub confusion: Vec<Vec<usize>>,
    /// Images whose logits hold a NaN or an infinity: counted as wrong in top-1 and top-5, left
    /// out of the confusion matrix, and the loss is NaN.
    pub non_finite: usize,
}

/// A model ready to classify images; see the module docs.
pub struct Classifier<'g> {
    gpu: &'g Gpu,
    plan: InferencePlan,
    pub classes: Vec<String>,
    pub resolution: u32,
    /// Images are squash-resized to `resolution + margin`, then centre-cropped.
    pub margin: u32,
}

/// The subset of a checkpoint's training options that inference reads.
#[derive(serde::Deserialize)]
struct Trained {
    model: ModelConfig,
    resolution: u32,
    eval_margin: u32,
    ema_decay: Option<f64>,
}

impl<'g> Classifier<'g> {
    /// A classifier of `config` with `weights` (timm names; every parameter must be present).
    pub fn new(
        gpu: &'g Gpu,
        tuner: &Tuner,
        config: &ModelConfig,
        weights: &Weights,
        options: &ClassifierOptions,
    ) -> Result<Classifier<'g>> {
        let store = param_store(gpu, config)?;
        let classifier = Classifier::over(gpu, tuner, config, &store, options)?;
        weights::load(gpu, classifier.plan.plan().graph(), &store, weights, Head::Strict)?;
        classifier.prepare()?;
        Ok(classifier)
    }

    /// A classifier over parameters already on the GPU (shared, not copied): call
    /// [`Classifier::prepare`] whenever they change.
    pub fn over(
        gpu: &'g Gpu,
        tuner: &Tuner,
        config: &ModelConfig,
        store: &ParamStore,
        options: &ClassifierOptions,
    ) -> Result<Classifier<'g>> {
        let classes = match &options.classes {
            Some(c) if c.len() != config.num_classes => {
                let message = format!("{} class names for a model of {} classes", c.len(), config.num_classes);
                return Err(Error::invalid("classify", message));
            }
            Some(c) => c.clone(),
            None => (0..config.num_classes).map(|i| i.to_string()).collect(),
        };
        let resolution = options.resolution.unwrap_or(224);
        let (batch, side) = (options.batch.max(1), resolution as usize);
        forward::check_input(&[batch, 3, side, side])?;
        let plan = InferencePlan::new(gpu, tuner, config, batch, (side, side), store)?;
        Ok(Classifier {
            gpu,
            plan,
            classes,
            resolution,
            margin: options.margin.unwrap_or(default_margin(resolution)),
        })
    }

    /// A classifier from a checkpoint: its model, with the moving average of the weights when
    /// the run kept one, and (unless `options` set them) its classes, resolution and
    /// evaluation crop.
    pub fn from_checkpoint(
        gpu: &'g Gpu,
        tuner: &Tuner,
        checkpoint: &CheckpointFile,
        options: &ClassifierOptions,
    ) -> Result<Classifier<'g>> {
        let trained: Trained = checkpoint.field("options")?;
        let options = ClassifierOptions {
            resolution: options.resolution.or(Some(trained.resolution)),
            margin: options.margin.or(Some(trained.eval_margin)),
            batch: options.batch,
            classes: options.classes.clone().or(Some(checkpoint.classes()?)),
        };
        let weights = checkpoint.weights(trained.ema_decay.is_some());
        Classifier::new(gpu, tuner, &trained.model, &weights, &options)
    }

    /// Standardizes and packs the weights again, after they changed.
    pub fn prepare(&self) -> Result<()> {
        self.plan.prepare(self.gpu)
    }

    /// Class probabilities (softmax of the logits) of each image.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn classify(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        pollster::block_on(self.classify_async(images))
    }

    /// [`Classifier::classify`] without blocking (in a browser).
    pub async fn classify_async(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let batch = self.plan.batch();
        let per = 3 * (self.resolution * self.resolution) as usize;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(batch) {
            let mut input = vec![0f32; batch * per];
            for (img, slot) in chunk.iter().zip(input.chunks_mut(per)) {
                augment::normalize_into(&augment::eval_transform(img, self.resolution, self.margin), slot);
            }
            let logits = self.plan.logits_async(self.gpu, &input).await?;
            out.extend(logits.chunks(self.classes.len()).take(chunk.len()).map(softmax));
        }
        Ok(out)
    }

    /// Loss (plain cross-entropy), top-1, top-5 and the confusion matrix over a labelled
    /// source, images prepared on `threads` threads, with the weights as they are now; computed
    /// on the host from the logits.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate(&self, source: &Arc<dyn Source>, threads: usize) -> Result<EvalStats> {
        pollster::block_on(self.evaluate_async(source, threads))
    }

    /// [`Classifier::evaluate`] without blocking (in a browser).
    pub async fn evaluate_async(&self, source: &Arc<dyn Source>, threads: usize) -> Result<EvalStats> {
        // The weights may have changed since the last pass (a training run's).
        self.prepare()?;
        let classes = self.classes.len();
        // Names are compared unless the model's are the plain numbers it has without any.
        let numbered = self.classes.iter().enumerate().all(|(i, c)| *c == i.to_string());
        if source.classes().len() != classes || (!numbered && source.classes() != self.classes.as_slice()) {
            return Err(Error::invalid(
                "evaluate",
                format!(
                    "the data's {} classes ({}) are not the model's {classes} ({}), in label order",
                    source.classes().len(),
                    first_names(source.classes()),
                    first_names(&self.classes),
                ),
            ));
        }
        let options = LoaderOptions::eval(self.plan.batch(), self.resolution, self.margin, threads);
        let loader = Loader::start(source.clone(), &options);
        let mut stats = EvalStats {
            confusion: vec![vec![0; classes]; classes],
            ..Default::default()
        };
        let (mut loss, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
        for b in loader {
            let z = self.plan.logits_async(self.gpu, &b.images).await?;
            for (row, &label) in z.chunks(classes).zip(&b.labels).take(b.count) {
                if !row.iter().all(|v| v.is_finite()) {
                    // Wrong, whatever `>` says of NaN.
                    (loss, stats.non_finite) = (f64::NAN, stats.non_finite + 1);
                    continue;
                }
                let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                loss += lse - row[label as usize] as f64;
                let above = row.iter().filter(|&&v| v > row[label as usize]).count();
                top1 += (above == 0) as usize;
                top5 += (above < 5) as usize;
                let predicted = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
                stats.confusion[label as usize][predicted] += 1;
            }
            stats.images += b.count;
        }
        let n = stats.images.max(1) as f64;
        (stats.loss, stats.top1, stats.top5) = (loss / n, top1 as f64 / n, top5 as f64 / n);
        Ok(stats)
    }
}

/// Up to the first five of `names`, then how many more.
fn first_names(names: &[String]) -> String {
    let mut text = names.iter().take(5).map(String::as_str).collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text += &format!(", and {} more", names.len() - 5);
    }
    text
}

/// The softmax of one row of logits.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// The `k` most probable classes of `probs`, best first.
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(k);
    order
}
