// grouped_conv_backward_weight_workgroup: grouped_conv_backward_weight with x and dy staged in
// workgroup memory, for GPUs: a workgroup computes a block of 8*CB input x 32*TK4 output
// channels (8 x 8 lanes), and per run of 16 outputs along a row it loads the x and dy that the
// block meets once, together; every lane then reads them from on-chip memory.
//   x: [N, C, H, W]   dy: [N, K, P, Q]   part: [splits, K, C/G, R, S]
//   part[z, k, c, r, s] = sum over the rows (n, p) of split z and all q of
//       dy[n,k,p,q] * x[n, g*C/G + c, p*SH + r - pad_top, q*SW + s - pad_left]
// Every sum runs over (n, p, q) in grouped_conv_backward_weight's order: the result is bitwise
// its. Lane (cl, kl) owns input channels cl + 8*cc (cc < CB) and output channels 4*kl + 32*j
// .. + 3 (j < TK4) of the block, all R*S taps: CB*R*S*TK4 vec4 accumulators, at most 32.
// Staged per run: x [8*CB channels, R rows, SPANX = 15*SW + S columns] (at most 2048 floats),
// dy [32*TK4 channels, 16] (TK4 <= 2).
// Dispatch: x = ceil((C/G) / (8*CB)) * ceil((K/G) / (32*TK4)) (channel blocks, input block
// fastest), y = G, z = splits. Launcher: ops::grouped_conv::backward_weight.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

override R: u32 = 3u;       // 1 or 3
override S: u32 = 3u;       // 1 or 3
override SH: u32 = 1u;
override SW: u32 = 1u;
override CB: u32 = 1u;      // input channels per lane; 8 * CB * R * SPANX <= 2048
override TK4: u32 = 2u;     // output channels per lane / 4, at most 2; CB * R * S * TK4 <= 32
override SPANX: u32 = 18u;  // input columns a run of 16 outputs meets: 15 * SW + S

const RUN: u32 = 16u;       // outputs along a row staged at once

var<workgroup> xsh: array<f32, 2048>;   // [(ci * R + r) * SPANX + u]
var<workgroup> dysh: array<f32, 1024>;  // [kk * RUN + t]

@compute @workgroup_size(64)
fn grouped_conv_backward_weight_workgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let cblocks = (cg + 8u * CB - 1u) / (8u * CB);
    let g = wid.y;
    let cbase = (wid.x % cblocks) * 8u * CB;    // the block's first input and output channel
    let kbase = (wid.x / cblocks) * 32u * TK4;
    let cl = lid % 8u;
    let kl = lid / 8u;
    let pq = prm.p * prm.q;
    let xcount = 8u * CB * R * SPANX;
    let dycount = 32u * TK4 * RUN;
    // No lane returns early: every lane takes part in the staging and its barriers. Channels
    // past the group repeat the last one and are not stored.
    var acc: array<vec4<f32>, 32>;              // [(cc * R*S + r * S + s) * TK4 + j], zero-initialised
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    for (var row = row0; row < row1; row++) {
        let n = row / prm.p;
        let p = row % prm.p;
        let dyrow = n * prm.k * pq + p * prm.q;
        for (var q0 = 0u; q0 < prm.q; q0 += RUN) {
            workgroupBarrier();
            for (var i = lid; i < dycount; i += 64u) {
                let k = min(kbase + i / RUN, kg - 1u);
                let q = q0 + i % RUN;
                let ok = q < prm.q;
                dysh[i] = select(0.0, dy[select(0u, dyrow + (g * kg + k) * pq + q, ok)], ok);
            }
            for (var i = lid; i < xcount; i += 64u) {
                let c = min(cbase + i / (R * SPANX), cg - 1u);
                let r = (i / SPANX) % R;
                let iy = i32(p * SH + r) - i32(prm.pad_top);
                let ix = i32(q0 * SW + i % SPANX) - i32(prm.pad_left);
                let ok = iy >= 0 && iy < i32(prm.h) && ix >= 0 && ix < i32(prm.w);
                let at = ((n * prm.c + g * cg + c) * prm.h + u32(iy)) * prm.w + u32(ix);
                xsh[i] = select(0.0, x[select(0u, at, ok)], ok);
            }
            workgroupBarrier();
            for (var t = 0u; t < min(RUN, prm.q - q0); t++) {
                var dys: array<vec4<f32>, 2>;   // dy at q0 + t for channels kbase + 4*kl + 32*j ..
                for (var j = 0u; j < TK4; j++) {
                    let kk = (4u * kl + 32u * j) * RUN + t;
                    dys[j] = vec4<f32>(dysh[kk], dysh[kk + RUN], dysh[kk + 2u * RUN], dysh[kk + 3u * RUN]);
                }
                for (var cc = 0u; cc < CB; cc++) {
                    for (var r = 0u; r < R; r++) {
                        let xrow = ((cl + 8u * cc) * R + r) * SPANX + t * SW;
                        let base = (cc * R + r) * S;
                        for (var j = 0u; j < TK4; j++) {
                            acc[base * TK4 + j] = fma(vec4<f32>(xsh[xrow]), dys[j], acc[base * TK4 + j]);
                            if (S == 3u) {
                                acc[(base + 1u) * TK4 + j] = fma(vec4<f32>(xsh[xrow + 1u]), dys[j], acc[(base + 1u) * TK4 + j]);
                                acc[(base + 2u) * TK4 + j] = fma(vec4<f32>(xsh[xrow + 2u]), dys[j], acc[(base + 2u) * TK4 + j]);
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
        let c = cbase + cl + 8u * cc;
        for (var tap = 0u; tap < rs; tap++) {
            for (var j = 0u; j < TK4; j++) {
                for (var e = 0u; e < 4u; e++) {
                    let kk = kbase + 4u * kl + 32u * j + e;
                    if (c < cg && kk < kg) {
                        let i = (wid.z * prm.k + g * kg + kk) * cols + c * rs + tap;
                        part[i] = acc[(cc * rs + tap) * TK4 + j][e];
                    }
                }
            }
        }
    }
}
