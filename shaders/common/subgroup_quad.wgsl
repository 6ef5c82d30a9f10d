// The subgroup conv kernels' shared weight loads (grouped_conv_forward_subgroup,
// grouped_conv_backward_input_subgroup). Each lane computes TP pixels x 16 channels (4 vec4
// accumulators per pixel), and the lanes of a subgroup compute neighbouring pixel tiles of one
// channel tile, so all of them need the same 16 weight texels per quad of summed channels (4
// channels x 4 vec4s). Lanes 0..7 load two each and subgroupBroadcast hands them to every lane,
// instead of every lane loading all 16: on lavapipe a texel load is a gather across the 8 lanes
// of a 256-bit vector, a broadcast a shuffle. Needs the adapter feature SUBGROUP with 8 to 64
// lanes (gpu::Gpu::shares_subgroups) in a 1-D workgroup of 64, whose channel tiles start every
// multiple of 64 lanes (out_tile / in_tile with align 64), so that no subgroup spans two.

// The texels of the current quad of summed channels, [t]: its 4 channels at pixel t of the tile.
var<private> quad_texels: array<vec4<f32>, 8>;

// Whether every lane of this lane's subgroup is past the `items` pixel tiles of its channel
// tile (rounded up to 64 lanes): such a subgroup stops at once (uniform in the subgroup).
fn subgroup_idle(gid: vec3<u32>, lane: u32, items: u32) -> bool {
    let lanes = (items + 63u) / 64u * 64u;
    return (gid.x - lane) % lanes >= items;
}

// acc[t * 4 + j] += channel e of the quad (component e of quad_texels[t]) * weight vec4 w.
fn madd(e: u32, j: u32, w: vec4<f32>) {
    for (var t = 0u; t < TP; t++) {
        acc[t * 4u + j] = fma(vec4<f32>(quad_texels[t][e]), w, acc[t * 4u + j]);
    }
}

// Adds the quad of summed channels c .. c+3 (of `count`; weight row ch at texel base + ch * ws
// of wp, its 4 vec4s for the tile's 16 channels) to every accumulator: channel c, c+1, ... in
// turn, each into the tile's 4 vec4s, the textured kernels' order. Lane 4e + j (e < 2) loads the
// texel of channel c + e and of channel c + 2 + e, vec4 j; the broadcasts name their lane as a
// constant, as WGSL requires. Rows past the last channel are clamped to it: loaded, never used.
fn shared_quad(base: u32, c: u32, count: u32, ws: u32, lane: u32) {
    let e0 = (lane % 8u) / 4u;
    let j0 = lane % 4u;
    let m0 = textureLoad(wp, texel(base + min(c + e0, count - 1u) * ws + j0));
    let m1 = textureLoad(wp, texel(base + min(c + 2u + e0, count - 1u) * ws + j0));
    let left = min(count - c, 4u);
    madd(0u, 0u, subgroupBroadcast(m0, 0u));
    madd(0u, 1u, subgroupBroadcast(m0, 1u));
    madd(0u, 2u, subgroupBroadcast(m0, 2u));
    madd(0u, 3u, subgroupBroadcast(m0, 3u));
    if (left > 1u) {
        madd(1u, 0u, subgroupBroadcast(m0, 4u));
        madd(1u, 1u, subgroupBroadcast(m0, 5u));
        madd(1u, 2u, subgroupBroadcast(m0, 6u));
        madd(1u, 3u, subgroupBroadcast(m0, 7u));
    }
    if (left > 2u) {
        madd(2u, 0u, subgroupBroadcast(m1, 0u));
        madd(2u, 1u, subgroupBroadcast(m1, 1u));
        madd(2u, 2u, subgroupBroadcast(m1, 2u));
        madd(2u, 3u, subgroupBroadcast(m1, 3u));
    }
    if (left > 3u) {
        madd(3u, 0u, subgroupBroadcast(m1, 4u));
        madd(3u, 1u, subgroupBroadcast(m1, 5u));
        madd(3u, 2u, subgroupBroadcast(m1, 6u));
        madd(3u, 3u, subgroupBroadcast(m1, 7u));
    }
}
