// scaled_act_forward: y = gamma * act(x), elementwise (NFNet's gamma-scaled activations).
//   x: [len]   y: [len]   act: see common/activation.wgsl; gamma from ops::scaled_act.
// Dispatch: gpu::step::grid over ceil(len / 256) workgroups of 256. Launcher: ops::scaled_act::forward.
// Params (binding 0): common/scaled_act_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override ACT: u32 = 0u;   // the activation's code (common/activation.wgsl), fixed per pipeline

@compute @workgroup_size(256)
fn scaled_act_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    y[i] = prm.gamma * activation(ACT, x[i]);
}
