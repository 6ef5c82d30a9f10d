// Packed conv weights (grouped_conv_pack_weight) in a storage buffer, as vec4s: binding 2.
@group(0) @binding(2) var<storage, read> wp: array<vec4<f32>>;
fn load_packed(i: u32) -> vec4<f32> {
    return wp[i];
}

