// grouped_conv_backward_input: the gradient of grouped_conv_forward with respect to x.
//   dy: [N, K, P, Q]   wp: [G, K/G, R, S, C_pad/4] (vec4; grouped_conv_pack_weight, mode 1),
//   binding 2, a storage buffer read with load_packed (common/packed_buffer.wgsl; the
//   _textured variant reads it from a texture)
//   dx: [N, C, H, W]
//   dx[n,c,iy,ix] (+)= sum_{k in group(c), r, s} dy[n,k,p,q] * w[k, c mod C/G, r, s]
//   over the (p, q) with p*SH + r - pad_top = iy and q*SW + s - pad_left = ix.
//   With accumulate = 0 the old dx is never read (it may hold NaN); with 1 the sum is added.
// Stride phases: pixels with (iy + pad_top) mod SH = R0 receive only the taps r = R0, R0 + SH,
// ... (NR of them); likewise for columns and S0, NS. One dispatch covers one phase
// (phase_y, phase_x), so every invocation takes exactly the taps that reach its pixels and
// no multiply-add is wasted on the zeros a strided conv's gradient would interleave.
// Register tile: TP pixels of one row of the phase (ix = phase_x + SW*(q0 + t)) for 4*TC4
// input channels. Per (k, r) the dy values those pixels need, SPAN = TP + NS - 1, are loaded
// once; tap i (s = S0 + i*SW) reads dy column q0 + t + NS - 1 - i.
// Dispatch: x = ceil(N*rows*ceil(cols/TP) * ceil((C/G) / (4*TC4)) / 64), y = G.
// Launcher: ops::grouped_conv::backward_input, one dispatch per phase.

@group(0) @binding(1) var<storage, read> dy: array<f32>;

@compute @workgroup_size(64)
fn grouped_conv_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
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
    for (var kk = 0u; kk < kg; kk++) {
        let plane = (n * prm.k + g * kg + kk) * prm.p * prm.q;
        let wk = (g * kg + kk) * R * S * ws + c0 / 4u;
        for (var ir = 0u; ir < NR; ir++) {
            let r = R0 + ir * SH;
            let p = (i32(iy + prm.pad_top) - i32(r)) / i32(SH);
            let row_ok = i32(iy + prm.pad_top) >= i32(r) && p < i32(prm.p);
            let row = plane + u32(p) * prm.q;
            var ds: array<f32, 10>;
            for (var u = 0u; u < SPAN; u++) {
                let q = qbase + i32(u);
                let ok = row_ok && q >= 0 && q < i32(prm.q);
                ds[u] = select(0.0, dy[select(0u, row + u32(q), ok)], ok);
            }
            let wrow = wk + (r * S + S0) * ws;
            for (var j = 0u; j < TC4; j++) {
                var w0 = vec4<f32>(0.0);
                var w1 = vec4<f32>(0.0);
                var w2 = vec4<f32>(0.0);
                if (NS >= 1u) { w0 = load_packed(wrow + j); }
                if (NS >= 2u) { w1 = load_packed(wrow + SW * ws + j); }
                if (NS >= 3u) { w2 = load_packed(wrow + 2u * SW * ws + j); }
                for (var t = 0u; t < TP; t++) {
                    var a = acc[t * TC4 + j];
                    if (NS >= 1u) { a = fma(vec4<f32>(ds[t + NS - 1u]), w0, a); }
                    if (NS >= 2u) { a = fma(vec4<f32>(ds[t + NS - 2u]), w1, a); }
                    if (NS >= 3u) { a = fma(vec4<f32>(ds[t]), w2, a); }
                    acc[t * TC4 + j] = a;
                }
            }
        }
    }
    store_dx(o);
}
