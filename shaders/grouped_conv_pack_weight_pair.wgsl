// grouped_conv_pack_weight_pair: both of grouped_conv_pack_weight's layouts of one conv's weights
// in one pass, for a training step, which needs both (the forward's and the input gradient's).
//   w: [K, C/G, R, S] (OIHW)
//   output-inner (store_output_inner): [G, C/G, R, S, KB] = w[g*K/G + k, c, r, s], KB = K/G padded
//   input-inner (store_input_inner):   [G, K/G, R, S, CB] = w[g*K/G + k, c, r, s], CB = C/G padded
// Each invocation reads one 4 x 4 block of (k, c) at one (g, r, s), each weight once, and writes
// the block's output-inner vec4s (its rows c < C/G) and input-inner vec4s (its rows k < K/G): half
// the loads of two separate packings. Blocks reach into the padding, which they fill with zeros.
// Dispatch: gpu::step::grid over ceil(blocks / 256), blocks = G * R*S * KB/4 * CB/4.
// Launcher: ops::grouped_conv::pack_weight_pair.

struct Params {
    k: u32,
    cg: u32,
    groups: u32,
    rs: u32,
    kb: u32,
    cb: u32,
    blocks: u32,
    _pad0: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;

@compute @workgroup_size(256)
fn grouped_conv_pack_weight_pair(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let v = flat_group(wid, nwg) * 256u + lane;
    if (v >= prm.blocks) {
        return;
    }
    let kg = prm.k / prm.groups;
    let kq = prm.kb / 4u;
    let cq = prm.cb / 4u;
    let kblk = v % kq;
    let cblk = (v / kq) % cq;
    let rs = (v / (kq * cq)) % prm.rs;
    let g = v / (kq * cq * prm.rs);
    var blk: array<vec4<f32>, 4>;              // [c - 4 cblk][k - 4 kblk]
    for (var e = 0u; e < 4u; e++) {
        for (var f = 0u; f < 4u; f++) {
            let k = 4u * kblk + f;
            let c = 4u * cblk + e;
            let ok = k < kg && c < prm.cg;
            blk[e][f] = select(0.0, w[select(0u, ((g * kg + k) * prm.cg + c) * prm.rs + rs, ok)], ok);
        }
    }
    for (var e = 0u; e < 4u; e++) {
        let c = 4u * cblk + e;
        if (c < prm.cg) {
            store_output_inner(((g * prm.cg + c) * prm.rs + rs) * kq + kblk, blk[e]);
        }
        let k = 4u * kblk + e;
        if (k < kg) {
            store_input_inner(((g * kg + k) * prm.rs + rs) * cq + cblk, vec4<f32>(blk[0][e], blk[1][e], blk[2][e], blk[3][e]));
        }
    }
}
