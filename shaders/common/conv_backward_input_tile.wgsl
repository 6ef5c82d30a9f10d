// The input-gradient conv kernels' output tile (grouped_conv_backward_input and its _textured
// and _subgroup variants): the dx binding, the phase and tile override constants, which pixels an invocation
// owns, and the store that ends its sums.
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// The invocation's accumulators, [t * TC4 + j] (zero at the start). Private, not passed by
// pointer: see conv_forward_tile.
var<private> acc: array<vec4<f32>, 64>;

override R: u32 = 3u;
override S: u32 = 3u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override R0: u32 = 0u;      // first row tap of this phase
override NR: u32 = 3u;      // row taps of this phase
override S0: u32 = 0u;      // first column tap of this phase
override NS: u32 = 3u;      // column taps of this phase: 0 to 3
override TP: u32 = 6u;      // pixels per invocation, at most 8
override TC4: u32 = 4u;     // input channels per invocation / 4, at most 8; TP * TC4 <= 64
override SPAN: u32 = 8u;    // TP + NS - 1, at most 10
override EDGES: u32 = 1u;   // 0 when 4 * TC4 divides C/G

// The pixels of one invocation: TP pixels of row iy of the phase (ix = phase_x + SW*(q0 + t))
// x 4*TC4 input channels (c0 ..) of group g, and the dy column qbase of tap NS-1 for its first
// pixel (tap i reads qbase + t + NS - 1 - i).
struct InTile {
    valid: bool,
    g: u32, kg: u32, cg: u32,
    n: u32, iy: u32, q0: u32, c0: u32,
    qbase: i32,
}

// Lanes run over (pixel tile, channel tile), as in the forward's out_tile (`align` as there).
fn in_tile(gid: vec3<u32>, wid: vec3<u32>, align: u32) -> InTile {
    var o: InTile;
    o.kg = prm.k / prm.groups;
    o.cg = prm.c / prm.groups;
    let cblocks = (o.cg + 4u * TC4 - 1u) / (4u * TC4);
    let items = prm.n * prm.rows * prm.blocks;
    let lanes = (items + align - 1u) / align * align;   // per channel tile
    let slot = gid.x % lanes;
    let tiles_ok = gid.x < lanes * cblocks;
    o.valid = tiles_ok && slot < items;
    o.g = wid.y;
    let item = min(slot, items - 1u);
    o.c0 = select(0u, (gid.x / lanes) * 4u * TC4, tiles_ok);   // first input channel, within the group
    o.n = item / (prm.rows * prm.blocks);
    o.iy = prm.phase_y + SH * ((item / prm.blocks) % prm.rows);
    o.q0 = (item % prm.blocks) * TP;            // first pixel of the tile, in phase columns
    let s_last = S0 + (max(NS, 1u) - 1u) * SW;
    o.qbase = (i32(prm.phase_x + prm.pad_left) - i32(s_last)) / i32(SW) + i32(o.q0);
    return o;
}

// Writes (or with accumulate adds) the tile's gradients that exist (pixel < cols, channel < C/G);
// only the pixel is checked at run time when EDGES = 0, as in conv_forward_tile's store_outputs.
fn store_dx(o: InTile) {
    let hw = prm.h * prm.w;
    let first = ((o.n * prm.c + o.g * o.cg + o.c0) * prm.h + o.iy) * prm.w + prm.phase_x + SW * o.q0;
    for (var t = 0u; t < TP; t++) {
        if (o.q0 + t < prm.cols) {
            for (var j = 0u; j < TC4; j++) {
                let a = acc[t * TC4 + j];
                let i = first + 4u * j * hw + SW * t;
                let c = o.c0 + 4u * j;
                if (EDGES == 0u || c < o.cg) { dx[i] = add_to(i, a.x); }
                if (EDGES == 0u || c + 1u < o.cg) { dx[i + hw] = add_to(i + hw, a.y); }
                if (EDGES == 0u || c + 2u < o.cg) { dx[i + 2u * hw] = add_to(i + 2u * hw, a.z); }
                if (EDGES == 0u || c + 3u < o.cg) { dx[i + 3u * hw] = add_to(i + 3u * hw, a.w); }
            }
        }
    }
}

// v, or with accumulate dx[i] + v.
fn add_to(i: u32, v: f32) -> f32 {
    return select(0.0, dx[i], prm.accumulate != 0u) + v;
}
