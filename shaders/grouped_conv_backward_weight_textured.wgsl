// grouped_conv_backward_weight_textured: grouped_conv_backward_weight (and the bias gradient)
// with x and dy read as 4-channel texels (grouped_conv_pack_activation), for adapters where texel
// fetches are cheaper than storage-buffer loads.
//   xt: texels [N, G, CQ, H, W] of x    dyt: texels [N, G, KQ, P, Q] of dy
//   (CQ = ceil((C/G)/4), KQ = ceil((K/G)/4); textures 4096 texels wide)
//   part: [splits, K, C/G, R, S]   bpart: [splits, K] (unwritten unless has_bias)
//   part[z, k, c, r, s] = sum over the rows (n, p) of split z and all q of
//       dy[n,k,p,q] * x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left]
//   bpart[z, k] = the same sum of dy[n,k,p,q]
// Every sum runs over (n, p, q) in the order grouped_conv_backward_weight and
// grouped_conv_backward_bias use, so the results are bitwise theirs.
// Register tile: each invocation owns CB4 quads of input channels x TAPS taps (all R*S, one
// kernel row of S, or one) x TK4 quads of output channels. Per output pixel it fetches TK4 dy
// texels and, per (quad, tap), one x texel, and does 4*CB4*TAPS*TK4 vec4 multiply-adds (at most
// 48: on lavapipe larger tiles run at a tenth of the speed). The taps can be spread over
// invocations.
// Dispatch: x = ceil(ceil(CQ / CB4) * ceil(KQ / TK4) * R*S/TAPS / 64) over (input tile,
// output tile, tap block), y = G, z = splits.
// Launcher: ops::grouped_conv::backward_weight.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var dyt: texture_storage_2d<rgba32float, read>;

// The x texel at column ix of the row starting at texel xrow, zero outside the image.
fn load_x(xrow: u32, ix: i32, row_ok: bool) -> vec4<f32> {
    let ok = row_ok && ix >= 0 && ix < i32(prm.w);
    return select(vec4<f32>(0.0), textureLoad(xt, texel(select(0u, xrow + u32(ix), ok))), ok);
}

@compute @workgroup_size(64)
fn grouped_conv_backward_weight_textured(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let cq = (cg + 3u) / 4u;
    let kq = (kg + 3u) / 4u;
    let cblocks = (cq + CB4 - 1u) / CB4;
    let kblocks = (kq + TK4 - 1u) / TK4;
    let tblocks = R * S / TAPS;
    if (gid.x >= cblocks * kblocks * tblocks) {
        return;
    }
    // Neighbouring lanes share the output quads and taps (the same dy texels).
    let g = wid.y;
    let b0 = (gid.x % cblocks) * CB4;           // first input quad
    let j0 = ((gid.x / cblocks) % kblocks) * TK4; // first output quad
    let tb = gid.x / (cblocks * kblocks);       // tap block
    let r0 = (tb / (S / TS)) * TR;              // first kernel row and column of the block
    let s0 = (tb % (S / TS)) * TS;
    let hw = prm.h * prm.w;
    let pq = prm.p * prm.q;
    var bacc: array<vec4<f32>, 4>;
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    for (var row = row0; row < row1; row++) {
        let n = prm.n_base + row / prm.p;
        let p = row % prm.p;
        let dyrow = ((n * prm.groups + g) * kq) * pq + p * prm.q;
        let xbase = ((n * prm.groups + g) * cq) * hw;
        for (var q = 0u; q < prm.q; q++) {
            for (var j = 0u; j < TK4; j++) {
                dys[j] = textureLoad(dyt, texel(dyrow + min(j0 + j, kq - 1u) * pq + q));
                bacc[j] += dys[j];
            }
            let ix0 = i32(q * SW + s0) - i32(prm.pad_left);
            for (var cc = 0u; cc < CB4; cc++) {
                let plane = xbase + min(b0 + cc, cq - 1u) * hw;
                for (var r = 0u; r < TR; r++) {
                    let iy = i32(p * SH + r0 + r) - i32(prm.pad_top);
                    let row_ok = iy >= 0 && iy < i32(prm.h);
                    let xrow = plane + u32(iy) * prm.w;
                    // The taps of the row written out, as in grouped_conv_backward_weight.
                    let i0 = (4u * cc * TAPS + r * TS) * TK4;
                    tap(load_x(xrow, ix0, row_ok), i0);
                    if (TS == 3u) {
                        tap(load_x(xrow, ix0 + 1, row_ok), i0 + TK4);
                        tap(load_x(xrow, ix0 + 2, row_ok), i0 + 2u * TK4);
                    }
                }
            }
        }
    }
    store_tile(wid.z, g, b0, j0, r0, s0);
    // The invocation at input quad 0 and tap block 0 also writes the bias gradient of its
    // output channels.
    if (b0 == 0u && tb == 0u) {
        store_bias(bacc, wid.z, g, j0);
    }
}
