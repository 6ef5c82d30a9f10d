// grouped_conv_pack_weight: lays conv weights out for the register-tiled conv kernels.
//   w: [K, C/G, R, S] (OIHW)   packed: [G, A, R, S, B_pad], zero past B
//   forward (mode 0):        A = C/G, B = K/G: packed[g, c, r, s, k] = w[g*K/G + k, c, r, s]
//   backward_input (mode 1): A = K/G, B = C/G: packed[g, k, r, s, c] = w[g*K/G + k, c, r, s]
//   The innermost B (padded to a multiple of 4) lets the conv kernels read 4 channels as one vec4.
//   packed is binding 2, written with store_packed: a storage buffer or a texture
//   (common/packed_*_out.wgsl).
// Dispatch: gpu::step::grid over ceil(len / 256), one invocation per packed vec4 (len vec4s).
// Launcher: ops::grouped_conv (before each conv that reads weights).

struct Params {
    k: u32,
    cg: u32,
    groups: u32,
    rs: u32,
    b_pad: u32,
    mode: u32,
    len: u32,
    _pad0: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;

@compute @workgroup_size(256)
fn grouped_conv_pack_weight(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let v = flat_group(wid, nwg) * 256u + lane;
    if (v >= prm.len) {
        return;
    }
    let kg = prm.k / prm.groups;
    let a_len = select(prm.cg, kg, prm.mode == 1u);
    let b_len = select(kg, prm.cg, prm.mode == 1u);
    let o = 4u * v;                             // the vec4's first element; b_pad is a multiple of 4
    let rs = (o / prm.b_pad) % prm.rs;
    let a = (o / (prm.b_pad * prm.rs)) % a_len;
    let g = o / (prm.b_pad * prm.rs * a_len);
    var out = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let bb = o % prm.b_pad + e;
        let kk = select(bb, a, prm.mode == 1u);
        let c = select(a, bb, prm.mode == 1u);
        let ok = bb < b_len;
        out[e] = select(0.0, w[select(0u, ((g * kg + kk) * prm.cg + c) * prm.rs + rs, ok)], ok);
    }
    store_packed(v, out);
}
