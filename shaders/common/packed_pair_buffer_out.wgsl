// Where grouped_conv_pack_weight_pair writes: two storage buffers of vec4s (bindings 2 and 3).
@group(0) @binding(2) var<storage, read_write> output_inner: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> input_inner: array<vec4<f32>>;
fn store_output_inner(i: u32, v: vec4<f32>) {
    output_inner[i] = v;
}
fn store_input_inner(i: u32, v: vec4<f32>) {
    input_inner[i] = v;
}

