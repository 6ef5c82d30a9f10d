// The forward conv kernels' output tile (grouped_conv_forward and its _textured and _subgroup
// variants): bias and output bindings, tile override constants, which outputs an invocation
// owns, the bias that starts its sums and the store that ends them.
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The invocation's accumulators, [t * TK4 + j]: outputs q0 + t, channels k0 + 4j .. A private
// variable rather than a function variable passed by pointer: for GL naga writes a pointer
// parameter as a GLSL `inout` array, copied in and out at every call, which llvmpipe's GL
// compiler takes minutes over in the unrolled tiles.
var<private> acc: array<vec4<f32>, 64>;

override R: u32 = 3u;
override S: u32 = 3u;       // 1 or 3
override SH: u32 = 1u;
override SW: u32 = 1u;
override TP: u32 = 6u;      // outputs per invocation along q, at most 8
override TK4: u32 = 4u;     // output channels per invocation / 4, at most 8; TP * TK4 <= 64
override SPAN: u32 = 8u;    // (TP - 1) * SW + S, at most 17
override EDGES: u32 = 1u;   // 0 when 4 * TK4 divides K/G

// The outputs of one invocation: TP pixels (n, op, q0 ..) x 4*TK4 channels (k0 ..) of group g.
struct OutTile {
    valid: bool,
    g: u32, kg: u32, cg: u32,
    n: u32, op: u32, q0: u32, k0: u32,
}

// Lanes run over (pixel tile, channel tile) so that small maps still fill the workgroups;
// neighbouring lanes take neighbouring pixels of the same channel tile. Each channel tile gets
// the pixel tiles rounded up to a multiple of `align` lanes (1, or the workgroup for the
// subgroup kernel, so that no subgroup spans two channel tiles); the lanes past the pixel tiles
// are not valid and compute the last one again, those past the channel tiles the first.
fn out_tile(gid: vec3<u32>, wid: vec3<u32>, align: u32) -> OutTile {
    var o: OutTile;
    o.kg = prm.k / prm.groups;
    o.cg = prm.c / prm.groups;
    let kblocks = (o.kg + 4u * TK4 - 1u) / (4u * TK4);
    let items = prm.n * prm.p * prm.blocks;
    let lanes = (items + align - 1u) / align * align;   // per channel tile
    let slot = gid.x % lanes;
    let tiles_ok = gid.x < lanes * kblocks;
    o.valid = tiles_ok && slot < items;
    o.g = wid.y;
    let item = min(slot, items - 1u);
    o.k0 = select(0u, (gid.x / lanes) * 4u * TK4, tiles_ok);   // first output channel, within the group
    o.n = item / (prm.p * prm.blocks);
    o.op = (item / prm.blocks) % prm.p;
    o.q0 = (item % prm.blocks) * TP;
    return o;
}

// acc[t * TK4 + j] = the bias of channels k0 + 4j .. (zero without one).
fn init_bias(o: OutTile) {
    for (var j = 0u; j < TK4; j++) {
        var bv = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e++) {
            let kk = o.k0 + 4u * j + e;
            let ok = prm.has_bias != 0u && kk < o.kg;
            bv[e] = select(0.0, b[select(0u, o.g * o.kg + kk, ok)], ok);
        }
        for (var t = 0u; t < TP; t++) {
            acc[t * TK4 + j] = bv;
        }
    }
}

// Writes the tile's outputs that exist (q < Q, channel < K/G). Only the pixel is checked at run
// time: with EDGES = 0 the channel tile divides K/G, no store is guarded and the loops unroll
// completely, which keeps acc in registers (llvmpipe left guarded loops rolled and acc in
// memory, at half the speed).
fn store_outputs(o: OutTile) {
    let pq = prm.p * prm.q;
    let first = ((o.n * prm.k + o.g * o.kg + o.k0) * prm.p + o.op) * prm.q + o.q0;
    for (var t = 0u; t < TP; t++) {
        if (o.q0 + t < prm.q) {
            for (var j = 0u; j < TK4; j++) {
                let a = acc[t * TK4 + j];
                let i = first + 4u * j * pq + t;
                let kk = o.k0 + 4u * j;
                if (EDGES == 0u || kk < o.kg) { y[i] = a.x; }
                if (EDGES == 0u || kk + 1u < o.kg) { y[i + pq] = a.y; }
                if (EDGES == 0u || kk + 2u < o.kg) { y[i + 2u * pq] = a.z; }
                if (EDGES == 0u || kk + 3u < o.kg) { y[i + 3u * pq] = a.w; }
            }
        }
    }
}
