//! `agc`: adaptive gradient clipping (Brock et al. 2021), unit-wise, applied to the raw gradient
//! before weight decay and momentum. On the GPU it runs inside the update, `sgd_agc_update`
//! ([`crate::ops::sgd::agc_update`]): one pass over each parameter, the clipped gradient never
//! written out. This module holds the unit layout and the reference.
//!
//! ```text
//! w [units, len]   g [units, len]
//! max_u = clip * max(|w_u|_2, eps)
//! g_u  *= max_u / max(|g_u|_2, 1e-6)     where |g_u|_2 >= max_u (else unchanged)
//! ```
//! Units follow timm: a conv weight `[K, C/G, R, S]` has K units of C/G*R*S; a linear `[O, I]`
//! has O units of I; a conv gain `[K,1,1,1]` has K units of 1; vectors and scalars (biases,
//! skip gains) are one unit ([`Agc::for_shape`]). DeepMind's whole-vector gain norm is
//! `Agc::whole`. Defaults: clip (lambda) 0.01, eps 1e-3.

use crate::error::{Error, Result};

/// One parameter's clipping: its unit layout and constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agc {
    pub units: usize,
    pub unit_len: usize,
    /// lambda: the largest allowed ratio of gradient norm to weight norm.
    pub clip: f32,
    pub eps: f32,
}

impl Agc {
    /// timm's units for a tensor of `shape`: rank <= 1 is one unit, otherwise one per index of
    /// the first dimension (output channel or row).
    pub fn for_shape(shape: &[usize], clip: f32, eps: f32) -> Agc {
        let numel: usize = shape.iter().product();
        match shape {
            [] | [_] => Agc::whole(numel, clip, eps),
            [units, ..] => Agc {
                units: *units,
                unit_len: numel / units.max(&1),
                clip,
                eps,
            },
        }
    }

    /// The whole tensor as one unit.
    pub fn whole(numel: usize, clip: f32, eps: f32) -> Agc {
        Agc {
            units: 1,
            unit_len: numel,
            clip,
            eps,
        }
    }
}

impl Agc {
    /// Checks the constants and that the units cover `numel` elements.
    pub(crate) fn validate(&self, op: &str, numel: usize) -> Result<()> {
        if self.units * self.unit_len != numel {
            return Err(Error::shape(
                op,
                "AGC units x unit length",
                numel,
                format!("{} x {}", self.units, self.unit_len),
            ));
        }
        if !(self.clip > 0.0) || !(self.eps >= 0.0) {
            return Err(Error::invalid(
                op,
                format!("AGC clip must be > 0 and eps >= 0, got {} and {}", self.clip, self.eps),
            ));
        }
        Ok(())
    }
}

/// The f64 reference.
pub mod cpu {
    use super::Agc;

    pub fn clip(spec: &Agc, w: &[f64], g: &[f64]) -> Vec<f64> {
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        w.chunks(spec.unit_len)
            .zip(g.chunks(spec.unit_len))
            .flat_map(|(wu, gu)| {
                let max = spec.clip as f64 * norm(wu).max(spec.eps as f64);
                let gn = norm(gu);
                let f = if gn < max { 1.0 } else { max / gn.max(1e-6) };
                gu.iter().map(move |v| v * f)
            })
            .collect()
    }
}
