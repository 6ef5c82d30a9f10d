// grouped_conv_forward: y = conv2d(x, w) + b, grouped, strided, zero padding given per side.
//   x: [N, C, H, W]   w: [K, C/G, R, S]   b: [K] (unread unless has_bias)   y: [N, K, P, Q]
//   y[n,k,p,q] = b[k] + sum_{c < C/G, r < R, s < S} x[n, g*C/G + c, p*sh + r - pad_top, q*sw + s - pad_left] * w[k,c,r,s]
//   where g = k / (K/G) and x outside the image reads as 0.
// Dispatch: x = ceil(N*P*Q / 64) workgroups of 64 output pixels; y = G * ceil((K/G) / 8) blocks
// of 8 output channels within one group. The weight index depends only on the workgroup and the
// loop counters, so all lanes read the same weight (a broadcast), and every input value loaded
// feeds 8 multiply-adds. Launcher: ops::grouped_conv::forward.

struct Params {
    n: u32, c: u32, h: u32, w: u32,            // input N, C, H, W (N of this batch chunk)
    k: u32, p: u32, q: u32, groups: u32,       // output channels K, output P, Q; groups G
    r: u32, s: u32, stride_h: u32, stride_w: u32,
    pad_top: u32, pad_left: u32, has_bias: u32, accumulate: u32,
    rows_per_split: u32, split_base: u32, _pad0: u32, _pad1: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const TK: u32 = 8u;

@compute @workgroup_size(64)
fn grouped_conv_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let blocks = (kg + TK - 1u) / TK;
    let g = wid.y / blocks;
    let k0 = g * kg + (wid.y % blocks) * TK;
    let nk = min(TK, (g + 1u) * kg - k0);
    let pq = prm.p * prm.q;
    let pix = gid.x;
    if (pix >= prm.n * pq) {
        return;
    }
    let n = pix / pq;
    let op = (pix % pq) / prm.q;
    let oq = pix % prm.q;
    let rs = prm.r * prm.s;

    // Rows of w for the block's channels; a partial last block repeats its last row.
    var wrow: array<u32, 8>;
    var acc: array<f32, 8>;
    for (var t = 0u; t < TK; t++) {
        let kt = k0 + min(t, nk - 1u);
        wrow[t] = kt * cg * rs;
        acc[t] = select(0.0, b[select(0u, kt, prm.has_bias != 0u)], prm.has_bias != 0u);
    }
    let iy0 = i32(op * prm.stride_h) - i32(prm.pad_top);
    let ix0 = i32(oq * prm.stride_w) - i32(prm.pad_left);
    for (var c = 0u; c < cg; c++) {
        let plane = (n * prm.c + g * cg + c) * prm.h * prm.w;
        for (var r = 0u; r < prm.r; r++) {
            let iy = iy0 + i32(r);
            let row_ok = iy >= 0 && iy < i32(prm.h);
            for (var s = 0u; s < prm.s; s++) {
                let ix = ix0 + i32(s);
                let ok = row_ok && ix >= 0 && ix < i32(prm.w);
                let xv = select(0.0, x[select(0u, plane + u32(iy) * prm.w + u32(ix), ok)], ok);
                let wi = (c * prm.r + r) * prm.s + s;
                for (var t = 0u; t < TK; t++) {
                    acc[t] = fma(xv, w[wrow[t] + wi], acc[t]);
                }
            }
        }
    }
    for (var t = 0u; t < nk; t++) {
        y[((n * prm.k + k0 + t) * prm.p + op) * prm.q + oq] = acc[t];
    }
}
