// sum_partials: the fixed-order aggregate pass of every two-pass reduction.
//   part: [parts, len]   out: [len]
//   out[i] (+)= scale * (part[0, i] + part[1, i] + ... + part[parts-1, i]), summed in that order.
//   With accumulate = 0 the old out is never read.
// Dispatch: gpu::step::grid over ceil(len / 64) workgroups of 64. Callers: ops::grouped_conv,
// ops::residual, ops::softmax_xent.

struct Params {
    len: u32,
    parts: u32,
    scale: f32,
    accumulate: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn sum_partials(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 64u + lane;
    if (i >= prm.len) {
        return;
    }
    var acc = 0.0;
    for (var z = 0u; z < prm.parts; z++) {
        acc += part[z * prm.len + i];
    }
    out[i] = select(0.0, out[i], prm.accumulate != 0u) + prm.scale * acc;
}
