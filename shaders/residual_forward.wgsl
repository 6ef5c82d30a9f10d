// residual_forward: the NF-block output y = alpha * skip_gain * r + shortcut.
//   r: [len] (the residual branch)   shortcut: [len]   gain: [1] (the scalar skipinit_gain;
//   unread when has_gain = 0, timm's own flavour, where it is 1)   y: [len]
// Dispatch: gpu::step::grid over ceil(len / 256). Launcher: ops::residual::forward.
// Params (binding 0): common/residual_params.wgsl.

@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> shortcut: array<f32>;
@group(0) @binding(3) var<storage, read> gain: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn residual_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    let g = select(1.0, gain[0], prm.has_gain != 0u);
    y[i] = prm.alpha * g * r[i] + shortcut[i];
}
