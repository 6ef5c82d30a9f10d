// The textured weight-gradient kernels' tile (grouped_conv_backward_weight_textured and its
// _subgroup variant): the part and bias-part bindings, the tile override constants, the
// accumulators and the adds and stores that start and end them.
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

// Stores the tile of split `split`, group g: input quads b0 .., output quads j0 .., taps from
// (r0, s0).
fn store_tile(split: u32, g: u32, b0: u32, j0: u32, r0: u32, s0: u32) {
    let kg = prm.k / prm.groups;
    let cg = prm.c / prm.groups;
    let rs = R * S;
    let cols = cg * rs;
    // The tile's first weight: output channel 4*j0, input channel 4*b0, tap (r0, s0).
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
}

// Stores the bias gradient bacc[j] of output quads j0 .. (those below K/G), if the conv has a
// bias.
fn store_bias(bacc: array<vec4<f32>, 4>, split: u32, g: u32, j0: u32) {
    let kg = prm.k / prm.groups;
    if (prm.has_bias == 0u) {
        return;
    }
    for (var j = 0u; j < TK4; j++) {
        for (var f = 0u; f < 4u; f++) {
            let kk = 4u * (j0 + j) + f;
            if (kk < kg) {
                bpart[split * prm.k + g * kg + kk] = bacc[j][f];
            }
        }
    }
}
