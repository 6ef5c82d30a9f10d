// Where grouped_conv_pack_weight_pair writes: two rgba32float storage textures 4096 texels wide
// (gpu::TEXTURE_WIDTH), vec4 i at texel (i % 4096, i / 4096). Bindings 2 and 3.
@group(0) @binding(2) var output_inner: texture_storage_2d<rgba32float, write>;
@group(0) @binding(3) var input_inner: texture_storage_2d<rgba32float, write>;
fn store_output_inner(i: u32, v: vec4<f32>) {
    textureStore(output_inner, vec2<u32>(i % 4096u, i / 4096u), v);
}
fn store_input_inner(i: u32, v: vec4<f32>) {
    textureStore(input_inner, vec2<u32>(i % 4096u, i / 4096u), v);
}

