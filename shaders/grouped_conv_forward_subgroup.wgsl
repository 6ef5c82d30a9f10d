// grouped_conv_forward_subgroup: grouped_conv_forward_textured for 1x1 filters with the weights
// shared across the subgroup (adapter feature SUBGROUP, 8 to 64 lanes).
//   xt: texels [N, G, CQ, H, W] of x (CQ = ceil((C/G)/4); a texture 4096 texels wide)
//   wp: [G, C/G, 1, 1, K_pad/4] (vec4; grouped_conv_pack_weight, mode 0), a texture
//   b: [K] (unread unless has_bias)   y: [N, K, P, Q] (this dispatch's batch chunk)
//   y[n,k,p,q] = b[k] + sum_{c < C/G} x[n, g*C/G + c, p*SH - pad_top, q*SW - pad_left] * w[k,c]
// Register tile: TP outputs of one row x 16 output channels (TK4 = 4). The lanes of a subgroup
// compute neighbouring pixel tiles of one channel tile, so they all need the same 16 weight
// texels per input quad (4 channels x 4 vec4s): lanes 0..7 load two each and subgroupBroadcast
// hands them to every lane, instead of every lane loading all 16 (on lavapipe a texel load is a
// gather across the 8 lanes of a 256-bit vector; a broadcast is a shuffle). Each lane still
// loads its own TP x texels. The sums run over the channels in grouped_conv_forward's order:
// the result is bitwise its.
// Dispatch: x = ceil(ceil(N*P*ceil(Q/TP) / 64) * 64 * ceil((K/G) / 16) / 64), y = G: each
// channel tile's pixel tiles are rounded up to the workgroup (out_tile), so that no subgroup
// spans two channel tiles; a subgroup whose lanes are all past the pixel tiles stops at once,
// the others compute with every lane and store the valid ones. Launcher: ops::grouped_conv::forward.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var wp: texture_storage_2d<rgba32float, read>;

// The x texels of the current input quad, [t]: channels 4b .. 4b+3 at output pixel q0 + t.
var<private> xs: array<vec4<f32>, 8>;

// acc[t * TK4 + j] += x channel e (component e of xs[t]) * weight vec4 w: output channels
// k0 + 4j .. k0 + 4j + 3 (TK4 is 4 here).
fn madd(e: u32, j: u32, w: vec4<f32>) {
    for (var t = 0u; t < TP; t++) {
        acc[t * TK4 + j] = fma(vec4<f32>(xs[t][e]), w, acc[t * TK4 + j]);
    }
}

// One input quad: `left` of its channels exist (1 to 4, uniform). m0 holds weight texel
// 4e + j of lanes 0..7 for e < 2 (lane 4e + j), m1 for e >= 2 (lane 4(e - 2) + j). The
// broadcasts name their lane as a constant, as WGSL requires.
fn quad(left: u32, m0: vec4<f32>, m1: vec4<f32>) {
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

@compute @workgroup_size(64)
fn grouped_conv_forward_subgroup(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(subgroup_invocation_id) lane: u32) {
    let o = out_tile(gid, wid, 64u);
    let items = prm.n * prm.p * prm.blocks;
    let lanes = (items + 63u) / 64u * 64u;     // per channel tile, as out_tile counts them
    if ((gid.x - lane) % lanes >= items) {
        return;   // every lane of the subgroup is past the pixel tiles (uniform in the subgroup)
    }
    let g = o.g;
    let cg = o.cg;
    init_bias(o);
    let iy = i32(o.op * SH) - i32(prm.pad_top);
    let ix0 = i32(o.q0 * SW) - i32(prm.pad_left);
    let row_ok = iy >= 0 && iy < i32(prm.h);
    let ws = prm.w_stride / 4u;                 // vec4s per packed channel row
    let wbase = g * cg * ws + o.k0 / 4u;
    // The weight texels this lane loads for the subgroup: 4e + j = lane % 8 and 8 + lane % 8.
    let e0 = (lane % 8u) / 4u;
    let j0 = lane % 4u;
    let cq = (cg + 3u) / 4u;
    let hw = prm.h * prm.w;
    for (var b = 0u; b < cq; b++) {
        let plane = ((prm.n_base + o.n) * prm.groups * cq + g * cq + b) * hw;
        let row = plane + u32(iy) * prm.w;
        for (var t = 0u; t < TP; t++) {
            let ix = ix0 + i32(t * SW);
            let ok = row_ok && ix >= 0 && ix < i32(prm.w);
            xs[t] = select(vec4<f32>(0.0), textureLoad(xt, texel(select(0u, row + u32(ix), ok))), ok);
        }
        let c = 4u * b;
        // Rows past the group's last channel are clamped to it: loaded, never used.
        let m0 = textureLoad(wp, texel(wbase + min(c + e0, cg - 1u) * ws + j0));
        let m1 = textureLoad(wp, texel(wbase + min(c + 2u + e0, cg - 1u) * ws + j0));
        quad(min(cg - c, 4u), m0, m1);
    }
    if (o.valid) {
        store_outputs(o);
    }
}
