//! Image transforms: DeepMind's training augmentation and evaluation crop, and the normalisation
//! to the network's input, as DeepMind's reference input pipeline does them.
//!
//! - Training: Inception-style random-resized crop (area fraction in `[scale_min, 1]`, aspect
//!   ratio in `[3/4, 4/3]` log-uniform, 10 tries, then a centre crop), bicubic resize to the
//!   resolution, random horizontal flip.
//! - Evaluation: squash-resize the whole image to `resolution + margin` (aspect not kept,
//!   bicubic), then crop the centre `resolution` square (DeepMind's `resize_crop_32`: margin 32).
//! - Normalisation: ImageNet mean and standard deviation, to f32 CHW.
//! - MixUp and CutMix mix pairs of a batch (see [`mix_batch`]).

use super::Image;
use image::imageops::{self, FilterType};
use rand::Rng;
use rand_distr::{Beta, Distribution};

/// ImageNet channel means and standard deviations (of values in [0, 1]).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Training augmentation settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Smallest area fraction of the random-resized crop (Inception: 0.08).
    pub crop_scale: f32,
    pub flip: bool,
    /// MixUp's Beta(alpha, alpha) (0: off). DeepMind: 0.2.
    pub mixup: f32,
    /// CutMix's Beta(alpha, alpha) for the box area (0: off). DeepMind: 1.
    pub cutmix: f32,
}

impl Augment {
    /// No augmentation (evaluation, or for a test that needs the raw pixels).
    pub fn none() -> Augment {
        Augment {
            crop_scale: 1.0,
            flip: false,
            mixup: 0.0,
            cutmix: 0.0,
        }
    }
}

/// How much training varies its images (`nfnet train --augment`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AugmentPreset {
    /// Random-resized crops down to 35% of the image (8% from 128 px, as ImageNet training) and
    /// horizontal flips: for photos, shapes and textures, whose mirror image is the same class.
    #[default]
    Standard,
    /// Crops of at least 80% of the image, no flips: for digits, letters, symbols and text,
    /// whose mirror image is another class or none, and which tight crops cut apart.
    Light,
    /// The whole image, resized: nothing varied.
    None,
}

impl AugmentPreset {
    /// The preset's augmentation for images trained at `resolution`.
    pub fn augment(self, resolution: u32) -> Augment {
        match self {
            AugmentPreset::Standard => Augment {
                crop_scale: if resolution >= 128 { 0.08 } else { 0.35 },
                flip: true,
                mixup: 0.0,
                cutmix: 0.0,
            },
            AugmentPreset::Light => Augment {
                crop_scale: 0.8,
                flip: false,
                mixup: 0.0,
                cutmix: 0.0,
            },
            AugmentPreset::None => Augment::none(),
        }
    }
}

impl std::str::FromStr for AugmentPreset {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<AugmentPreset> {
        match s {
            "standard" => Ok(AugmentPreset::Standard),
            "light" => Ok(AugmentPreset::Light),
            "none" => Ok(AugmentPreset::None),
            other => Err(crate::error::Error::invalid(
                "augment",
                format!("expected `standard`, `light` or `none`, got `{other}`"),
            )),
        }
    }
}

/// The random-resized crop box `(x, y, w, h)` of an image of `(width, height)`.
pub fn random_resized_box(rng: &mut impl Rng, width: u32, height: u32, scale_min: f32) -> (u32, u32, u32, u32) {
    let area = (width * height) as f32;
    let (log_lo, log_hi) = ((3.0f32 / 4.0).ln(), (4.0f32 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale_min.min(1.0)..=1.0);
        let aspect = rng.random_range(log_lo..=log_hi).exp();
        let w = (target * aspect).sqrt().round() as u32;
        let h = (target / aspect).sqrt().round() as u32;
        if w > 0 && h > 0 && w <= width && h <= height {
            let x = rng.random_range(0..=width - w);
            let y = rng.random_range(0..=height - h);
            return (x, y, w, h);
        }
    }
    // Fallback: the largest centre crop of an allowed aspect ratio.
    let ratio = width as f32 / height as f32;
    let (w, h) = if ratio < 3.0 / 4.0 {
        (width, ((width as f32) / (3.0 / 4.0)).round() as u32)
    } else if ratio > 4.0 / 3.0 {
        (((height as f32) * (4.0 / 3.0)).round() as u32, height)
    } else {
        (width, height)
    };
    let (w, h) = (w.min(width), h.min(height));
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// The training transform of one image: random-resized crop, resize, flip.
pub fn train_transform(image: &Image, resolution: u32, aug: &Augment, rng: &mut impl Rng) -> Image {
    // A crop scale of 1 keeps the whole image (no aspect-ratio jitter either).
    let (x, y, w, h) = match aug.crop_scale >= 1.0 {
        true => (0, 0, image.width(), image.height()),
        false => random_resized_box(rng, image.width(), image.height(), aug.crop_scale),
    };
    let crop = imageops::crop_imm(image, x, y, w, h).to_image();
    let mut out = if (w, h) == (resolution, resolution) {
        crop
    } else {
        imageops::resize(&crop, resolution, resolution, FilterType::CatmullRom)
    };
    if aug.flip && rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

/// The evaluation transform: squash-resize to `resolution + margin`, centre crop `resolution`.
pub fn eval_transform(image: &Image, resolution: u32, margin: u32) -> Image {
    let size = resolution + margin;
    let resized = if (image.width(), image.height()) == (size, size) {
        image.clone()
    } else {
        imageops::resize(image, size, size, FilterType::CatmullRom)
    };
    if margin == 0 {
        return resized;
    }
    imageops::crop_imm(&resized, margin / 2, margin / 2, resolution, resolution).to_image()
}

/// Writes `image` (resolution x resolution) normalised into `out` as CHW f32.
pub fn normalize_into(image: &Image, out: &mut [f32]) {
    let plane = (image.width() * image.height()) as usize;
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] as f32 / 255.0 - MEAN[c]) / STD[c];
        }
    }
}

/// Mixes a batch in place, DeepMind's way: samples are paired with their mirror in the batch
/// (`i` with `n - 1 - i`); with both on, the first half gets MixUp (`x = lam x_i + (1 - lam)
/// x_j`, lam ~ Beta(mixup, mixup)) and the second CutMix (a box of area `1 - lam` pasted from
/// `x_j`, lam ~ Beta(cutmix, cutmix), then set to the exact kept area). Returns the targets as
/// `[a, b, lam bits]` per sample (`ops::softmax_xent`'s mixed labels).
pub fn mix_batch(images: &mut [f32], labels: &[u32], resolution: usize, aug: &Augment, rng: &mut impl Rng) -> Vec<u32> {
    let n = labels.len();
    let per = images.len() / n;
    let source = images.to_vec();
    let mut targets = Vec::with_capacity(3 * n);
    for i in 0..n {
        let j = n - 1 - i;
        let use_mixup = aug.mixup > 0.0 && (aug.cutmix <= 0.0 || i < n / 2);
        let lam = if use_mixup {
            Beta::new(aug.mixup, aug.mixup).map(|b| b.sample(rng)).unwrap_or(1.0)
        } else if aug.cutmix > 0.0 {
            let lam = Beta::new(aug.cutmix, aug.cutmix).map(|b| b.sample(rng)).unwrap_or(1.0);
            // A box of area (1 - lam), clipped to the image; lam becomes the exact kept fraction.
            let side = ((1.0 - lam).sqrt() * resolution as f32) as usize;
            let (cy, cx) = (rng.random_range(0..resolution), rng.random_range(0..resolution));
            let (y0, y1) = (cy.saturating_sub(side / 2), (cy + side.div_ceil(2)).min(resolution));
            let (x0, x1) = (cx.saturating_sub(side / 2), (cx + side.div_ceil(2)).min(resolution));
            let plane = resolution * resolution;
            for c in 0..3 {
                for y in y0..y1 {
                    let row = c * plane + y * resolution;
                    images[i * per + row + x0..i * per + row + x1].copy_from_slice(&source[j * per + row + x0..j * per + row + x1]);
                }
            }
            1.0 - ((y1 - y0) * (x1 - x0)) as f32 / plane as f32
        } else {
            1.0
        };
        if use_mixup {
            for k in 0..per {
                images[i * per + k] = lam * source[i * per + k] + (1.0 - lam) * source[j * per + k];
            }
        }
        targets.extend([labels[i], labels[j], lam.to_bits()]);
    }
    targets
}
