// grouped_conv_forward_subgroup: grouped_conv_forward_textured for 1x1 filters with the weight
// loads shared across the subgroup (common/subgroup_quad.wgsl).
//   xt: texels [N, G, CQ, H, W] of x (CQ = ceil((C/G)/4); a texture 4096 texels wide)
//   wp: [G, C/G, 1, 1, K_pad/4] (vec4; grouped_conv_pack_weight, mode 0), a texture
//   b: [K] (unread unless has_bias)   y: [N, K, P, Q] (this dispatch's batch chunk)
//   y[n,k,p,q] = b[k] + sum_{c < C/G} x[n, g*C/G + c, p*SH - pad_top, q*SW - pad_left] * w[k,c]
// Register tile: TP outputs of one row x 16 output channels (TK4 = 4). Each lane loads its own
// TP x texels per input quad; the weights come from the subgroup. The sums run over the
// channels in grouped_conv_forward's order: the result is bitwise its.
// Dispatch: x = ceil(N*P*ceil(Q/TP) / 64) * ceil((K/G) / 16), y = G (each channel tile's pixel
// tiles rounded up to the workgroup). Launcher: ops::grouped_conv::forward.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var wp: texture_storage_2d<rgba32float, read>;

@compute @workgroup_size(64)
fn grouped_conv_forward_subgroup(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(subgroup_invocation_id) lane: u32) {
    let o = out_tile(gid, wid, 64u);
    if (subgroup_idle(gid, lane, prm.n * prm.p * prm.blocks)) {
        return;
    }
    init_bias(o);
    let iy = i32(o.op * SH) - i32(prm.pad_top);
    let ix0 = i32(o.q0 * SW) - i32(prm.pad_left);
    let row_ok = iy >= 0 && iy < i32(prm.h);
    let ws = prm.w_stride / 4u;                 // vec4s per packed input-channel row
    let cq = (o.cg + 3u) / 4u;
    let hw = prm.h * prm.w;
    for (var b = 0u; b < cq; b++) {
        let plane = ((prm.n_base + o.n) * prm.groups * cq + o.g * cq + b) * hw;
        let row = plane + u32(iy) * prm.w;
        for (var t = 0u; t < TP; t++) {
            let ix = ix0 + i32(t * SW);
            let ok = row_ok && ix >= 0 && ix < i32(prm.w);
            quad_texels[t] = select(vec4<f32>(0.0), textureLoad(xt, texel(select(0u, row + u32(ix), ok))), ok);
        }
        shared_quad(o.g * o.cg * ws + o.k0 / 4u, 4u * b, o.cg, ws, lane);
    }
    if (o.valid) {
        store_outputs(o);
    }
}
