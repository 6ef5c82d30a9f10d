// grouped_conv_forward_workgroup: grouped_conv_forward with the weights staged in workgroup
// memory, for GPUs, where the 64 lanes of a workgroup then read each weight from on-chip memory
// instead of each loading it.
//   x: [N, C, H, W]   wp: [G, C/G, R, S, K_pad/4] (vec4; grouped_conv_pack_weight, mode 0),
//   binding 2, a storage buffer read with load_packed (common/packed_buffer.wgsl)
//   b: [K] (unread unless has_bias)   y: [N, K, P, Q]
//   y[n,k,p,q] = b[k] + sum_{c < C/G, r < R, s < S} x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left] * w[k,c,r,s]
// Register tile as grouped_conv_forward's: TP outputs of a row x 4*TK4 channels. Every lane of
// a workgroup has the same channel tile (out_tile rounds the pixel tiles up to the workgroup),
// so the workgroup loads the weights of CHUNK input channels (CHUNK*R*S*TK4 vec4s, at most
// 512) once, together, and every lane reads them from there. The sums run over (c, r, s) in
// grouped_conv_forward's order: the result is bitwise its.
// Dispatch: x = ceil(N*P*ceil(Q/TP) / 64) * ceil((K/G) / (4*TK4)), y = G.
// Launcher: ops::grouped_conv::forward.

@group(0) @binding(1) var<storage, read> x: array<f32>;

override CHUNK: u32 = 4u;   // input channels staged at once; CHUNK * R * S * TK4 <= 512

var<workgroup> wsh: array<vec4<f32>, 512>;   // [((c * R + r) * S + s) * TK4 + j]

@compute @workgroup_size(64)
fn grouped_conv_forward_workgroup(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32) {
    // No lane returns early: every lane takes part in the staging and its barriers. The lanes
    // past the pixel tiles compute the last one again and store nothing.
    let o = out_tile(gid, wid, 64u);
    let g = o.g;
    let cg = prm.c / prm.groups;                // o.cg, but uniform for the barriers' loop
    let n = o.n;
    init_bias(o);
    let iy0 = i32(o.op * SH) - i32(prm.pad_top);
    let ix0 = i32(o.q0 * SW) - i32(prm.pad_left);
    let ws = prm.w_stride / 4u;                 // vec4s per packed (c, r, s) row
    let wbase = g * cg * R * S * ws + o.k0 / 4u;   // o.k0: the same in every lane
    let per_c = R * S * TK4;
    for (var c0 = 0u; c0 < cg; c0 += CHUNK) {
        let count = min(CHUNK, cg - c0) * per_c;
        workgroupBarrier();
        for (var i = lid; i < count; i += 64u) {
            let j = i % TK4;
            let crs = c0 * R * S + i / TK4;    // packed (c, r, s) row
            wsh[i] = load_packed(wbase + crs * ws + j);
        }
        workgroupBarrier();
        for (var cc = 0u; cc < min(CHUNK, cg - c0); cc++) {
            let plane = (n * prm.c + g * cg + c0 + cc) * prm.h * prm.w;
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
                let wrow = (cc * R + r) * S * TK4;
                for (var j = 0u; j < TK4; j++) {
                    let w0 = wsh[wrow + j];
                    var w1 = vec4<f32>(0.0);
                    var w2 = vec4<f32>(0.0);
                    if (S == 3u) {
                        w1 = wsh[wrow + TK4 + j];
                        w2 = wsh[wrow + 2u * TK4 + j];
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
    }
    if (o.valid) {
        store_outputs(o);
    }
}
