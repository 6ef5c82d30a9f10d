// Packed conv weights (grouped_conv_pack_weight) in an rgba32float texture 4096 texels wide
// (gpu::TEXTURE_WIDTH): vec4 i is texel (i % 4096, i / 4096). Binding 2. On a software
// rasterizer a texel fetch costs a fraction of a bounds-checked storage-buffer load.
@group(0) @binding(2) var wp: texture_2d<f32>;
fn load_packed(i: u32) -> vec4<f32> {
    return textureLoad(wp, vec2<u32>(i % 4096u, i / 4096u), 0);
}

