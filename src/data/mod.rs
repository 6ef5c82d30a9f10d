//! Training data: sources of labelled images, and the loader that turns them into batches.
//!
//! A [`Source`] is a labelled image collection: the embedded [`synthetic`] dataset, an image
//! [`folder`], or [`cifar`]-10. [`open`] builds the training and validation sources a
//! [`DataSpec`] names. A [`Loader`] runs on its own threads: it decodes, augments and normalises
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
mod loader;
pub mod synthetic;

pub use loader::{epoch_order, train_batches, Batch, Loader, LoaderOptions, Shard, Transform};

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
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
    /// Files that could not be read when the source was opened, each as `path: reason`.
    fn skipped(&self) -> &[String] {
        &[]
    }
}

/// The images `indices` of another source.
pub struct Subset {
    source: Arc<dyn Source>,
    indices: Vec<usize>,
}

impl Subset {
    pub fn new(source: Arc<dyn Source>, indices: Vec<usize>) -> Subset {
        Subset { source, indices }
    }
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

/// What data to open (saved in checkpoints, so that a resumed run reopens it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// `synthetic` (the embedded dataset; `synthetic:TRAIN[:VAL]` for other split sizes),
    /// `cifar10:DIR`, or an image folder `root/<class>/<image>`.
    #[serde(rename = "spec")]
    pub source: String,
    /// A separate validation folder for an image folder.
    pub val_data: Option<PathBuf>,
    /// Else the seeded fraction of the folder held out for validation.
    pub val_split: f64,
}

impl DataSpec {
    /// `source`, its validation images as the source has them (a folder: a tenth held out).
    pub fn new(source: &str) -> DataSpec {
        DataSpec {
            source: source.into(),
            val_data: None,
            val_split: 0.1,
        }
    }

    /// The folder `source` names: an image folder, or `cifar10:DIR`'s DIR; `None` for the
    /// embedded sets.
    pub fn folder(&self) -> Option<&Path> {
        if self.source.starts_with("synthetic") {
            return None;
        }
        Some(Path::new(self.source.strip_prefix("cifar10:").unwrap_or(&self.source)))
    }

    /// The spec with its folders absolute (each resolved from the current directory, or as
    /// given where it does not exist: opening it will say so), so that it names the same data
    /// from anywhere.
    pub fn absolute(&self) -> DataSpec {
        let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let source = match self.folder() {
            None => self.source.clone(),
            Some(dir) => {
                let prefix = if self.source.starts_with("cifar10:") { "cifar10:" } else { "" };
                format!("{prefix}{}", absolute(dir).display())
            }
        };
        DataSpec {
            source,
            val_data: self.val_data.as_deref().map(absolute),
            val_split: self.val_split,
        }
    }

    /// Whether a folder of the spec is named by a relative path.
    pub fn has_relative_folder(&self) -> bool {
        self.folder().is_some_and(Path::is_relative) || self.val_data.as_ref().is_some_and(|v| v.is_relative())
    }
}

impl Default for DataSpec {
    /// The embedded dataset.
    fn default() -> DataSpec {
        DataSpec::new("synthetic")
    }
}

/// How [`open`] opens data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Seeds the embedded images and a folder's validation split.
    pub seed: u64,
    /// Decoded folder images are kept with their shorter side at most this long.
    pub keep_side: u32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions { seed: 0, keep_side: 64 }
    }
}

/// Opens the training and validation sources `spec` names; see [`DataSpec`].
pub fn open(spec: &DataSpec, options: &OpenOptions) -> Result<Dataset> {
    let (seed, keep_side, val_fraction) = (options.seed, options.keep_side, spec.val_split);
    let val_dir = spec.val_data.as_deref();
    let spec = spec.source.as_str();
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
                "{spec}: {} images leave none for validation; give a validation folder or a larger validation split",
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

/// Decodes an image file to RGB (grayscale and RGBA are converted), as an image folder does.
pub fn load_image(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        error: e,
    })?;
    folder::decode_rgb(&bytes).map_err(|reason| Error::Format {
        path: path.display().to_string(),
        message: format!("not a readable image: {reason}"),
    })
}
