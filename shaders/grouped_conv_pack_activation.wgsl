// grouped_conv_pack_activation: lays an activation (a conv's x, or its dy) out as 4-channel texels
// for the textured conv kernels.
//   x: [N, C, H, W] (this dispatch's batch chunk)
//   packed: rgba32float texture 4096 texels wide (gpu::TEXTURE_WIDTH), texels [N, G, CQ, H, W]
//   with CQ = ceil((C/G) / 4): texel ((n*G + g)*CQ + b)*H*W + y*W + x holds channels
//   g*C/G + 4b .. 4b+3 of pixel (n, y, x), zero past the group's C/G channels.
//   Prologues (pipeline constants, so that the plain packing carries no trace of them):
//   ACT != 0: the texels hold gamma * activation(x) (code ACT - 1, as scaled_act_forward
//     computes it): x is an activation's input, the conv's input its output.
//   ACT_GRAD != 0: the texels hold x * gamma * activation'(act_x) (code ACT_GRAD - 1, as
//     scaled_act_backward computes it): x is the gradient of an activation's output, act_x
//     ([N, C, H, W] like x) that activation's input, the conv's dy the gradient of its input.
//   Either way the activation's own pass and its output in memory are spared.
// One texel fetch then gives a conv kernel 4 channels of one pixel: on a software rasterizer
// (lavapipe) that costs a fraction of one bounds-checked storage-buffer load per float.
// Dispatch: gpu::step::grid over ceil(texels / 256), one invocation per texel of the chunk.
// Launcher: ops::grouped_conv::pack_activation.

struct Params {
    c: u32,                                  // channels C
    groups: u32,                             // groups G
    hw: u32,                                 // H * W
    texels: u32,                             // texels of this chunk
    texel_base: u32,                         // the chunk's first texel in the texture
    gamma: f32,                              // the prologue activation's gamma
    _pad0: u32, _pad1: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(3) var<storage, read> act_x: array<f32>;   // x itself unless ACT_GRAD != 0

override ACT: u32 = 0u;                      // 0, or the forward prologue's activation code + 1
override ACT_GRAD: u32 = 0u;                 // 0, or the backward prologue's activation code + 1

@compute @workgroup_size(256)
fn grouped_conv_pack_activation(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_group(wid, nwg) * 256u + lane;
    if (t >= prm.texels) {
        return;
    }
    let cg = prm.c / prm.groups;
    let cq = (cg + 3u) / 4u;
    let pix = t % prm.hw;
    let b = (t / prm.hw) % cq;
    let ng = t / (prm.hw * cq);                 // n * G + g, n within the chunk
    let g = ng % prm.groups;
    let n = ng / prm.groups;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let c = 4u * b + e;
        let ok = c < cg;
        let i = select(0u, (n * prm.c + g * cg + c) * prm.hw + pix, ok);
        let xv = x[i];
        if (ok) {
            v[e] = xv;
            if (ACT != 0u) {
                v[e] = prm.gamma * activation(max(ACT, 1u) - 1u, xv);
            }
            if (ACT_GRAD != 0u) {
                v[e] = activation_backward(max(ACT_GRAD, 1u) - 1u, act_x[i], xv * prm.gamma);
            }
        }
    }
    let i = prm.texel_base + t;
    textureStore(packed, vec2<u32>(i % 4096u, i / 4096u), v);
}
