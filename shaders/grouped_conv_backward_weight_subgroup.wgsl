// grouped_conv_backward_weight_subgroup: grouped_conv_backward_weight_textured for 1x1 filters
// with the dy loads shared across the subgroup.
//   xt: texels [N, G, CQ, H, W] of x    dyt: texels [N, G, KQ, P, Q] of dy
//   (CQ = ceil((C/G)/4), KQ = ceil((K/G)/4); textures 4096 texels wide)
//   part: [splits, K, C/G, 1, 1]   bpart: [splits, K] (unwritten unless has_bias)
//   part[z, k, c] = sum over the rows (n, p) of split z and all q of
//       dy[n,k,p,q] * x[n, g*C/G + c, p*SH - pad_top, q*SW - pad_left]
//   bpart[z, k] = the same sum of dy[n,k,p,q]
// Register tile as the textured kernel's with one tap: CB4 input quads x TK4 output quads. The
// lanes of a subgroup own neighbouring input quads of the same output quads, so all of them
// need the same TK4 dy texels at every pixel: per run of 8 pixels lane l < 8 loads those of
// pixel l and subgroupBroadcast hands them to every lane, instead of every lane loading all.
// Each lane still loads its own CB4 x texels per pixel. The sums run over (n, p, q) in the
// textured kernel's order: the results are bitwise its.
// Needs the adapter feature SUBGROUP with 8 to 64 lanes (gpu::Gpu::shares_subgroups) in a 1-D
// workgroup of 64; each output tile's input tiles are rounded up to 64 lanes so that no
// subgroup spans two output tiles.
// Dispatch: x = ceil(ceil(CQ / CB4) / 64) * ceil(KQ / TK4), y = G, z = splits.
// Launcher: ops::grouped_conv::backward_weight.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var dyt: texture_storage_2d<rgba32float, read>;

// The bias gradient's sums of the tile's output quads, [j] (private for GL, see `acc`).
var<private> bacc: array<vec4<f32>, 4>;

// The current input row: where it starts in the group's first input quad (xrow; quad b is
// b * hw further), whether it lies inside the image, the lane's first quad b0, and the group's
// quad count cq (quads past it are clamped to the last: loaded, never stored).
struct Row {
    xrow: u32, hw: u32, row_ok: bool, b0: u32, cq: u32,
}

// Adds pixel q of the row (dy texels d0 .. d3 of the tile's output quads) to every accumulator
// and to the bias sums: the textured kernel's one-tap `tap` for each input quad.
fn pixel(q: u32, rw: Row, d0: vec4<f32>, d1: vec4<f32>, d2: vec4<f32>, d3: vec4<f32>) {
    dys[0] = d0;
    dys[1] = d1;
    dys[2] = d2;
    dys[3] = d3;
    let ix = i32(q * SW) - i32(prm.pad_left);
    let ok = rw.row_ok && ix >= 0 && ix < i32(prm.w);
    for (var j = 0u; j < TK4; j++) {
        bacc[j] += dys[j];
    }
    for (var cc = 0u; cc < CB4; cc++) {
        let at = rw.xrow + min(rw.b0 + cc, rw.cq - 1u) * rw.hw + u32(ix);
        tap(select(vec4<f32>(0.0), textureLoad(xt, texel(select(0u, at, ok))), ok), 4u * cc * TK4);
    }
}

// The run of `count` (1 to 8) pixels from q0: lane l < 8 holds the dy texels m0 .. m3 of pixel
// q0 + l; the broadcasts name their lane as a constant, as WGSL requires.
fn run(q0: u32, count: u32, rw: Row, m0: vec4<f32>, m1: vec4<f32>, m2: vec4<f32>, m3: vec4<f32>) {
    pixel(q0, rw, subgroupBroadcast(m0, 0u), subgroupBroadcast(m1, 0u), subgroupBroadcast(m2, 0u), subgroupBroadcast(m3, 0u));
    if (count > 1u) { pixel(q0 + 1u, rw, subgroupBroadcast(m0, 1u), subgroupBroadcast(m1, 1u), subgroupBroadcast(m2, 1u), subgroupBroadcast(m3, 1u)); }
    if (count > 2u) { pixel(q0 + 2u, rw, subgroupBroadcast(m0, 2u), subgroupBroadcast(m1, 2u), subgroupBroadcast(m2, 2u), subgroupBroadcast(m3, 2u)); }
    if (count > 3u) { pixel(q0 + 3u, rw, subgroupBroadcast(m0, 3u), subgroupBroadcast(m1, 3u), subgroupBroadcast(m2, 3u), subgroupBroadcast(m3, 3u)); }
    if (count > 4u) { pixel(q0 + 4u, rw, subgroupBroadcast(m0, 4u), subgroupBroadcast(m1, 4u), subgroupBroadcast(m2, 4u), subgroupBroadcast(m3, 4u)); }
    if (count > 5u) { pixel(q0 + 5u, rw, subgroupBroadcast(m0, 5u), subgroupBroadcast(m1, 5u), subgroupBroadcast(m2, 5u), subgroupBroadcast(m3, 5u)); }
    if (count > 6u) { pixel(q0 + 6u, rw, subgroupBroadcast(m0, 6u), subgroupBroadcast(m1, 6u), subgroupBroadcast(m2, 6u), subgroupBroadcast(m3, 6u)); }
    if (count > 7u) { pixel(q0 + 7u, rw, subgroupBroadcast(m0, 7u), subgroupBroadcast(m1, 7u), subgroupBroadcast(m2, 7u), subgroupBroadcast(m3, 7u)); }
}

@compute @workgroup_size(64)
fn grouped_conv_backward_weight_subgroup(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                                         @builtin(subgroup_invocation_id) lane: u32) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let cq = (cg + 3u) / 4u;
    let kq = (kg + 3u) / 4u;
    let cblocks = (cq + CB4 - 1u) / CB4;
    let lanes = (cblocks + 63u) / 64u * 64u;    // per output tile
    // A subgroup whose lanes are all past the input tiles stops at once (uniform in it); the
    // other lanes past them compute the last tile again and store nothing.
    if ((gid.x - lane) % lanes >= cblocks) {
        return;
    }
    let slot = gid.x % lanes;
    let g = wid.y;
    let b0 = min(slot, cblocks - 1u) * CB4;     // first input quad
    let j0 = (gid.x / lanes) * TK4;             // first output quad
    let hw = prm.h * prm.w;
    let pq = prm.p * prm.q;
    let l = lane % 8u;
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    for (var row = row0; row < row1; row++) {
        let n = prm.n_base + row / prm.p;
        let p = row % prm.p;
        let dyrow = ((n * prm.groups + g) * kq) * pq + p * prm.q;
        let iy = i32(p * SH) - i32(prm.pad_top);
        let rw = Row(((n * prm.groups + g) * cq) * hw + u32(iy) * prm.w, hw, iy >= 0 && iy < i32(prm.h), b0, cq);
        for (var q0 = 0u; q0 < prm.q; q0 += 8u) {
            // Lane l's pixel q0 + l (clamped to the row: loaded, never used past it).
            let at = dyrow + min(q0 + l, prm.q - 1u);
            var m: array<vec4<f32>, 4>;
            for (var j = 0u; j < TK4; j++) {
                m[j] = textureLoad(dyt, texel(at + min(j0 + j, kq - 1u) * pq));
            }
            run(q0, min(8u, prm.q - q0), rw, m[0], m[1], m[2], m[3]);
        }
    }
    if (slot < cblocks) {
        store_tile(wid.z, g, b0, j0, 0u, 0u);
        if (b0 == 0u) {
            store_bias(bacc, wid.z, g, j0);
        }
    }
}
