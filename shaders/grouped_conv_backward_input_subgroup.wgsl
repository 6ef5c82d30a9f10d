// grouped_conv_backward_input_subgroup: grouped_conv_backward_input_textured for 1x1 filters at
// stride 1 with the weight loads shared across the subgroup (common/subgroup_quad.wgsl).
//   dyt: texels [N, G, KQ, P, Q] of dy (KQ = ceil((K/G)/4); a texture 4096 texels wide)
//   wp: [G, K/G, 1, 1, C_pad/4] (vec4; grouped_conv_pack_weight, mode 1), a texture
//   dx: [N, C, H, W] (this dispatch's batch chunk), overwritten or (accumulate) added to
//   dx[n, g*C/G + c, y, x] (+)= sum_{k < K/G} dy[n, g*K/G + k, y + pad_top, x + pad_left] * w[k, c]
// Register tile: TP pixels of one row x 16 input channels (TC4 = 4). Each lane loads its own TP
// dy texels per output quad; the weights come from the subgroup. The sums run over the output
// channels in grouped_conv_backward_input's order: the result is bitwise its.
// Dispatch (stride 1: one phase): x = ceil(N*H*ceil(W/TP) / 64) * ceil((C/G) / 16), y = G (each
// channel tile's pixel tiles rounded up to the workgroup). Launcher:
// ops::grouped_conv::backward_input.

@group(0) @binding(1) var dyt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var wp: texture_storage_2d<rgba32float, read>;

@compute @workgroup_size(64)
fn grouped_conv_backward_input_subgroup(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                                        @builtin(subgroup_invocation_id) lane: u32) {
    let o = in_tile(gid, wid, 64u);
    if (subgroup_idle(gid, lane, prm.n * prm.rows * prm.blocks)) {
        return;
    }
    let p = o.iy + prm.pad_top;
    let row_ok = p < prm.p;
    let ws = prm.w_stride / 4u;                 // vec4s per packed output-channel row
    let kq = (o.kg + 3u) / 4u;
    let pq = prm.p * prm.q;
    for (var b = 0u; b < kq; b++) {
        let plane = ((prm.n_base + o.n) * prm.groups * kq + o.g * kq + b) * pq;
        let row = plane + p * prm.q;
        for (var t = 0u; t < TP; t++) {
            let q = o.qbase + i32(t);
            let ok = row_ok && q >= 0 && q < i32(prm.q);
            quad_texels[t] = select(vec4<f32>(0.0), textureLoad(dyt, texel(select(0u, row + u32(q), ok))), ok);
        }
        shared_quad(o.g * o.kg * ws + o.c0 / 4u, 4u * b, o.kg, ws, lane);
    }
    if (o.valid) {
        store_dx(o);
    }
}
