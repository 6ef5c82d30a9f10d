// grouped_conv_backward_input_workgroup: grouped_conv_backward_input with the weights staged in
// workgroup memory, for GPUs, as grouped_conv_forward_workgroup does for the forward.
//   dy: [N, K, P, Q]   wp: [G, K/G, R, S, C_pad/4] (vec4; grouped_conv_pack_weight, mode 1),
//   binding 2, a storage buffer read with load_packed (common/packed_buffer.wgsl)
//   dx: [N, C, H, W]
//   dx[n,c,iy,ix] (+)= sum_{k in group(c), r, s} dy[n,k,p,q] * w[k, c mod C/G, r, s]
//   over the (p, q) with p*SH + r - pad_top = iy and q*SW + s - pad_left = ix.
// One dispatch per stride phase, tiles as grouped_conv_backward_input's (TP pixels of a row of
// the phase x 4*TC4 input channels). Every lane of a workgroup has the same channel tile
// (in_tile rounds the pixel tiles up to the workgroup), so the workgroup loads the phase's
// weights of CHUNK output channels (CHUNK*NR*NS*TC4 vec4s, at most 512) once, together. The
// sums run over (k, r, s) in grouped_conv_backward_input's order: the result is bitwise its.
// Dispatch: x = ceil(N*rows*ceil(cols/TP) / 64) * ceil((C/G) / (4*TC4)), y = G.
// Launcher: ops::grouped_conv::backward_input, one dispatch per phase.

@group(0) @binding(1) var<storage, read> dy: array<f32>;

override CHUNK: u32 = 4u;   // output channels staged at once; CHUNK * NR * NS * TC4 <= 512

var<workgroup> wsh: array<vec4<f32>, 512>;   // [((kk * NR + ir) * NS + i) * TC4 + j]

@compute @workgroup_size(64)
fn grouped_conv_backward_input_workgroup(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                                         @builtin(local_invocation_index) lid: u32) {
    // No lane returns early: every lane takes part in the staging and its barriers. The lanes
    // past the pixel tiles compute the last one again and store nothing.
    let o = in_tile(gid, wid, 64u);
    let g = o.g;
    let kg = prm.k / prm.groups;                // o.kg, but uniform for the barriers' loop
    let n = o.n;
    let iy = o.iy;
    let qbase = o.qbase;
    let ws = prm.w_stride / 4u;
    // The phase's taps of one output channel; the divisors below are kept from 0, which a
    // phase that no tap reaches (NR or NS 0: count 0, nothing staged) would make them.
    let taps = NR * NS;
    for (var k0 = 0u; k0 < kg; k0 += CHUNK) {
        let count = min(CHUNK, kg - k0) * taps * TC4;
        workgroupBarrier();
        for (var i = lid; i < count; i += 64u) {
            let j = i % TC4;
            let m = i / TC4;                            // (kk - k0, ir, tap)
            let tap = m % max(NS, 1u);
            let ir = (m / max(NS, 1u)) % max(NR, 1u);
            let kk = k0 + m / max(taps, 1u);
            let r = R0 + ir * SH;
            let s = S0 + tap * SW;
            // o.c0: the same in every lane.
            wsh[i] = load_packed(((g * kg + kk) * R * S + r * S + s) * ws + o.c0 / 4u + j);
        }
        workgroupBarrier();
        for (var kc = 0u; kc < min(CHUNK, kg - k0); kc++) {
            let plane = (n * prm.k + g * kg + k0 + kc) * prm.p * prm.q;
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
                let wrow = (kc * NR + ir) * NS * TC4;
                for (var j = 0u; j < TC4; j++) {
                    var w0 = vec4<f32>(0.0);
                    var w1 = vec4<f32>(0.0);
                    var w2 = vec4<f32>(0.0);
                    if (NS >= 1u) { w0 = wsh[wrow + j]; }
                    if (NS >= 2u) { w1 = wsh[wrow + TC4 + j]; }
                    if (NS >= 3u) { w2 = wsh[wrow + 2u * TC4 + j]; }
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
    }
    if (o.valid) {
        store_dx(o);
    }
}
