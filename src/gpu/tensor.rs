//! GPU tensors: a labelled storage buffer and a shape.
//!
//! Activations are NCHW, conv weights OIHW (K, C/G, R, S), linear weights (O, I), all row-major
//! and contiguous. The label travels into wgpu, so a validation error names the tensor.
//!
//! A tensor may be a view of the first elements of a larger, shared buffer: the plan gives
//! tensors whose lifetimes do not overlap the same memory. Cloning a tensor clones the handle.
//!
//! A tensor may instead live in an rgba32float texture ([`GpuTensor::texture`]): element `i` is
//! component `i % 4` of texel `(i / 4) % TEXTURE_WIDTH, (i / 4) / TEXTURE_WIDTH`. Packed conv
//! weights live there on adapters where texel fetches are cheaper than storage-buffer loads (a
//! software rasterizer: one texel fetch per lane costs a fraction of a bounds-checked buffer
//! load). Kernels read them with `textureLoad` and `grouped_conv_pack_weight` writes them with
//! `textureStore`; reading and writing from the host works as for buffers.

use super::Gpu;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Element type of a tensor. Everything numeric is f32; labels are u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

/// Texels per row of a texture-backed tensor (16 KiB rows of 4 floats: 256-byte aligned for
/// copies, and within WebGPU's default 8192 texels).
pub const TEXTURE_WIDTH: usize = 4096;

/// Where a tensor's elements live.
#[derive(Clone, Debug)]
enum Storage {
    Buffer(Arc<wgpu::Buffer>),
    /// An rgba32float texture `TEXTURE_WIDTH` texels wide, and a view of it.
    Texture(Arc<wgpu::Texture>, Arc<wgpu::TextureView>),
}

/// A contiguous tensor at the start of a GPU buffer (or texture).
#[derive(Clone, Debug)]
pub struct GpuTensor {
    storage: Storage,
    shape: Vec<usize>,
    dtype: DType,
    label: String,
}

fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

impl GpuTensor {
    /// A zero-filled tensor (wgpu zero-initialises new buffers).
    pub fn zeros(gpu: &Gpu, label: &str, shape: &[usize]) -> Result<GpuTensor> {
        GpuTensor::empty(gpu, label, shape, DType::F32)
    }

    /// A tensor with every element set to `value` (NaN poisons outputs in tests).
    pub fn filled(gpu: &Gpu, label: &str, shape: &[usize], value: f32) -> Result<GpuTensor> {
        let t = GpuTensor::empty(gpu, label, shape, DType::F32)?;
        if value.to_bits() != 0 {
            t.write_f32(gpu, &vec![value; t.numel()])?;
        }
        Ok(t)
    }

    /// An f32 tensor holding `data`.
    pub fn from_f32(gpu: &Gpu, label: &str, shape: &[usize], data: &[f32]) -> Result<GpuTensor> {
        let t = GpuTensor::empty(gpu, label, shape, DType::F32)?;
        t.write_f32(gpu, data)?;
        Ok(t)
    }

    /// A u32 tensor holding `data` (class labels).
    pub fn from_u32(gpu: &Gpu, label: &str, shape: &[usize], data: &[u32]) -> Result<GpuTensor> {
        let t = GpuTensor::empty(gpu, label, shape, DType::U32)?;
        t.write_bytes(gpu, bytemuck::cast_slice(data), data.len())?;
        Ok(t)
    }

    /// A tensor of the given type whose contents are zero.
    pub fn empty(gpu: &Gpu, label: &str, shape: &[usize], dtype: DType) -> Result<GpuTensor> {
        if shape.contains(&0) {
            return Err(Error::shape("tensor", label, "every dimension > 0", shape_str(shape)));
        }
        let numel = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let bytes = numel.and_then(|n| n.checked_mul(4)).unwrap_or(u64::MAX);
        if bytes > gpu.limits.max_buffer_size {
            return Err(Error::Limit {
                op: "tensor".into(),
                what: format!("{label} {}", shape_str(shape)),
                need: bytes,
                have: gpu.limits.max_buffer_size,
                limit: "max_buffer_size",
            });
        }
        let buffer = gpu.create_buffer(label, bytes)?;
        Ok(GpuTensor {
            storage: Storage::Buffer(Arc::new(buffer)),
            shape: shape.to_vec(),
            dtype,
            label: label.into(),
        })
    }

    /// A zero-filled f32 tensor in an rgba32float texture (see the module docs): `TEXTURE_WIDTH`
    /// texels wide and as many rows as `shape` needs.
    pub fn texture(gpu: &Gpu, label: &str, shape: &[usize]) -> Result<GpuTensor> {
        if shape.contains(&0) {
            return Err(Error::shape("tensor", label, "every dimension > 0", shape_str(shape)));
        }
        let numel: usize = shape.iter().product();
        let rows = numel.div_ceil(4 * TEXTURE_WIDTH);
        let max = gpu.limits.max_texture_dimension_2d as usize;
        if rows > max || TEXTURE_WIDTH > max {
            return Err(Error::Limit {
                op: "tensor".into(),
                what: format!("{label} {} as a texture of {TEXTURE_WIDTH} x {rows} texels", shape_str(shape)),
                need: rows.max(TEXTURE_WIDTH) as u64,
                have: max as u64,
                limit: "max_texture_dimension_2d",
            });
        }
        let texture = gpu.create_texture(label, TEXTURE_WIDTH as u32, rows as u32)?;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(GpuTensor {
            storage: Storage::Texture(Arc::new(texture), Arc::new(view)),
            shape: shape.to_vec(),
            dtype: DType::F32,
            label: label.into(),
        })
    }

    /// Elements the tensor's memory holds (at least `numel`).
    fn capacity(&self) -> u64 {
        match &self.storage {
            Storage::Buffer(b) => b.size() / 4,
            Storage::Texture(t, _) => t.width() as u64 * t.height() as u64 * 4,
        }
    }

    /// A tensor of `shape` over the first elements of this tensor's memory (shared, not copied).
    pub fn view(&self, label: &str, shape: &[usize], dtype: DType) -> Result<GpuTensor> {
        let numel: usize = shape.iter().product();
        if numel == 0 || numel as u64 > self.capacity() {
            return Err(Error::shape(
                "view",
                label,
                format!("1 to {} elements", self.capacity()),
                format!("{shape:?}"),
            ));
        }
        Ok(GpuTensor {
            storage: self.storage.clone(),
            shape: shape.to_vec(),
            dtype,
            label: label.into(),
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The buffer of a buffer-backed tensor; an error naming the tensor for a texture.
    pub fn buffer(&self) -> Result<&wgpu::Buffer> {
        match &self.storage {
            Storage::Buffer(b) => Ok(b),
            Storage::Texture(..) => Err(Error::invalid(
                "tensor",
                format!("{} lives in a texture; this use needs a storage buffer", self.label),
            )),
        }
    }

    /// The texture view of a texture-backed tensor.
    pub fn texture_view(&self) -> Option<&wgpu::TextureView> {
        match &self.storage {
            Storage::Texture(_, view) => Some(view),
            Storage::Buffer(_) => None,
        }
    }

    /// Whether the tensor lives in a texture ([`GpuTensor::texture`]).
    pub fn is_texture(&self) -> bool {
        matches!(self.storage, Storage::Texture(..))
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }

    /// Overwrites the whole tensor with `data`.
    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        self.expect_dtype(DType::F32, "write")?;
        self.write_bytes(gpu, bytemuck::cast_slice(data), data.len())
    }

    /// Overwrites a u32 tensor (labels) with `data`.
    pub fn write_u32(&self, gpu: &Gpu, data: &[u32]) -> Result<()> {
        self.expect_dtype(DType::U32, "write")?;
        self.write_bytes(gpu, bytemuck::cast_slice(data), data.len())
    }

    fn write_bytes(&self, gpu: &Gpu, bytes: &[u8], len: usize) -> Result<()> {
        if len != self.numel() {
            return Err(Error::shape(
                "write",
                &self.label,
                format!("{} elements", self.numel()),
                format!("{len} elements"),
            ));
        }
        gpu.checked(&format!("writing {}", self.label), || match &self.storage {
            Storage::Buffer(b) => gpu.queue.write_buffer(b, 0, bytes),
            Storage::Texture(t, _) => {
                // Whole rows: pad the data with zeros to the texture's size.
                let mut padded = bytes.to_vec();
                padded.resize(self.capacity() as usize * 4, 0);
                gpu.queue.write_texture(
                    t.as_image_copy(),
                    &padded,
                    wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(TEXTURE_WIDTH as u32 * 16),
                        rows_per_image: None,
                    },
                    t.size(),
                )
            }
        })
    }

    fn expect_dtype(&self, dtype: DType, op: &str) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::shape(op, &self.label, format!("{dtype:?}"), format!("{:?}", self.dtype)));
        }
        Ok(())
    }

    /// Copies `src` (the same number of elements) into this tensor on the GPU.
    pub fn copy_from(&self, gpu: &Gpu, src: &GpuTensor) -> Result<()> {
        if src.numel() != self.numel() {
            return Err(Error::shape(
                "copy",
                &self.label,
                format!("{} elements", self.numel()),
                format!("{} ({})", src.numel(), src.label),
            ));
        }
        gpu.checked(&format!("copying into {}", self.label), || {
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copy") });
            encoder.copy_buffer_to_buffer(src.buffer()?, 0, self.buffer()?, 0, self.bytes());
            gpu.submit(encoder.finish());
            Ok(())
        })?
    }

    /// Copies the tensor back to the host (blocking; [`GpuTensor::read_f32_async`] in a browser).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32_async(gpu))
    }

    /// Copies a u32 tensor back to the host (blocking).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        pollster::block_on(self.read_u32_async(gpu))
    }

    /// Copies the tensor back to the host, without blocking.
    pub async fn read_f32_async(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.expect_dtype(DType::F32, "read")?;
        Ok(bytemuck::cast_slice(&self.read_bytes(gpu).await?).to_vec())
    }

    /// Copies a u32 tensor back to the host, without blocking.
    pub async fn read_u32_async(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        self.expect_dtype(DType::U32, "read")?;
        Ok(bytemuck::cast_slice(&self.read_bytes(gpu).await?).to_vec())
    }

    async fn read_bytes(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        // A texture is copied whole (full rows), then cut to the tensor's elements.
        let staged = match &self.storage {
            Storage::Buffer(_) => self.bytes(),
            Storage::Texture(..) => self.capacity() * 4,
        };
        let staging = gpu.create_staging(staged)?;
        gpu.checked(&format!("reading {}", self.label), || {
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
            match &self.storage {
                Storage::Buffer(b) => encoder.copy_buffer_to_buffer(b, 0, &staging, 0, self.bytes()),
                Storage::Texture(t, _) => encoder.copy_texture_to_buffer(
                    t.as_image_copy(),
                    wgpu::TexelCopyBufferInfo {
                        buffer: &staging,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some(TEXTURE_WIDTH as u32 * 16),
                            rows_per_image: None,
                        },
                    },
                    t.size(),
                ),
            }
            gpu.submit(encoder.finish());
        })?;
        gpu.map_read(&staging, self.bytes(), &self.label).await
    }
}

/// A host-readable buffer reused for every read of a small tensor (the training loss log), so
/// reading creates nothing. `copy` encodes the copy into a step's command buffer, `request`
/// marks it pending after the submit, and `finish` maps it and returns the values.
pub struct Readback {
    buffer: wgpu::Buffer,
    bytes: u64,
    pending: std::sync::atomic::AtomicBool,
}

impl Readback {
    pub fn new(gpu: &Gpu, elements: usize) -> Result<Readback> {
        let bytes = elements as u64 * 4;
        Ok(Readback {
            buffer: gpu.create_staging(bytes)?,
            bytes,
            pending: Default::default(),
        })
    }

    /// Encodes a copy of `src` (a buffer-backed tensor of the same size) into `encoder`.
    pub fn copy(&self, encoder: &mut wgpu::CommandEncoder, src: &GpuTensor) -> Result<()> {
        encoder.copy_buffer_to_buffer(src.buffer()?, 0, &self.buffer, 0, self.bytes);
        Ok(())
    }

    /// Marks the copy pending after the submit that holds it.
    pub fn request(&self) {
        self.pending.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits for the requested copy and returns the values (None if nothing was requested).
    pub async fn finish(&self, gpu: &Gpu) -> Result<Option<Vec<f32>>> {
        if !self.pending.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        let bytes = gpu.map_read(&self.buffer, self.bytes, "loss log").await?;
        Ok(Some(bytemuck::cast_slice(&bytes).to_vec()))
    }
}
