// Reading a texture-backed tensor (gpu::GpuTensor::texture): rgba32float, 4096 texels wide
// (gpu::TEXTURE_WIDTH), texel i at (i % 4096, i / 4096).
fn fetch(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i % 4096u, i / 4096u), 0);
}
