//! Training data: sources of labelled images, and the loader that turns them into batches.
//!
//! A [`Source`] is a labelled image collection: the embedded [`synthetic`] dataset, an image
//! [`folder`], or [`cifar`]-10. [`open`] builds the training and validation sources from the
//! `--data` argument. A [`Loader`] runs on its own threads: it decodes, augments and normalises
//! the images of each batch ([`augment`]) while the GPU trains on the previous one, and hands
//! batches over through a bounded channel.
//!
//! Everything random is a pure function of the seed: the epoch's order of a seed-and-epoch
//! shuffle, each image's augmentation of `(seed, epoch, position)`, each batch's MixUp/CutMix of
//! `(seed, epoch, batch)`. So a run resumed at a batch sees exactly the batches the uninterrupted
//! run would have, whatever the thread timing.

pub mod augment;
pub mod cifar;
pub mod folder;
pub mod synthetic;

use crate::error::{Error, Result};
use augment::Augment;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// An 8-bit RGB image.
pub type Image = image::RgbImage;

/// A labelled image collection.
pub trait Source: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class names, in label order.
    fn classes(&self) -> &[String];
    fn label(&self, i: usize) -> u32;
    fn image(&self, i: usize) -> Image;
    /// Files that could not be read when the source was opened.
    fn skipped(&self) -> &[String] {
        &[]
    }
}

/// The images `indices` of another source.
pub struct Subset {
    source: Arc<dyn Source>,
    indices: Vec<usize>,
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn classes(&self) -> &[String] {
        self.source.classes()
    }
    fn label(&self, i: usize) -> u32 {
        self.source.label(self.indices[i])
    }
    fn image(&self, i: usize) -> Image {
        self.source.image(self.indices[i])
    }
    fn skipped(&self) -> &[String] {
        self.source.skipped()
    }
}

/// Training and validation sources.
pub struct Dataset {
    pub train: Arc<dyn Source>,
    pub val: Arc<dyn Source>,
    /// The native side of the images (32 for CIFAR and the synthetic set), if they have one.
    pub native_size: Option<u32>,
}

impl Dataset {
    pub fn classes(&self) -> &[String] {
        self.train.classes()
    }
}

/// Images in the embedded dataset's training and held-out splits.
pub const SYNTHETIC_TRAIN: usize = 6000;
pub const SYNTHETIC_VAL: usize = 1000;

/// Opens `spec`: `synthetic` (or `synthetic:TRAIN[:VAL]` for other split sizes), `cifar10:DIR`,
/// or an image folder. A folder's validation images
/// come from `val_dir` when given, else from a seeded `val_fraction` of it. `keep_side` bounds
/// the side of decoded folder images kept in memory.
pub fn open(spec: &str, val_dir: Option<&Path>, val_fraction: f64, seed: u64, keep_side: u32) -> Result<Dataset> {
    if let Some(sizes) = spec.strip_prefix("synthetic") {
        // `synthetic`, or `synthetic:TRAIN[:VAL]` for other split sizes.
        let parts: Vec<&str> = sizes.split(':').skip(1).collect();
        let parse = |i: usize, default: usize| -> Result<usize> {
            parts.get(i).map_or(Ok(default), |v| {
                v.parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or_else(|| Error::invalid("data", format!("{spec}: expected synthetic[:TRAIN[:VAL]] with counts > 0")))
            })
        };
        if !(sizes.is_empty() || sizes.starts_with(':')) || parts.len() > 2 {
            return Err(Error::invalid("data", format!("{spec}: expected synthetic[:TRAIN[:VAL]]")));
        }
        let (train, val) = (parse(0, SYNTHETIC_TRAIN)?, parse(1, SYNTHETIC_VAL)?);
        return Ok(Dataset {
            train: Arc::new(synthetic::Synthetic::new(seed, 0, train)),
            val: Arc::new(synthetic::Synthetic::new(seed, train, val)),
            native_size: Some(synthetic::SIZE),
        });
    }
    if let Some(dir) = spec.strip_prefix("cifar10:") {
        let (train, test) = cifar::Cifar::splits(Path::new(dir))?;
        return Ok(Dataset {
            train: Arc::new(train),
            val: Arc::new(test),
            native_size: Some(32),
        });
    }
    let root = Path::new(spec);
    if !root.exists() {
        return Err(Error::invalid(
            "data",
            format!("{spec}: no such folder (expected `synthetic`, `cifar10:DIR` or an image folder root/<class>/<image>)"),
        ));
    }
    let all: Arc<dyn Source> = Arc::new(folder::Folder::open(root, None, keep_side)?);
    if let Some(v) = val_dir {
        let val = folder::Folder::open(v, Some(all.classes()), keep_side)?;
        return Ok(Dataset {
            train: all,
            val: Arc::new(val),
            native_size: None,
        });
    }
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::invalid(
            "data",
            format!("the validation fraction must be in [0, 1), got {val_fraction}"),
        ));
    }
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed_5011_7001));
    let n_val = ((all.len() as f64 * val_fraction).round() as usize).min(all.len().saturating_sub(1));
    let (val, train) = order.split_at(n_val);
    if val.is_empty() {
        return Err(Error::invalid(
            "data",
            format!(
                "{spec}: {} images leave none for validation; give --val-data or a larger --val-split",
                all.len()
            ),
        ));
    }
    Ok(Dataset {
        train: Arc::new(Subset {
            source: all.clone(),
            indices: train.to_vec(),
        }),
        val: Arc::new(Subset {
            source: all,
            indices: val.to_vec(),
        }),
        native_size: None,
    })
}

/// How the loader prepares images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transform {
    /// Shuffled, augmented, full batches only.
    Train(Augment),
    /// In order, squash-resized to `resolution + margin` and centre-cropped; the last batch is
    /// padded (with copies of its last image) and says how many images are real.
    Eval { margin: u32 },
}

/// One batch, ready to upload.
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// `[N, 3, R, R]` normalised.
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// MixUp/CutMix targets `[N, 3]` (see `ops::softmax_xent`), when mixing is on.
    pub targets: Option<Vec<u32>>,
    /// Real images in the batch (less than N only for a padded last evaluation batch).
    pub count: usize,
}

/// The order of an epoch: a shuffle seeded by `(seed, epoch)`.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ));
    order
}

/// Full training batches per epoch.
pub fn train_batches(len: usize, batch: usize) -> usize {
    len / batch.max(1)
}

fn mix_seed(seed: u64, epoch: u64, position: u64) -> u64 {
    seed ^ epoch.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ position.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Batches of a source, prepared on background threads; see the module docs.
pub struct Loader {
    rx: Receiver<Batch>,
    total: usize,
}

impl Loader {
    /// Starts loading `source`, beginning at batch `first_batch` of `epoch`.
    pub fn start(
        source: Arc<dyn Source>,
        batch: usize,
        resolution: u32,
        transform: Transform,
        seed: u64,
        epoch: u64,
        first_batch: usize,
        threads: usize,
    ) -> Loader {
        let order = match transform {
            Transform::Train(_) => epoch_order(source.len(), seed, epoch),
            Transform::Eval { .. } => (0..source.len()).collect(),
        };
        let total = match transform {
            Transform::Train(_) => train_batches(order.len(), batch),
            Transform::Eval { .. } => order.len().div_ceil(batch),
        };
        let (tx, rx) = sync_channel(2);
        let threads = threads.max(1);
        std::thread::spawn(move || {
            let per = 3 * (resolution * resolution) as usize;
            for b in first_batch..total {
                let picks: Vec<usize> = (0..batch).map(|k| order[(b * batch + k).min(order.len() - 1)]).collect();
                let count = (order.len() - b * batch).min(batch);
                let mut images = vec![0f32; batch * per];
                std::thread::scope(|s| {
                    for (part, chunk) in images.chunks_mut(per * batch.div_ceil(threads)).enumerate() {
                        let (picks, source) = (&picks, &source);
                        s.spawn(move || {
                            for (k, out) in chunk.chunks_mut(per).enumerate() {
                                let slot = part * batch.div_ceil(threads) + k;
                                let img = source.image(picks[slot]);
                                let img = match transform {
                                    Transform::Train(aug) => {
                                        let mut rng = rand::rngs::StdRng::seed_from_u64(mix_seed(seed, epoch, (b * batch + slot) as u64));
                                        augment::train_transform(&img, resolution, &aug, &mut rng)
                                    }
                                    Transform::Eval { margin } => augment::eval_transform(&img, resolution, margin),
                                };
                                augment::normalize_into(&img, out);
                            }
                        });
                    }
                });
                let labels: Vec<u32> = picks.iter().map(|&i| source.label(i)).collect();
                let targets = match transform {
                    Transform::Train(aug) if aug.mixup > 0.0 || aug.cutmix > 0.0 => {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(mix_seed(seed ^ 0x00C0_FFEE, epoch, b as u64));
                        Some(augment::mix_batch(&mut images, &labels, resolution as usize, &aug, &mut rng))
                    }
                    _ => None,
                };
                if tx
                    .send(Batch {
                        index: b,
                        images,
                        labels,
                        targets,
                        count,
                    })
                    .is_err()
                {
                    return; // the consumer stopped
                }
            }
        });
        Loader { rx, total }
    }

    /// Batches in the whole epoch (including those before `first_batch`).
    pub fn total(&self) -> usize {
        self.total
    }
}

impl Iterator for Loader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.rx.recv().ok()
    }
}
