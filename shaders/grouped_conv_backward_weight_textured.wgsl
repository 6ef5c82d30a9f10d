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
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<storage, read_write> bpart: array<f32>;

override R: u32 = 3u;       // 1 or 3
override S: u32 = 3u;       // 1 or 3
override SH: u32 = 1u;
override SW: u32 = 1u;
override CB4: u32 = 1u;     // input channel quads per invocation; 4 * CB4 * TAPS * TK4 <= 48
override TK4: u32 = 2u;     // output channel quads per invocation, at most 4
override TAPS: u32 = 9u;    // taps per invocation: R * S, S (one kernel row) or 1
override TR: u32 = 3u;      // kernel rows per invocation: R when TAPS = R * S, else 1
override TS: u32 = 3u;      // kernel columns per invocation: 1 when TAPS = 1, else S
override EDGES: u32 = 1u;   // 0 when the tile divides C/G (4 * CB4) and K/G (4 * TK4)

// The x texel at column ix of the row starting at texel xrow, zero outside the image.
fn load_x(xrow: u32, ix: i32, row_ok: bool) -> vec4<f32> {
    let ok = row_ok && ix >= 0 && ix < i32(prm.w);
    return select(vec4<f32>(0.0), textureLoad(xt, texel(select(0u, xrow + u32(ix), ok))), ok);
}

// The invocation's accumulators, [((4 * cc + e) * TAPS + r * TS + s) * TK4 + j] (zero at the
// start), and the dy texels of the current output pixel. Private variables rather than function
// variables passed to `tap` by pointer: for GL naga writes such a parameter as a GLSL `inout`
// array, copied in and out at every call, and llvmpipe took minutes to compile the 9-tap tile.
var<private> acc: array<vec4<f32>, 48>;
var<private> dys: array<vec4<f32>, 4>;

// Adds the products of one x texel (4 input channels at one tap) with the tile's dy to the
// accumulators from index i0 (channel stride TAPS*TK4); the components written out keep the
// tile in registers.
fn tap(xv: vec4<f32>, i0: u32) {
    let stride = TAPS * TK4;
    for (var j = 0u; j < TK4; j++) {
        acc[i0 + j] = fma(vec4<f32>(xv.x), dys[j], acc[i0 + j]);
        acc[i0 + stride + j] = fma(vec4<f32>(xv.y), dys[j], acc[i0 + stride + j]);
        acc[i0 + 2u * stride + j] = fma(vec4<f32>(xv.z), dys[j], acc[i0 + 2u * stride + j]);
        acc[i0 + 3u * stride + j] = fma(vec4<f32>(xv.w), dys[j], acc[i0 + 3u * stride + j]);
    }
}

// Where the tile's weights go: part index `at` of input channel c and output channel k (the
// tile's first), the strides between input channels (rs) and output channels (cols), and the
// group's channel counts for the guards.
struct Out {
    at: u32, c: u32, k: u32,
    rs: u32, cols: u32, cg: u32, kg: u32,
}

// Stores the accumulators that tap() adds to from index i0 (input channels o.c .. o.c + 3 at
// one tap), in tap()'s loops: they unroll as tap()'s do, which keeps acc in registers (a loop
// nest of its own stayed rolled on llvmpipe, with acc in memory, at a third of the speed). With
// EDGES = 0 no store is guarded.
fn put(i0: u32, o: Out) {
    let stride = TAPS * TK4;
    for (var j = 0u; j < TK4; j++) {
        let at = o.at + 4u * j * o.cols;
        let k = o.k + 4u * j;
        if (EDGES == 0u || o.c < o.cg) { store4(acc[i0 + j], at, k, o); }
        if (EDGES == 0u || o.c + 1u < o.cg) { store4(acc[i0 + stride + j], at + o.rs, k, o); }
        if (EDGES == 0u || o.c + 2u < o.cg) { store4(acc[i0 + 2u * stride + j], at + 2u * o.rs, k, o); }
        if (EDGES == 0u || o.c + 3u < o.cg) { store4(acc[i0 + 3u * stride + j], at + 3u * o.rs, k, o); }
    }
}

// The weights of output channels k .. k + 3 (those below K/G) at part index i on.
fn store4(a: vec4<f32>, i: u32, k: u32, o: Out) {
    if (EDGES == 0u || k < o.kg) { part[i] = a.x; }
    if (EDGES == 0u || k + 1u < o.kg) { part[i + o.cols] = a.y; }
    if (EDGES == 0u || k + 2u < o.kg) { part[i + 2u * o.cols] = a.z; }
    if (EDGES == 0u || k + 3u < o.kg) { part[i + 3u * o.cols] = a.w; }
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
    // The tile's first weight: output channel 4*j0, input channel 4*b0, tap (r0, s0).
    let rs = R * S;
    let cols = cg * rs;
    let split = wid.z;
    let base = (split * prm.k + g * kg + 4u * j0) * cols + 4u * b0 * rs + r0 * S + s0;
    for (var cc = 0u; cc < CB4; cc++) {
        for (var r = 0u; r < TR; r++) {
            let i0 = (4u * cc * TAPS + r * TS) * TK4;
            let o = Out(base + 4u * cc * rs + r * S, 4u * (b0 + cc), 4u * j0, rs, cols, cg, kg);
            put(i0, o);
            if (TS == 3u) {
                put(i0 + TK4, Out(o.at + 1u, o.c, o.k, rs, cols, cg, kg));
                put(i0 + 2u * TK4, Out(o.at + 2u, o.c, o.k, rs, cols, cg, kg));
            }
        }
    }
    // The invocation at input quad 0 and tap block 0 also writes the bias gradient of its
    // output channels.
    if (prm.has_bias != 0u && b0 == 0u && tb == 0u) {
        for (var j = 0u; j < TK4; j++) {
            for (var f = 0u; f < 4u; f++) {
                let kk = 4u * (j0 + j) + f;
                if (kk < kg) {
                    bpart[split * prm.k + g * kg + kk] = bacc[j][f];
                }
            }
        }
    }
}
