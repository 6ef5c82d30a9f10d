// grouped_conv_forward: y = conv2d(x, w) + b, grouped, strided, zero padding given per side.
//   x: [N, C, H, W]   wp: [G, C/G, R, S, K_pad/4] (vec4; grouped_conv_pack_weight, mode 0),
//   binding 2, a storage buffer read with load_packed (common/packed_buffer.wgsl; the
//   _textured variant reads it from a texture)
//   b: [K] (unread unless has_bias)   y: [N, K, P, Q]
//   y[n,k,p,q] = b[k] + sum_{c < C/G, r < R, s < S} x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left] * w[k,c,r,s]
//   where g = k / (K/G) and x outside the image reads as 0.
// Register tile: each invocation computes TP consecutive outputs of one row (q0 .. q0+TP-1)
// for 4*TK4 output channels of one group. Per (c, r) it loads the SPAN = (TP-1)*SW + S input
// values the row needs once, then every weight vec4 feeds TP vec4 multiply-adds. Loop bounds
// are override constants and the S taps are written out (S is 1 or 3) so that the compiler
// unrolls the tile into registers (software rasterizers such as lavapipe spill arrays indexed
// by loop variables to memory).
// Dispatch: x = ceil(N*P*ceil(Q/TP) * ceil((K/G) / (4*TK4)) / 64) over (pixel tile, channel
// tile), y = G.
// Launcher: ops::grouped_conv::forward.

@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(64)
fn grouped_conv_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
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
    for (var c = 0u; c < cg; c++) {
        let plane = (n * prm.c + g * cg + c) * prm.h * prm.w;
        for (var r = 0u; r < R; r++) {
            let iy = iy0 + i32(r);
            let row_ok = iy >= 0 && iy < i32(prm.h);
            let row = plane + u32(iy) * prm.w;
            var xs: array<f32, 17>;
            for (var u = 0u; u < SPAN; u++) {
                let ix = ix0 + i32(u);
                let ok = row_ok && ix >= 0 && ix < i32(prm.w);
                xs[u] = select(0.0, x[select(0u, row + u32(ix), ok)], ok);
            }
            let wrow = wbase + (c * R + r) * S * ws;
            for (var j = 0u; j < TK4; j++) {
                let w0 = load_packed(wrow + j);
                var w1 = vec4<f32>(0.0);
                var w2 = vec4<f32>(0.0);
                if (S == 3u) {
                    w1 = load_packed(wrow + ws + j);
                    w2 = load_packed(wrow + 2u * ws + j);
                }
                for (var t = 0u; t < TP; t++) {
                    var a = acc[t * TK4 + j];
                    a = fma(vec4<f32>(xs[t * SW]), w0, a);
                    if (S == 3u) {
                        a = fma(vec4<f32>(xs[t * SW + 1u]), w1, a);
                        a = fma(vec4<f32>(xs[t * SW + 2u]), w2, a);
                    }
                    acc[t * TK4 + j] = a;
                }
            }
        }
    }
    store_outputs(o);
}
