// grouped_conv_backward_weight: partial sums of the gradient of grouped_conv_forward with
// respect to w, one partial per split of the output rows.
//   x: [N, C, H, W]   dy: [N, K, P, Q]   part: [splits, K, C/G, R, S]
//   part[split_base + z, k, c, r, s] = sum over the rows (n, p) of split z and all q of
//       dy[n,k,p,q] * x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left]
// Rows (n, p), n < N, are cut into consecutive ranges of rows_per_split; sum_partials then adds
// the splits in a fixed order, so the result is bitwise reproducible (no float atomics).
// Register tile: each invocation owns CB input channels x all R*S taps x 4*TK4 output
// channels. The sum runs over 4 outputs q at a time: the 4*TK4 x 4 dy values, and per (c, r)
// the SPAN = 3*SW + S input values they meet, are loaded once and feed CB*R*S*4 vec4
// multiply-adds. S is 1 or 3, written out so the tile stays in registers.
// Dispatch: x = ceil((C/G) / CB / 64), y = G * ceil((K/G) / (4*TK4)), z = splits.
// Launcher: ops::grouped_conv::backward_weight.

struct Params {
    n: u32, c: u32, h: u32, w: u32,          // input N (of this batch chunk), C, H, W
    k: u32, p: u32, q: u32, groups: u32,     // output channels K, output P, Q; groups G
    pad_top: u32, pad_left: u32, has_bias: u32, accumulate: u32,
    w_stride: u32,                           // packed weight row length (a multiple of 4)
    blocks: u32,                             // pixel blocks per row (ceil(Q / TP)), or splits
    phase_y: u32, phase_x: u32,              // backward_input: the stride phase of this dispatch
    rows: u32, cols: u32,                    // backward_input: rows and pixels of the phase
    rows_per_split: u32, split_base: u32,    // backward_weight: the split of the N*P rows
    _pad0: u32, _pad1: u32, _pad2: u32, _pad3: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

override R: u32 = 3u;       // 1 or 3
override S: u32 = 3u;       // 1 or 3
override SH: u32 = 1u;
override SW: u32 = 1u;
override CB: u32 = 1u;      // input channels per invocation: at most 8, and 1 when R*S = 9
override TK4: u32 = 2u;     // output channels per invocation / 4, at most 2
override SPAN: u32 = 6u;    // 3 * SW + S, at most 9

const TQ: u32 = 4u;         // outputs q per step of the sum

@compute @workgroup_size(64)
fn grouped_conv_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let kblocks = (kg + 4u * TK4 - 1u) / (4u * TK4);
    let g = wid.y / kblocks;
    let k0 = (wid.y % kblocks) * 4u * TK4;
    let c0 = gid.x * CB;
    if (c0 >= cg) {
        return;
    }
    let pq = prm.p * prm.q;
    // Channel offsets of the tile's output channels; past the group they repeat the last one.
    var koff: array<u32, 8>;
    for (var e = 0u; e < 4u * TK4; e++) {
        koff[e] = (g * kg + min(k0 + e, kg - 1u)) * pq;
    }
    var acc: array<vec4<f32>, 18>;             // [(cc * R*S + r * S + s) * 2 + j], zero-initialised
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    for (var row = row0; row < row1; row++) {
        let n = row / prm.p;
        let p = row % prm.p;
        let dyrow = n * prm.k * pq + p * prm.q;
        for (var q0 = 0u; q0 < prm.q; q0 += TQ) {
            var dys: array<vec4<f32>, 8>;       // [t * 2 + j]: dy at q0 + t for channels k0 + 4j ..
            for (var t = 0u; t < TQ; t++) {
                let ok = q0 + t < prm.q;
                for (var j = 0u; j < TK4; j++) {
                    var d = vec4<f32>(0.0);
                    for (var e = 0u; e < 4u; e++) {
                        d[e] = select(0.0, dy[select(0u, dyrow + koff[4u * j + e] + q0 + t, ok)], ok);
                    }
                    dys[t * 2u + j] = d;
                }
            }
            let ix0 = i32(q0 * SW) - i32(prm.pad_left);
            for (var cc = 0u; cc < CB; cc++) {
                let c = min(c0 + cc, cg - 1u);
                let plane = (n * prm.c + g * cg + c) * prm.h * prm.w;
                for (var r = 0u; r < R; r++) {
                    let iy = i32(p * SH + r) - i32(prm.pad_top);
                    let row_ok = iy >= 0 && iy < i32(prm.h);
                    let xrow = plane + u32(iy) * prm.w;
                    var xs: array<f32, 9>;
                    for (var u = 0u; u < SPAN; u++) {
                        let ix = ix0 + i32(u);
                        let ok = row_ok && ix >= 0 && ix < i32(prm.w);
                        xs[u] = select(0.0, x[select(0u, xrow + u32(ix), ok)], ok);
                    }
                    let base = (cc * R + r) * S;
                    for (var t = 0u; t < TQ; t++) {
                        for (var j = 0u; j < TK4; j++) {
                            let d = dys[t * 2u + j];
                            acc[base * 2u + j] = fma(vec4<f32>(xs[t * SW]), d, acc[base * 2u + j]);
                            if (S == 3u) {
                                acc[(base + 1u) * 2u + j] = fma(vec4<f32>(xs[t * SW + 1u]), d, acc[(base + 1u) * 2u + j]);
                                acc[(base + 2u) * 2u + j] = fma(vec4<f32>(xs[t * SW + 2u]), d, acc[(base + 2u) * 2u + j]);
                            }
                        }
                    }
                }
            }
        }
    }
    let rs = R * S;
    let cols = cg * rs;
    for (var cc = 0u; cc < CB; cc++) {
        for (var tap = 0u; tap < rs; tap++) {
            for (var j = 0u; j < TK4; j++) {
                for (var e = 0u; e < 4u; e++) {
                    let kk = k0 + 4u * j + e;
                    if (c0 + cc < cg && kk < kg) {
                        let i = ((prm.split_base + wid.z) * prm.k + g * kg + kk) * cols + (c0 + cc) * rs + tap;
                        part[i] = acc[(cc * rs + tap) * 2u + j][e];
                    }
                }
            }
        }
    }
}
