// Where grouped_conv_pack_weight writes: an rgba32float storage texture 4096 texels wide
// (gpu::TEXTURE_WIDTH), vec4 i at texel (i % 4096, i / 4096). Binding 2.
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;
fn store_packed(i: u32, v: vec4<f32>) {
    textureStore(packed, vec2<u32>(i % 4096u, i / 4096u), v);
}

