// se_residual_forward: the end of an NF block with squeeze-excite, se_gate_forward and
// residual_forward in one pass (the gated branch never goes to memory):
//   s: [planes] (excitation logits, one per (n, c))   r: [planes, HW] (the residual branch)
//   shortcut: [planes, HW]   gain: [1] (skipinit_gain; unread when has_gain = 0)   y: [planes, HW]
//   y = alpha * skip_gain * (se_gain * sigmoid(s) * r) + shortcut   (the two kernels' roundings)
// Dispatch: gpu::step::grid over ceil(planes*HW / 256). Launcher: ops::se_residual::forward.
// Params (binding 0): common/se_residual_params.wgsl.

@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<f32>;
@group(0) @binding(3) var<storage, read> shortcut: array<f32>;
@group(0) @binding(4) var<storage, read> gain: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn se_residual_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.planes * prm.hw) {
        return;
    }
    let gate = prm.se_gain / (1.0 + exp(-s[i / prm.hw]));
    let g = select(1.0, gain[0], prm.has_gain != 0u);
    y[i] = prm.alpha * g * (gate * r[i]) + shortcut[i];
}
