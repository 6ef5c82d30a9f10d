//! The loader: batches of a source decoded, augmented and normalised on background threads
//! while the GPU trains on the previous batch, handed over through a bounded channel. Every
//! random draw is a pure function of the seed, the epoch and the position (see [`super`]).

use super::augment::{self, Augment};
use super::Source;
use rand::seq::SliceRandom;
use rand::SeedableRng;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

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

/// Which batches a [`Loader`] prepares, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoaderOptions {
    /// Images per batch.
    pub batch: usize,
    /// The side of the square images handed out.
    pub resolution: u32,
    pub transform: Transform,
    /// Seeds the order and the augmentation (training).
    pub seed: u64,
    pub epoch: u64,
    /// The first batch of the epoch handed out (a resumed run's position).
    pub first_batch: usize,
    /// Threads that decode and augment.
    pub threads: usize,
    /// The batches this loader hands out (all of them, but on one of several ranks).
    pub shard: Shard,
}

/// The batches of an epoch one of `ranks` data-parallel ranks makes: runs of `run` consecutive
/// batches (a rank's micro-batches of one step) dealt out in turn, rank `rank` taking run
/// `rank`, `rank + ranks`, ... Batch `b` holds the images at positions `b * batch ..` of the
/// epoch's order whichever rank makes it, so the ranks together see what one device would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub ranks: usize,
    pub run: usize,
}

impl Shard {
    /// Every batch.
    pub const WHOLE: Shard = Shard { rank: 0, ranks: 1, run: 1 };

    /// The passes of one optimizer step over all ranks.
    pub fn passes_per_step(&self) -> usize {
        self.run.max(1) * self.ranks.max(1)
    }

    pub fn owns(&self, b: usize) -> bool {
        (b / self.run.max(1)) % self.ranks.max(1) == self.rank
    }
}

impl LoaderOptions {
    /// The evaluation batches of `batch` images at `resolution`, in order, from the first.
    pub fn eval(batch: usize, resolution: u32, margin: u32, threads: usize) -> LoaderOptions {
        LoaderOptions {
            batch,
            resolution,
            transform: Transform::Eval { margin },
            seed: 0,
            shard: Shard::WHOLE,
            epoch: 0,
            first_batch: 0,
            threads,
        }
    }
}

/// Batches of a source, prepared on background threads (in a browser, on the caller's thread
/// as each is taken); see the module docs.
pub struct Loader {
    #[cfg(not(target_arch = "wasm32"))]
    rx: Receiver<Batch>,
    #[cfg(target_arch = "wasm32")]
    maker: Maker,
    #[cfg(target_arch = "wasm32")]
    next: usize,
    total: usize,
}

/// Everything that makes batch `b` of an epoch.
struct Maker {
    source: Arc<dyn Source>,
    options: LoaderOptions,
    order: Vec<usize>,
}

impl Maker {
    fn batch(&self, b: usize) -> Batch {
        let LoaderOptions {
            batch,
            resolution,
            transform,
            seed,
            epoch,
            threads,
            ..
        } = self.options;
        let (order, source) = (&self.order, &self.source);
        let per = 3 * (resolution * resolution) as usize;
        let picks: Vec<usize> = (0..batch).map(|k| order[(b * batch + k).min(order.len() - 1)]).collect();
        let count = (order.len() - b * batch).min(batch);
        let mut images = vec![0f32; batch * per];
        let per_thread = batch.div_ceil(threads.max(1));
        let make = |part: usize, chunk: &mut [f32]| {
            for (k, out) in chunk.chunks_mut(per).enumerate() {
                let slot = part * per_thread + k;
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
        };
        if threads <= 1 {
            make(0, &mut images);
        } else {
            std::thread::scope(|s| {
                for (part, chunk) in images.chunks_mut(per * per_thread).enumerate() {
                    let make = &make;
                    s.spawn(move || make(part, chunk));
                }
            });
        }
        let labels: Vec<u32> = picks.iter().map(|&i| source.label(i)).collect();
        let targets = match transform {
            Transform::Train(aug) if aug.mixup > 0.0 || aug.cutmix > 0.0 => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(mix_seed(seed ^ 0x00C0_FFEE, epoch, b as u64));
                Some(augment::mix_batch(&mut images, &labels, resolution as usize, &aug, &mut rng))
            }
            _ => None,
        };
        Batch {
            index: b,
            images,
            labels,
            targets,
            count,
        }
    }
}

impl Loader {
    /// Starts loading `source` as `options` say.
    pub fn start(source: Arc<dyn Source>, options: &LoaderOptions) -> Loader {
        let order = match options.transform {
            Transform::Train(_) => epoch_order(source.len(), options.seed, options.epoch),
            Transform::Eval { .. } => (0..source.len()).collect(),
        };
        let total = match options.transform {
            Transform::Train(_) => train_batches(order.len(), options.batch),
            Transform::Eval { .. } => order.len().div_ceil(options.batch),
        };
        let maker = Maker {
            source,
            // A page has one thread.
            options: LoaderOptions {
                threads: if cfg!(target_arch = "wasm32") { 1 } else { options.threads },
                ..*options
            },
            order,
        };
        #[cfg(target_arch = "wasm32")]
        return Loader {
            next: options.first_batch,
            maker,
            total,
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            let (tx, rx) = sync_channel(2);
            let first = options.first_batch;
            std::thread::spawn(move || {
                for b in (first..total).filter(|&b| maker.options.shard.owns(b)) {
                    if tx.send(maker.batch(b)).is_err() {
                        return; // the consumer stopped
                    }
                }
            });
            Loader { rx, total }
        }
    }

    /// Batches in the whole epoch (including those before `first_batch`).
    pub fn total(&self) -> usize {
        self.total
    }
}

impl Iterator for Loader {
    type Item = Batch;
    #[cfg(not(target_arch = "wasm32"))]
    fn next(&mut self) -> Option<Batch> {
        self.rx.recv().ok()
    }
    #[cfg(target_arch = "wasm32")]
    fn next(&mut self) -> Option<Batch> {
        while self.next < self.total && !self.maker.options.shard.owns(self.next) {
            self.next += 1;
        }
        let b = self.next;
        self.next += 1;
        (b < self.total).then(|| self.maker.batch(b))
    }
}
