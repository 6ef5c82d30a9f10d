// scaled_act_backward: dx (+)= dy * gamma * act'(x), elementwise.
//   x: [len] (the forward's input)   dy: [len]   dx: [len]
//   With accumulate = 0 the old dx is never read; with 1 the gradient is added (fan-out).
// Dispatch: gpu::step::grid over ceil(len / 256) workgroups of 256. Launcher: ops::scaled_act::backward.
// Params (binding 0): common/scaled_act_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override ACT: u32 = 0u;   // the activation's code (common/activation.wgsl), fixed per pipeline

@compute @workgroup_size(256)
fn scaled_act_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    let g = activation_backward(ACT, x[i], dy[i] * prm.gamma);
    dx[i] = select(0.0, dx[i], prm.accumulate != 0u) + g;
}
