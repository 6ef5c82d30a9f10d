//! Inference for applications: load weights once, then classify images.
//!
//! A [`Classifier`] owns an inference plan (weights standardized once, activations sharing
//! memory) for a fixed batch size; `classify` pads the last batch. It is built from a training
//! checkpoint (using the moving average of the weights when the run kept one) or from timm
//! weights and a model config.

use crate::data::{augment, Image, Source};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::{ParamStore, Plan, PlanOptions};
use crate::graph::TensorId;
use crate::nfnet::weights::{self, HostTensor};
use crate::nfnet::{build, Mode, NfnetConfig};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::EvalStats;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A model ready to classify images; see the module docs.
pub struct Classifier<'g> {
    gpu: &'g Gpu,
    plan: Plan,
    logits: TensorId,
    pub classes: Vec<String>,
    pub resolution: u32,
    /// Images are squash-resized to `resolution + margin`, then centre-cropped.
    pub margin: u32,
    batch: usize,
}

impl<'g> Classifier<'g> {
    /// A classifier of `config` with `tensors` (timm names; every parameter must be present).
    pub fn new(
        gpu: &'g Gpu,
        config: &NfnetConfig,
        tensors: &BTreeMap<String, HostTensor>,
        source: &str,
        classes: Vec<String>,
        resolution: u32,
        margin: u32,
        batch: usize,
    ) -> Result<Classifier<'g>> {
        if classes.len() != config.num_classes {
            return Err(Error::invalid(
                "classify",
                format!("{} class names for a model of {} classes", classes.len(), config.num_classes),
            ));
        }
        crate::nfnet::forward::check_input(&[batch.max(1), 3, resolution as usize, resolution as usize])?;
        let model = build(config, batch.max(1), (resolution as usize, resolution as usize), Mode::Eval, 0)?;
        let store = ParamStore::for_graph(gpu, &model.graph)?;
        weights::load(gpu, &model.graph, &store, tensors, source, false, 0)?;
        let logits = model.logits;
        let plan = Plan::new(
            gpu,
            model.graph,
            &store,
            &PlanOptions {
                keep: vec![logits],
                prepare_params: true,
            },
        )?;
        plan.prepare(gpu)?;
        Ok(Classifier {
            gpu,
            plan,
            logits,
            classes,
            resolution,
            margin,
            batch: batch.max(1),
        })
    }

    /// A classifier from a training checkpoint file, with the EMA weights when it has them.
    pub fn from_checkpoint(gpu: &'g Gpu, path: &Path, batch: usize) -> Result<Classifier<'g>> {
        Classifier::from_read_checkpoint(gpu, &checkpoint::read(path)?, &path.display().to_string(), batch)
    }

    /// [`Classifier::from_checkpoint`] for a checkpoint already read from `source`.
    pub fn from_read_checkpoint(gpu: &'g Gpu, ckpt: &Checkpoint, source: &str, batch: usize) -> Result<Classifier<'g>> {
        let ema = ckpt.options.ema_decay.is_some();
        let tensors: BTreeMap<String, HostTensor> = ckpt
            .tensors
            .iter()
            .filter_map(|(name, t)| match (ema, name.strip_prefix("ema.")) {
                (true, Some(param)) => Some((param.to_string(), t.clone())),
                (false, _) if !name.starts_with("momentum.") && !name.starts_with("ema.") => Some((name.clone(), t.clone())),
                _ => None,
            })
            .collect();
        let o = &ckpt.options;
        Classifier::new(
            gpu,
            &o.model,
            &tensors,
            source,
            ckpt.classes.clone(),
            o.resolution,
            o.eval_margin,
            batch,
        )
    }

    /// Class probabilities (softmax of the logits) of each image.
    pub fn classify(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let per = 3 * (self.resolution * self.resolution) as usize;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch) {
            let mut input = vec![0f32; self.batch * per];
            for (img, slot) in chunk.iter().zip(input.chunks_mut(per)) {
                augment::normalize_into(&augment::eval_transform(img, self.resolution, self.margin), slot);
            }
            out.extend(self.logits_of(&input)?.chunks(self.classes.len()).take(chunk.len()).map(softmax));
        }
        Ok(out)
    }

    fn logits_of(&self, input: &[f32]) -> Result<Vec<f32>> {
        self.plan.tensor("input").expect("an input").write_f32(self.gpu, input)?;
        self.plan.step(self.gpu)?;
        self.plan.tensor_id(self.logits).expect("kept").read_f32(self.gpu)
    }

    /// Loss, top-1, top-5 and confusion over a labelled source.
    pub fn evaluate(&self, source: &Arc<dyn Source>, threads: usize) -> Result<EvalStats> {
        crate::train::evaluate(
            self.gpu,
            &self.plan,
            self.logits,
            source,
            self.resolution,
            self.margin,
            threads,
            self.classes.len(),
        )
    }
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

/// Decodes an image file to RGB (grayscale and RGBA are converted).
pub fn load_image(path: &Path) -> Result<Image> {
    let fail = |m: String| Error::Format {
        path: path.display().to_string(),
        message: m,
    };
    Ok(image::ImageReader::open(path)
        .map_err(|e| Error::Io {
            path: path.display().to_string(),
            error: e,
        })?
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?
        .decode()
        .map_err(|e| fail(format!("not a readable image: {e}")))?
        .to_rgb8())
}
