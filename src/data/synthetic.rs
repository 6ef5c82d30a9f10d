//! The embedded default dataset: ten classes of coloured shapes and textures at 32x32, drawn on
//! the fly from a seed, so nothing is downloaded and every run sees the same images.
//!
//! Classes: disk, square, triangle, ring, plus, horizontal stripes, vertical stripes,
//! checkerboard, diagonal stripes, diagonal cross. Each image has a random background and
//! foreground colour (with enough contrast to see), position, size, stripe period and phase,
//! and Gaussian pixel noise; colour carries no information about the class. Image `i` of the
//! set is a pure function of `(seed, i)`; the training and held-out splits draw from disjoint
//! index ranges.

use super::{Image, Source};
use rand::{Rng, SeedableRng};

/// The class names, in label order.
pub const CLASSES: [&str; 10] = [
    "disk", "square", "triangle", "ring", "plus", "hstripes", "vstripes", "checker", "diagonal", "cross",
];

/// Side of the generated images.
pub const SIZE: u32 = 32;

/// `len` images starting at index `first` of the endless set drawn from `seed`.
pub struct Synthetic {
    seed: u64,
    first: usize,
    len: usize,
    classes: Vec<String>,
}

impl Synthetic {
    pub fn new(seed: u64, first: usize, len: usize) -> Synthetic {
        Synthetic {
            seed,
            first,
            len,
            classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rng(&self, i: usize) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self.first + i) as u64)
    }
}

/// A random colour, and one with at least `min` contrast in mean brightness from it.
fn colours(rng: &mut impl Rng) -> ([f32; 3], [f32; 3]) {
    let bg: [f32; 3] = std::array::from_fn(|_| rng.random::<f32>());
    loop {
        let fg: [f32; 3] = std::array::from_fn(|_| rng.random::<f32>());
        let luma = |c: &[f32; 3]| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
        if (luma(&fg) - luma(&bg)).abs() > 0.3 {
            return (bg, fg);
        }
    }
}

/// Whether pixel `(x, y)` (in [0, 1) image coordinates) is foreground for `class`.
fn inside(class: usize, x: f32, y: f32, cx: f32, cy: f32, r: f32, period: f32, phase: f32) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    let stripe = |t: f32| ((t + phase) / period).rem_euclid(1.0) < 0.5;
    match class {
        0 => dx * dx + dy * dy < r * r,
        1 => dx.abs().max(dy.abs()) < r * 0.85,
        2 => dy < r * 0.8 && dy > -r && dx.abs() < (dy + r) * 0.6,
        3 => {
            let d = (dx * dx + dy * dy).sqrt();
            d < r && d > r * 0.55
        }
        4 => (dx.abs() < r * 0.3 && dy.abs() < r) || (dy.abs() < r * 0.3 && dx.abs() < r),
        5 => stripe(y),
        6 => stripe(x),
        7 => stripe(x) != stripe(y),
        8 => stripe((x + y) * std::f32::consts::FRAC_1_SQRT_2),
        _ => ((dx - dy).abs() < r * 0.3 || (dx + dy).abs() < r * 0.3) && dx.abs() < r && dy.abs() < r,
    }
}

impl Source for Synthetic {
    fn len(&self) -> usize {
        self.len
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, i: usize) -> u32 {
        ((self.first + i) % CLASSES.len()) as u32
    }

    fn image(&self, i: usize) -> Image {
        let mut rng = self.rng(i);
        let class = self.label(i) as usize;
        let (bg, fg) = colours(&mut rng);
        let r: f32 = rng.random_range(0.18..0.36);
        let (cx, cy) = (rng.random_range(r..1.0 - r), rng.random_range(r..1.0 - r));
        let period: f32 = rng.random_range(0.12..0.3);
        let phase: f32 = rng.random();
        let noise = rng.random_range(0.02..0.1);
        let normal = rand_distr::Normal::new(0.0f32, noise).expect("a positive deviation");
        Image::from_fn(SIZE, SIZE, |px, py| {
            let (x, y) = ((px as f32 + 0.5) / SIZE as f32, (py as f32 + 0.5) / SIZE as f32);
            let c = if inside(class, x, y, cx, cy, r, period, phase) { fg } else { bg };
            image::Rgb(std::array::from_fn(|k| {
                ((c[k] + rand_distr::Distribution::sample(&normal, &mut rng)).clamp(0.0, 1.0) * 255.0).round() as u8
            }))
        })
    }
}
