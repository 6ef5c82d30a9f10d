// grouped_conv_backward_input_textured: grouped_conv_backward_input with dy read as 4-channel
// texels (grouped_conv_pack_activation) and the packed weights from a texture, for adapters where
// texel fetches are cheaper than storage-buffer loads.
//   dyt: texels [N, G, KQ, P, Q] of dy (KQ = ceil((K/G)/4); a texture 4096 texels wide)
//   wp: [G, K/G, R, S, C_pad/4] (vec4; grouped_conv_pack_weight, mode 1), a texture
//   dx: [N, C, H, W] (this dispatch's batch chunk), overwritten or (accumulate) added to
// Stride phases and register tile as in grouped_conv_backward_input. Per output quad it
// fetches the NR*SPAN dy texels the tile needs once, then runs the four output channels in
// turn, each over its taps in grouped_conv_backward_input's order: the result is bitwise its.
// Dispatch: x = ceil(N*rows*ceil(cols/TP) * ceil((C/G) / (4*TC4)) / 64), y = G.
// Launcher: ops::grouped_conv::backward_input, one dispatch per phase.

@group(0) @binding(1) var dyt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var wp: texture_storage_2d<rgba32float, read>;

// The dy texels of the current output quad, [ir * SPAN + u]: output channels 4b .. 4b+3
// (private for GL, see conv_forward_tile).
var<private> ds: array<vec4<f32>, 30>;

// Adds output channel (component e of the ds texels, weights from packed row wk) to every
// accumulator: grouped_conv_backward_input's per-channel sum over the phase's taps, in its order.
fn channel(e: u32, wk: u32, ws: u32) {
    for (var ir = 0u; ir < NR; ir++) {
        let r = R0 + ir * SH;
        let wrow = wk + (r * S + S0) * ws;
        let d = ir * SPAN;
        for (var j = 0u; j < TC4; j++) {
            var w0 = vec4<f32>(0.0);
            var w1 = vec4<f32>(0.0);
            var w2 = vec4<f32>(0.0);
            if (NS >= 1u) { w0 = textureLoad(wp, texel(wrow + j)); }
            if (NS >= 2u) { w1 = textureLoad(wp, texel(wrow + SW * ws + j)); }
            if (NS >= 3u) { w2 = textureLoad(wp, texel(wrow + 2u * SW * ws + j)); }
            for (var t = 0u; t < TP; t++) {
                var a = acc[t * TC4 + j];
                if (NS >= 1u) { a = fma(vec4<f32>(ds[d + t + NS - 1u][e]), w0, a); }
                if (NS >= 2u) { a = fma(vec4<f32>(ds[d + t + NS - 2u][e]), w1, a); }
                if (NS >= 3u) { a = fma(vec4<f32>(ds[d + t][e]), w2, a); }
                acc[t * TC4 + j] = a;
            }
        }
    }
}

@compute @workgroup_size(64)
fn grouped_conv_backward_input_textured(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let o = in_tile(gid, wid, 1u);
    if (!o.valid) {
        return;
    }
    let g = o.g;
    let kg = o.kg;
    let n = o.n;
    let iy = o.iy;
    let c0 = o.c0;
    let qbase = o.qbase;
    let ws = prm.w_stride / 4u;
    let kq = (kg + 3u) / 4u;
    let pq = prm.p * prm.q;
    for (var b = 0u; b < kq; b++) {
        let plane = ((prm.n_base + n) * prm.groups * kq + g * kq + b) * pq;
        for (var ir = 0u; ir < NR; ir++) {
            let r = R0 + ir * SH;
            let p = (i32(iy + prm.pad_top) - i32(r)) / i32(SH);
            let row_ok = i32(iy + prm.pad_top) >= i32(r) && p < i32(prm.p);
            let row = plane + u32(p) * prm.q;
            for (var u = 0u; u < SPAN; u++) {
                let q = qbase + i32(u);
                let ok = row_ok && q >= 0 && q < i32(prm.q);
                ds[ir * SPAN + u] = select(vec4<f32>(0.0), textureLoad(dyt, texel(select(0u, row + u32(q), ok))), ok);
            }
        }
        // The four output channels in turn, each a constant component: the tile stays in
        // registers.
        let kk = 4u * b;
        let wk = (g * kg + kk) * R * S * ws + c0 / 4u;
        channel(0u, wk, ws);
        if (kk + 1u < kg) { channel(1u, wk + R * S * ws, ws); }
        if (kk + 2u < kg) { channel(2u, wk + 2u * R * S * ws, ws); }
        if (kk + 3u < kg) { channel(3u, wk + 3u * R * S * ws, ws); }
    }
    store_dx(o);
}
