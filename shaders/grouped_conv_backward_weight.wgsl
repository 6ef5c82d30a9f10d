// grouped_conv_backward_weight: partial sums of the gradient of grouped_conv_forward with
// respect to w, one partial per split of the output rows.
//   x: [N, C, H, W]   dy: [N, K, P, Q]   part: [splits, K, C/G, R, S]
//   part[split_base + z, k, c, r, s] = sum over the rows (n, p) of split z and all q of
//       dy[n,k,p,q] * x[n, g*C/G + c, p*sh + r - pad_top, q*sw + s - pad_left]
// Rows (n, p), n < N, are cut into consecutive ranges of rows_per_split; sum_partials then adds
// the splits in a fixed order, so the result is bitwise reproducible (no float atomics).
// Dispatch: x = ceil((C/G)*R*S / 64), lanes over (c, r, s); y = G * ceil((K/G) / 8) blocks of 8
// output channels; z = splits. The dy index depends only on the workgroup and the loop counters,
// so dy is broadcast and each x value loaded feeds 8 multiply-adds.
// Launcher: ops::grouped_conv::backward_weight.

struct Params {
    n: u32, c: u32, h: u32, w: u32,            // input N, C, H, W (N of this batch chunk)
    k: u32, p: u32, q: u32, groups: u32,       // output channels K, output P, Q; groups G
    r: u32, s: u32, stride_h: u32, stride_w: u32,
    pad_top: u32, pad_left: u32, has_bias: u32, accumulate: u32,
    rows_per_split: u32, split_base: u32, _pad0: u32, _pad1: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

const TK: u32 = 8u;

@compute @workgroup_size(64)
fn grouped_conv_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let blocks = (kg + TK - 1u) / TK;
    let g = wid.y / blocks;
    let k0 = g * kg + (wid.y % blocks) * TK;
    let nk = min(TK, (g + 1u) * kg - k0);
    let rs = prm.r * prm.s;
    let cols = cg * rs;
    let j = gid.x;
    if (j >= cols) {
        return;
    }
    let c = j / rs;
    let r = (j % rs) / prm.s;
    let s = j % prm.s;
    let pq = prm.p * prm.q;

    var dyoff: array<u32, 8>;
    var acc: array<f32, 8>;
    for (var t = 0u; t < TK; t++) {
        dyoff[t] = (k0 + min(t, nk - 1u)) * pq;
        acc[t] = 0.0;
    }
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    for (var row = row0; row < row1; row++) {
        let n = row / prm.p;
        let p = row % prm.p;
        let iy = i32(p * prm.stride_h + r) - i32(prm.pad_top);
        let row_ok = iy >= 0 && iy < i32(prm.h);
        let xrow = (n * prm.c + g * cg + c) * prm.h * prm.w + u32(iy) * prm.w;
        let dyrow = n * prm.k * pq + p * prm.q;
        for (var q = 0u; q < prm.q; q++) {
            let ix = i32(q * prm.stride_w + s) - i32(prm.pad_left);
            let ok = row_ok && ix >= 0 && ix < i32(prm.w);
            let xv = select(0.0, x[select(0u, xrow + u32(ix), ok)], ok);
            for (var t = 0u; t < TK; t++) {
                acc[t] = fma(xv, dy[dyrow + dyoff[t] + q], acc[t]);
            }
        }
    }
    for (var t = 0u; t < nk; t++) {
        part[((prm.split_base + wid.z) * prm.k + k0 + t) * cols + j] = acc[t];
    }
}
