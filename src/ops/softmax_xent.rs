//! `softmax_xent`: softmax cross-entropy with label smoothing, the loss and its gradient fused
//! (llm.c's `crossentropy_softmax_backward`), then the batch mean.
//!
//! ```text
//! logits [N, K]   labels [N] (u32)   loss [1] (mean over the batch)   dlogits [N, K]
//! q       = (1 - eps) * onehot(label) + eps / K
//! mixed:   labels [N, 3] = (a, b, lambda's f32 bits): q = (1 - eps) * (lambda onehot(a)
//!          + (1 - lambda) onehot(b)) + eps / K, the targets of MixUp and CutMix
//! loss    = mean_n (logsumexp(z_n) - sum_k q_k z_nk)
//! dlogits = (softmax(z_n) - q) * grad_scale        (grad_scale = 1/N: the gradient of the mean)
//! ```
//! Labels are checked on the host when uploaded ([`check_labels`]); a label out of range that
//! reaches the kernel anyway gives a NaN loss, never a silent wrong answer.

use crate::error::{Error, Result};
use crate::gpu::{grid, DType, Gpu, GpuTensor, Kernel, Launch, Step};
use crate::ops::{check_shape, sum_partials::sum_partials};

/// Batch size, classes, the label-smoothing factor, and whether targets are mixed pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxXent {
    pub n: usize,
    pub classes: usize,
    pub smoothing: f32,
    pub mixed: bool,
}

impl SoftmaxXent {
    /// The shape of the labels tensor: `[N]`, or `[N, 3]` for mixed targets.
    pub fn labels_shape(&self) -> Vec<usize> {
        if self.mixed {
            vec![self.n, 3]
        } else {
            vec![self.n]
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    classes: u32,
    smoothing: f32,
    grad_scale: f32,
    mixed: u32,
    _pad: [u32; 3],
}

/// Every label must name a class.
pub fn check_labels(labels: &[u32], classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(i) => Err(Error::invalid(
            "labels",
            format!(
                "label {} at index {i} is not a class index (there are {classes} classes)",
                labels[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Writes the mean loss into `loss [1]` and `dlogits`, both overwritten.
pub fn forward_backward(
    gpu: &Gpu,
    spec: &SoftmaxXent,
    logits: &GpuTensor,
    labels: &GpuTensor,
    loss: &GpuTensor,
    dlogits: &GpuTensor,
) -> Result<Launch> {
    let kernel = Kernel::SoftmaxXentFused;
    let op = kernel.name();
    if spec.n == 0 || spec.classes == 0 {
        return Err(Error::shape(
            op,
            "N x classes",
            "both > 0",
            format!("{} x {}", spec.n, spec.classes),
        ));
    }
    if !(0.0..1.0).contains(&spec.smoothing) {
        return Err(Error::invalid(
            op,
            format!("label smoothing must be in [0, 1), got {}", spec.smoothing),
        ));
    }
    check_shape(op, "logits", logits, &[spec.n, spec.classes])?;
    check_shape(op, "labels", labels, &spec.labels_shape())?;
    if labels.dtype() != DType::U32 {
        return Err(Error::shape(op, "labels", "u32 class indices", format!("{:?}", labels.dtype())));
    }
    check_shape(op, "loss", loss, &[1])?;
    check_shape(op, "dlogits", dlogits, &[spec.n, spec.classes])?;
    let rows = GpuTensor::zeros(gpu, "loss rows", &[spec.n])?;
    let params = Params {
        n: spec.n as u32,
        classes: spec.classes as u32,
        smoothing: spec.smoothing,
        grad_scale: 1.0 / spec.n as f32,
        mixed: spec.mixed as u32,
        _pad: [0; 3],
    };
    let fused = Step::new(
        gpu,
        kernel,
        &[],
        &params,
        &[logits.into(), labels.into(), (&rows).into(), dlogits.into()],
        grid(&gpu.limits, op, spec.n.div_ceil(64))?,
    )?;
    let mean = sum_partials(gpu, &rows, loss, spec.n, spec.n, 1.0 / spec.n as f32, false)?;
    Ok(Launch {
        steps: vec![fused, mean],
        scratch: vec![rows],
    })
}

/// The f64 reference.
pub mod cpu {
    use super::SoftmaxXent;

    /// One row's target: `(a, b, lambda)`.
    fn target(spec: &SoftmaxXent, labels: &[u32], row: usize) -> (usize, usize, f64) {
        if spec.mixed {
            (
                labels[3 * row] as usize,
                labels[3 * row + 1] as usize,
                f32::from_bits(labels[3 * row + 2]) as f64,
            )
        } else {
            (labels[row] as usize, labels[row] as usize, 1.0)
        }
    }

    /// Returns (mean loss, dlogits).
    pub fn forward_backward(spec: &SoftmaxXent, logits: &[f64], labels: &[u32]) -> (f64, Vec<f64>) {
        let k = spec.classes;
        let eps = spec.smoothing as f64;
        let mut loss = 0.0;
        let mut dlogits = Vec::with_capacity(logits.len());
        for (row, z) in logits.chunks(k).enumerate() {
            let (a, b, lam) = target(spec, labels, row);
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let se: f64 = z.iter().map(|v| (v - m).exp()).sum();
            let lse = m + se.ln();
            for (j, v) in z.iter().enumerate() {
                let onehot = lam * (j == a) as u8 as f64 + (1.0 - lam) * (j == b) as u8 as f64;
                let q = (1.0 - eps) * onehot + eps / k as f64;
                loss += q * (lse - v);
                dlogits.push(((v - m).exp() / se - q) / spec.n as f64);
            }
        }
        (loss / spec.n as f64, dlogits)
    }
}
