// Reading a texture-backed tensor (gpu::GpuTensor::texture): rgba32float, 4096 texels wide
// (gpu::TEXTURE_WIDTH), texel i at texel(i) = (i % 4096, i / 4096). The conv kernels bind theirs
// as read-only storage textures, read with textureLoad(t, texel(i)): llvmpipe loads from those
// at less cost than from sampled textures. (A helper taking the texture itself would need a
// storage-texture parameter, which naga's MSL backend does not write.)
fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i % 4096u, i / 4096u);
}
