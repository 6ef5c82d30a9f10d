//! `weight_std`: scaled weight standardization (WS), the normaliser of every NFNet conv.
//!
//! ```text
//! w [K, F] (any [K, ...] with F = fan_in = C/G*R*S elements per unit)   gain [K] (or [K,1,1,1])
//! mean_k, var_k = biased mean and variance of w[k, :]
//! timm:      w_hat = gain*m * (w - mean) / (sqrt(var + eps) * sqrt(F))     (eps = 1e-5 in NFNets)
//! DeepMind:  w_hat = gain*m * (w - mean) / sqrt(max(F * var, eps))          (eps = 1e-4)
//! ```
//! `m` (the multiplier) is 1, or timm's activation gamma folded into the conv for its own NF
//! flavour. The forward also writes `stats [K, 2] = (mean - w[k,0], var)`, all the backward needs
//! (not a second copy of w_hat). The mean is kept as its offset from the unit's first value so
//! that `w - mean` rounds to the spread of the unit, not to the size of its mean. The backward
//! gives `dw [K, F]` and `dgain [K]` from `dw_hat`; see `shaders/weight_std_backward.wgsl` for
//! the closed form.

use crate::error::{Error, Result};
use crate::gpu::{grid, Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::{check_numel, check_shape};

/// Which reference formula standardizes the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WsForm {
    /// timm's `ScaledStdConv2d`: `(w - mean) / (sqrt(var + eps) * sqrt(fan_in))`.
    #[default]
    Timm,
    /// DeepMind's `WSConv2D`: `(w - mean) / sqrt(max(fan_in * var, eps))`.
    DeepMind,
}

/// The shape and constants of one standardization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightStd {
    /// Output units (K).
    pub k: usize,
    /// Elements per unit (C/G*R*S).
    pub fan_in: usize,
    pub eps: f32,
    pub form: WsForm,
    /// Extra scale (timm's gamma folded into the conv); 1 otherwise.
    pub multiplier: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    fan_in: u32,
    eps: f32,
    form: u32,
    multiplier: f32,
    _pad: [u32; 3],
}

impl WeightStd {
    fn params(&self) -> Params {
        let form = match self.form {
            WsForm::Timm => 0,
            WsForm::DeepMind => 1,
        };
        Params {
            k: self.k as u32,
            fan_in: self.fan_in as u32,
            eps: self.eps,
            form,
            multiplier: self.multiplier,
            _pad: [0; 3],
        }
    }

    fn validate(&self, op: &str) -> Result<()> {
        if self.k == 0 || self.fan_in == 0 {
            return Err(Error::shape(
                op,
                "units x fan_in",
                "both > 0",
                format!("{} x {}", self.k, self.fan_in),
            ));
        }
        if !(self.eps >= 0.0) {
            return Err(Error::invalid(op, format!("eps must be >= 0, got {}", self.eps)));
        }
        Ok(())
    }

    fn check_w(&self, op: &str, what: &str, w: &GpuTensor) -> Result<()> {
        check_numel(op, what, w, self.k * self.fan_in)?;
        if w.shape().first() != Some(&self.k) {
            return Err(Error::shape(
                op,
                what,
                format!("[{}, ...] (units first)", self.k),
                format!("{:?}", w.shape()),
            ));
        }
        Ok(())
    }
}

/// `w_hat = WS(w, gain)`, and the per-unit `stats [K, 2]` for the backward.
pub fn forward(gpu: &Gpu, spec: &WeightStd, w: &GpuTensor, gain: &GpuTensor, w_hat: &GpuTensor, stats: &GpuTensor) -> Result<Launch> {
    let op = Kernel::WeightStdForward.name();
    spec.validate(op)?;
    spec.check_w(op, "w", w)?;
    spec.check_w(op, "w_hat", w_hat)?;
    check_numel(op, "gain", gain, spec.k)?;
    check_shape(op, "stats", stats, &[spec.k, 2])?;
    let args = [w.into(), gain.into(), w_hat.into(), stats.into()];
    let step = Step::new(
        gpu,
        Kernel::WeightStdForward,
        &[],
        &spec.params(),
        &args,
        grid(&gpu.limits, op, spec.k)?,
    )?;
    Ok(Launch::from(step))
}

/// `dw, dgain` from `dw_hat`, and `dw_sq` (`[K]`): each unit's squared norm of `dw`, which the
/// AGC update takes instead of summing it again (all overwritten).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    spec: &WeightStd,
    w: &GpuTensor,
    gain: &GpuTensor,
    stats: &GpuTensor,
    dw_hat: &GpuTensor,
    dw: &GpuTensor,
    dgain: &GpuTensor,
    dw_sq: &GpuTensor,
) -> Result<Launch> {
    let op = Kernel::WeightStdBackward.name();
    spec.validate(op)?;
    spec.check_w(op, "w", w)?;
    spec.check_w(op, "dw_hat", dw_hat)?;
    spec.check_w(op, "dw", dw)?;
    check_numel(op, "gain", gain, spec.k)?;
    check_numel(op, "dgain", dgain, spec.k)?;
    check_numel(op, "dw_sq", dw_sq, spec.k)?;
    check_shape(op, "stats", stats, &[spec.k, 2])?;
    let args = [
        w.into(),
        gain.into(),
        stats.into(),
        dw_hat.into(),
        dw.into(),
        dgain.into(),
        dw_sq.into(),
    ];
    let step = Step::new(
        gpu,
        Kernel::WeightStdBackward,
        &[],
        &spec.params(),
        &args,
        grid(&gpu.limits, op, spec.k)?,
    )?;
    Ok(Launch::from(step))
}

/// The f64 reference.
pub mod cpu {
    use super::{WeightStd, WsForm};

    fn moments(row: &[f64]) -> (f64, f64) {
        let n = row.len() as f64;
        let mean = row.iter().sum::<f64>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        (mean, var)
    }

    fn scale(spec: &WeightStd, var: f64) -> f64 {
        let (f, eps) = (spec.fan_in as f64, spec.eps as f64);
        match spec.form {
            WsForm::Timm => 1.0 / ((var + eps).sqrt() * f.sqrt()),
            WsForm::DeepMind => 1.0 / (f * var).max(eps).sqrt(),
        }
    }

    pub fn forward(spec: &WeightStd, w: &[f64], gain: &[f64]) -> Vec<f64> {
        let m = spec.multiplier as f64;
        w.chunks(spec.fan_in)
            .zip(gain)
            .flat_map(|(row, g)| {
                let (mean, var) = moments(row);
                let s = scale(spec, var) * g * m;
                row.iter().map(move |v| (v - mean) * s).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Returns (dw, dgain), derived directly from the chain rule through mean and var.
    pub fn backward(spec: &WeightStd, w: &[f64], gain: &[f64], dw_hat: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (f, eps, m) = (spec.fan_in as f64, spec.eps as f64, spec.multiplier as f64);
        let mut dw = Vec::with_capacity(w.len());
        let mut dgain = Vec::with_capacity(gain.len());
        for ((row, g), dh) in w.chunks(spec.fan_in).zip(gain).zip(dw_hat.chunks(spec.fan_in)) {
            let (mean, var) = moments(row);
            let s = scale(spec, var);
            // ds/dvar for each form.
            let ds_dvar = match spec.form {
                WsForm::Timm => -0.5 * s / (var + eps),
                WsForm::DeepMind if f * var > eps => -0.5 * s / var,
                WsForm::DeepMind => 0.0,
            };
            let a = g * m;
            let dot: f64 = dh.iter().zip(row).map(|(d, v)| d * (v - mean)).sum();
            dgain.push(m * s * dot);
            // dL/du_i = a*s*dh_i + a*ds_dvar*dot*(2/F)*u_i; dL/dw = dL/du - mean(dL/du).
            let du: Vec<f64> = dh
                .iter()
                .zip(row)
                .map(|(d, v)| a * s * d + a * ds_dvar * dot * 2.0 / f * (v - mean))
                .collect();
            let mean_du = du.iter().sum::<f64>() / f;
            dw.extend(du.iter().map(|d| d - mean_du));
        }
        (dw, dgain)
    }
}
