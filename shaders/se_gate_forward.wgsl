// se_gate_forward: the squeeze-excite gate, y = gain * sigmoid(s) * r (gain = 2 in NFNets).
//   s: [planes] (excitation logits, one per (n, c))   r: [planes, HW]   y: [planes, HW]
// Dispatch: gpu::step::grid over ceil(planes*HW / 256). Launcher: ops::se_gate::forward.
// Params (binding 0): common/se_gate_params.wgsl.

@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn se_gate_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.planes * prm.hw) {
        return;
    }
    let gate = prm.gain / (1.0 + exp(-s[i / prm.hw]));
    y[i] = gate * r[i];
}
