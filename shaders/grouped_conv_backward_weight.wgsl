// grouped_conv_backward_weight: partial sums of the gradient of grouped_conv_forward with
// respect to w, one partial per split of the output rows.
//   x: [N, C, H, W]   dy: [N, K, P, Q]   part: [splits, K, C/G, R, S]
//   part[z, k, c, r, s] = sum over the rows (n, p) of split z and all q of
//       dy[n,k,p,q] * x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left]
// Rows (n, p), n < N, are cut into consecutive ranges of rows_per_split; sum_partials then adds
// the splits in a fixed order, so the result is bitwise reproducible (no float atomics).
// Register tile: each invocation owns CB input channels x all R*S taps x 4*TK4 output
// channels. For each output (n, p, q) of its split it loads the 4*TK4 dy values once and, per
// (c, r), the S inputs they meet, and does CB*R*S*TK4 vec4 multiply-adds. (Longer runs of q per
// step load fewer floats per multiply-add but spill registers on lavapipe: measured slower.)
// S is 1 or 3, written out so the tile stays in registers.
// Dispatch: x = ceil(ceil((C/G) / CB) * ceil((K/G) / (4*TK4)) / 64) over (input tile, output
// tile), y = G, z = splits.
// Launcher: ops::grouped_conv::backward_weight.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

override R: u32 = 3u;       // 1 or 3
override S: u32 = 3u;       // 1 or 3
override SH: u32 = 1u;
override SW: u32 = 1u;
override CB: u32 = 1u;      // input channels per invocation; CB * R * S * TK4 <= 72
override TK4: u32 = 2u;     // output channels per invocation / 4, at most 4

@compute @workgroup_size(64)
fn grouped_conv_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let kblocks = (kg + 4u * TK4 - 1u) / (4u * TK4);
    let cblocks = (cg + CB - 1u) / CB;
    if (gid.x >= cblocks * kblocks) {
        return;
    }
    // Lanes run over (input channel tile, output channel tile), so that narrow convs still fill
    // the workgroups; neighbouring lanes share the output channels (the same dy).
    let g = wid.y;
    let c0 = (gid.x % cblocks) * CB;
    let k0 = (gid.x / cblocks) * 4u * TK4;
    let pq = prm.p * prm.q;
    // Channel offsets of the tile's output channels; past the group they repeat the last one.
    var koff: array<u32, 16>;
    for (var e = 0u; e < 4u * TK4; e++) {
        koff[e] = (g * kg + min(k0 + e, kg - 1u)) * pq;
    }
    var acc: array<vec4<f32>, 72>;             // [(cc * R*S + r * S + s) * TK4 + j], zero-initialised
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    for (var row = row0; row < row1; row++) {
        let n = row / prm.p;
        let p = row % prm.p;
        let dyrow = n * prm.k * pq + p * prm.q;
        for (var q = 0u; q < prm.q; q++) {
            var dys: array<vec4<f32>, 4>;       // dy at q for channels k0 + 4j ..
            for (var j = 0u; j < TK4; j++) {
                var d = vec4<f32>(0.0);
                for (var e = 0u; e < 4u; e++) {
                    d[e] = dy[dyrow + koff[4u * j + e] + q];
                }
                dys[j] = d;
            }
            let ix0 = i32(q * SW) - i32(prm.pad_left);
            for (var cc = 0u; cc < CB; cc++) {
                let c = min(c0 + cc, cg - 1u);
                let plane = (n * prm.c + g * cg + c) * prm.h * prm.w;
                for (var r = 0u; r < R; r++) {
                    let iy = i32(p * SH + r) - i32(prm.pad_top);
                    let row_ok = iy >= 0 && iy < i32(prm.h);
                    let xrow = plane + u32(iy) * prm.w;
                    var xs: array<f32, 3>;
                    for (var s = 0u; s < S; s++) {
                        let ix = ix0 + i32(s);
                        let ok = row_ok && ix >= 0 && ix < i32(prm.w);
                        xs[s] = select(0.0, x[select(0u, xrow + u32(ix), ok)], ok);
                    }
                    let base = (cc * R + r) * S;
                    for (var j = 0u; j < TK4; j++) {
                        acc[base * TK4 + j] = fma(vec4<f32>(xs[0]), dys[j], acc[base * TK4 + j]);
                        if (S == 3u) {
                            acc[(base + 1u) * TK4 + j] = fma(vec4<f32>(xs[1]), dys[j], acc[(base + 1u) * TK4 + j]);
                            acc[(base + 2u) * TK4 + j] = fma(vec4<f32>(xs[2]), dys[j], acc[(base + 2u) * TK4 + j]);
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
                        let i = (wid.z * prm.k + g * kg + kk) * cols + (c0 + cc) * rs + tap;
                        part[i] = acc[(cc * rs + tap) * TK4 + j][e];
                    }
                }
            }
        }
    }
}
