// Where grouped_conv_pack_weight writes: a storage buffer of vec4s (binding 2).
@group(0) @binding(2) var<storage, read_write> packed: array<vec4<f32>>;
fn store_packed(i: u32, v: vec4<f32>) {
    packed[i] = v;
}

