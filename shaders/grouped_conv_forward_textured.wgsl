// grouped_conv_forward_textured: grouped_conv_forward with x read as 4-channel texels
// (grouped_conv_pack_activation) and the packed weights from a texture, for adapters where texel
// fetches are cheaper than storage-buffer loads.
//   xt: texels [N, G, CQ, H, W] of x (CQ = ceil((C/G)/4); a texture 4096 texels wide)
//   wp: [G, C/G, R, S, K_pad/4] (vec4; grouped_conv_pack_weight, mode 0), a texture
//   b: [K] (unread unless has_bias)   y: [N, K, P, Q] (this dispatch's batch chunk)
//   y[n,k,p,q] = b[k] + sum_{c < C/G, r < R, s < S} x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left] * w[k,c,r,s]
// Register tile as in grouped_conv_forward: TP outputs of one row x 4*TK4 output channels. Per
// input quad it fetches the R*SPAN texels the tile needs once, then runs the four channels in
// turn, each summed over (r, s) in grouped_conv_forward's order: the result is bitwise its.
// Dispatch: x = ceil(N*P*ceil(Q/TP) * ceil((K/G) / (4*TK4)) / 64), y = G.
// Launcher: ops::grouped_conv::forward.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var wp: texture_storage_2d<rgba32float, read>;

// The x texels of the current input quad, [r * SPAN + u]: channels 4b .. 4b+3 (private for GL,
// see conv_forward_tile).
var<private> xs: array<vec4<f32>, 51>;

// Adds input channel (component e of the xs texels, weights from packed row wc) to every
// accumulator: grouped_conv_forward's per-channel (r, s) sum, in its order.
fn channel(e: u32, wc: u32, ws: u32) {
    for (var r = 0u; r < R; r++) {
        let wrow = wc + r * S * ws;
        for (var j = 0u; j < TK4; j++) {
            let w0 = textureLoad(wp, texel(wrow + j));
            var w1 = vec4<f32>(0.0);
            var w2 = vec4<f32>(0.0);
            if (S == 3u) {
                w1 = textureLoad(wp, texel(wrow + ws + j));
                w2 = textureLoad(wp, texel(wrow + 2u * ws + j));
            }
            for (var t = 0u; t < TP; t++) {
                var a = acc[t * TK4 + j];
                a = fma(vec4<f32>(xs[r * SPAN + t * SW][e]), w0, a);
                if (S == 3u) {
                    a = fma(vec4<f32>(xs[r * SPAN + t * SW + 1u][e]), w1, a);
                    a = fma(vec4<f32>(xs[r * SPAN + t * SW + 2u][e]), w2, a);
                }
                acc[t * TK4 + j] = a;
            }
        }
    }
}

@compute @workgroup_size(64)
fn grouped_conv_forward_textured(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let o = out_tile(gid, wid, 1u);
    if (!o.valid) {
        return;
    }
    let g = o.g;
    let cg = o.cg;
    let n = o.n;
    init_bias(o);
    let iy0 = i32(o.op * SH) - i32(prm.pad_top);
    let ix0 = i32(o.q0 * SW) - i32(prm.pad_left);
    let ws = prm.w_stride / 4u;                 // vec4s per packed (c, r, s) row
    let wbase = g * cg * R * S * ws + o.k0 / 4u;
    let cq = (cg + 3u) / 4u;
    let hw = prm.h * prm.w;
    for (var b = 0u; b < cq; b++) {
        let plane = ((prm.n_base + n) * prm.groups * cq + g * cq + b) * hw;
        for (var r = 0u; r < R; r++) {
            let iy = iy0 + i32(r);
            let row_ok = iy >= 0 && iy < i32(prm.h);
            let row = plane + u32(iy) * prm.w;
            for (var u = 0u; u < SPAN; u++) {
                let ix = ix0 + i32(u);
                let ok = row_ok && ix >= 0 && ix < i32(prm.w);
                xs[r * SPAN + u] = select(vec4<f32>(0.0), textureLoad(xt, texel(select(0u, row + u32(ix), ok))), ok);
            }
        }
        // The four channels in turn, each a constant component: the tile stays in registers.
        let c = 4u * b;
        let wc = wbase + c * R * S * ws;
        channel(0u, wc, ws);
        if (c + 1u < cg) { channel(1u, wc + R * S * ws, ws); }
        if (c + 2u < cg) { channel(2u, wc + 2u * R * S * ws, ws); }
        if (c + 3u < cg) { channel(3u, wc + 3u * R * S * ws, ws); }
    }
    store_outputs(o);
}
