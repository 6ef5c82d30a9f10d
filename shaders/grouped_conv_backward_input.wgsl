// grouped_conv_backward_input: the gradient of grouped_conv_forward with respect to x.
//   dy: [N, K, P, Q]   w: [K, C/G, R, S]   dx: [N, C, H, W]
//   dx[n,c,iy,ix] (+)= sum_{k in group(c), r, s} dy[n,k,p,q] * w[k, c mod C/G, r, s]
//   over the (p, q) with p*sh + r - pad_top = iy and q*sw + s - pad_left = ix.
//   With accumulate = 0 the old dx is never read (it may hold NaN); with 1 the sum is added to it.
// Dispatch: x = ceil(N*H*W / 64) workgroups of 64 input pixels; y = G * ceil((C/G) / 8) blocks of
// 8 input channels within one group. Weights are broadcast as in the forward kernel.
// Launcher: ops::grouped_conv::backward_input.

struct Params {
    n: u32, c: u32, h: u32, w: u32,            // input N, C, H, W (N of this batch chunk)
    k: u32, p: u32, q: u32, groups: u32,       // output channels K, output P, Q; groups G
    r: u32, s: u32, stride_h: u32, stride_w: u32,
    pad_top: u32, pad_left: u32, has_bias: u32, accumulate: u32,
    rows_per_split: u32, split_base: u32, _pad0: u32, _pad1: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const TC: u32 = 8u;

@compute @workgroup_size(64)
fn grouped_conv_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let blocks = (cg + TC - 1u) / TC;
    let g = wid.y / blocks;
    let c0 = (wid.y % blocks) * TC;   // first input channel of the block, within the group
    let nc = min(TC, cg - c0);
    let hw = prm.h * prm.w;
    let pix = gid.x;
    if (pix >= prm.n * hw) {
        return;
    }
    let n = pix / hw;
    let iy = i32((pix % hw) / prm.w);
    let ix = i32(pix % prm.w);
    let rs = prm.r * prm.s;
    let sh = i32(prm.stride_h);
    let sw = i32(prm.stride_w);

    var wcol: array<u32, 8>;
    var acc: array<f32, 8>;
    for (var t = 0u; t < TC; t++) {
        wcol[t] = (c0 + min(t, nc - 1u)) * rs;
        acc[t] = 0.0;
    }
    for (var kk = 0u; kk < kg; kk++) {
        let k = g * kg + kk;
        let plane = (n * prm.k + k) * prm.p * prm.q;
        let wk = k * cg * rs;
        for (var r = 0u; r < prm.r; r++) {
            let py = iy + i32(prm.pad_top) - i32(r);
            let p = py / sh;
            let row_ok = py >= 0 && py % sh == 0 && p < i32(prm.p);
            for (var s = 0u; s < prm.s; s++) {
                let qx = ix + i32(prm.pad_left) - i32(s);
                let q = qx / sw;
                let ok = row_ok && qx >= 0 && qx % sw == 0 && q < i32(prm.q);
                let g_out = select(0.0, dy[select(0u, plane + u32(p) * prm.q + u32(q), ok)], ok);
                let wi = wk + r * prm.s + s;
                for (var t = 0u; t < TC; t++) {
                    acc[t] = fma(g_out, w[wi + wcol[t]], acc[t]);
                }
            }
        }
    }
    for (var t = 0u; t < nc; t++) {
        let i = (n * prm.c + g * cg + c0 + t) * hw + pix % hw;
        dx[i] = select(0.0, dx[i], prm.accumulate != 0u) + acc[t];
    }
}
