//! A trial: seeded inputs and a NaN-poisoned output of one conv pass at one shape, made once and
//! reused by every candidate the tuner times on it.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Launch};
use crate::ops::grouped_conv::{self, tiles, Conv2d, Packing, Pass, Prologue, Storage, Tile};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use web_time::Instant;

/// See the module docs. The `_textured` kernels get their activations and packed weights as
/// textures.
pub(super) struct Trial<'a> {
    gpu: &'a Gpu,
    pass: Pass,
    spec: Conv2d,
    /// The weights, unpacked.
    w: GpuTensor,
    /// x (forward, weight gradient) or dy (input gradient).
    input: GpuTensor,
    /// The packed weights (forward, input gradient) or dy (weight gradient).
    other: GpuTensor,
    /// b (forward) or db (weight gradient), when the conv has a bias.
    bias: Option<GpuTensor>,
    partials: Option<GpuTensor>,
    out: GpuTensor,
}

impl<'a> Trial<'a> {
    /// A trial of `pass` at `spec` with its operands in `storage`.
    pub(super) fn new(gpu: &'a Gpu, pass: Pass, spec: &Conv2d, storage: Storage) -> Result<Trial<'a>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x711e);
        let mut random = |label: &str, shape: &[usize]| {
            let data: Vec<f32> = (0..shape.iter().product()).map(|_| StandardNormal.sample(&mut rng)).collect();
            GpuTensor::from_f32(gpu, label, shape, &data)
        };
        let w = random("w", &spec.w_shape())?;
        let bias = spec.bias.then(|| random("b", &[spec.k])).transpose()?;
        // An activation; the textured kernels' packed once here, not in every timed run.
        let mut activation = |label: &str, shape: [usize; 4]| -> Result<GpuTensor> {
            let t = random(label, &shape)?;
            if storage == Storage::Buffer {
                return Ok(t);
            }
            let packed = GpuTensor::texture(gpu, label, &grouped_conv::packed_activation_shape(shape, spec.groups))?;
            gpu.run(&[&grouped_conv::pack_activation(gpu, spec.groups, &t, Prologue::None, None, &packed)?])?;
            Ok(packed)
        };
        let packed = |w: &GpuTensor, packing: Packing| -> Result<GpuTensor> {
            let packed = storage.tensor(gpu, "autotune packed", &[grouped_conv::packed_len(spec, packing)])?;
            gpu.run(&[&grouped_conv::pack_weight(gpu, spec, w, &packed, packing)?])?;
            Ok(packed)
        };
        let (input, other, out, partials) = match pass {
            Pass::Forward => {
                let x = activation("x", spec.x_shape())?;
                (
                    x,
                    packed(&w, Packing::OutputInner)?,
                    GpuTensor::zeros(gpu, "y", &spec.y_shape())?,
                    None,
                )
            }
            Pass::BackwardInput => {
                let dy = activation("dy", spec.y_shape())?;
                (
                    dy,
                    packed(&w, Packing::InputInner)?,
                    GpuTensor::zeros(gpu, "dx", &spec.x_shape())?,
                    None,
                )
            }
            Pass::BackwardWeight => {
                let (x, dy) = (activation("x", spec.x_shape())?, activation("dy", spec.y_shape())?);
                let partials = grouped_conv::partials_shape(&gpu.limits, spec)
                    .map(|shape| GpuTensor::zeros(gpu, "partials", &shape))
                    .transpose()?;
                (x, dy, GpuTensor::zeros(gpu, "dw", &spec.w_shape())?, partials)
            }
        };
        Ok(Trial {
            gpu,
            pass,
            spec: *spec,
            w,
            input,
            other,
            bias,
            partials,
            out,
        })
    }

    /// Runs the pass with `tile` on a poisoned output: the best time in milliseconds and the
    /// output.
    pub(super) fn run(&self, tile: Tile) -> Result<(f64, Vec<f32>)> {
        let (gpu, spec) = (self.gpu, &self.spec);
        let launch = match self.pass {
            Pass::Forward => grouped_conv::forward(gpu, spec, &self.input, &self.other, self.bias.as_ref(), &self.out, tile)?,
            Pass::BackwardInput => grouped_conv::backward_input(gpu, spec, &self.input, &self.other, &self.out, false, tile)?,
            Pass::BackwardWeight => grouped_conv::backward_weight(
                gpu,
                spec,
                &self.input,
                &self.other,
                &self.out,
                self.bias.as_ref(),
                self.partials.as_ref(),
                tile,
            )?,
        };
        self.measure(&launch)
    }

    /// On a forward trial of buffers: its default tile, or (`Storage::Texture`) the weights
    /// packed into a texture and the `_textured` kernel with its default tile, packing x inside
    /// the timed launch as a plan does.
    pub(super) fn run_storage(&self, storage: Storage) -> Result<(f64, Vec<f32>)> {
        let tile = tiles(Pass::Forward, &self.spec, storage)[0];
        if storage == Storage::Buffer {
            return self.run(tile);
        }
        let gpu = self.gpu;
        let packed = GpuTensor::texture(gpu, "autotune packed", &[self.other.numel()])?;
        gpu.run(&[&grouped_conv::pack_weight(gpu, &self.spec, &self.w, &packed, Packing::OutputInner)?])?;
        let launch = grouped_conv::forward(gpu, &self.spec, &self.input, &packed, self.bias.as_ref(), &self.out, tile)?;
        self.measure(&launch)
    }

    /// Runs `launch` (which writes `out`) on a poisoned output: the best time in milliseconds
    /// and the output.
    fn measure(&self, launch: &Launch) -> Result<(f64, Vec<f32>)> {
        self.out.write_f32(self.gpu, &vec![f32::NAN; self.out.numel()])?;
        let ms = time(self.gpu, launch, 2)?;
        #[cfg(not(target_arch = "wasm32"))]
        return Ok((ms, self.out.read_f32(self.gpu)?));
        // A page cannot block on a timed kernel: in a browser every choice is the default.
        #[cfg(target_arch = "wasm32")]
        Err(crate::error::Error::invalid(
            "tuning",
            format!("a browser cannot wait for a timed kernel ({ms} ms so far)"),
        ))
    }
}

/// Runs `launch` once to warm up, then `reps` times, and returns the best time in milliseconds.
fn time(gpu: &Gpu, launch: &Launch, reps: usize) -> Result<f64> {
    gpu.run(&[launch])?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        gpu.run(&[launch])?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}
