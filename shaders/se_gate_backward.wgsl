// se_gate_backward: gradients of y = gain * sigmoid(s) * r.
//   s: [planes]   r: [planes, HW]   dy: [planes, HW]   dr: [planes, HW]   ds: [planes]
//   dr[i, j] (+)= dy[i, j] * gain * sigmoid(s[i])          (accumulate = 0 never reads old dr)
//   ds[i]     = gain * sigmoid(s[i]) * (1 - sigmoid(s[i])) * sum_j dy[i, j] * r[i, j]   (in order)
// Dispatch: gpu::step::grid over ceil(planes / 64), one invocation per plane.
// Launcher: ops::se_gate::backward.
// Params (binding 0): common/se_gate_params.wgsl.

@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dr: array<f32>;
@group(0) @binding(5) var<storage, read_write> ds: array<f32>;

@compute @workgroup_size(64)
fn se_gate_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 64u + lane;
    if (i >= prm.planes) {
        return;
    }
    let sg = 1.0 / (1.0 + exp(-s[i]));
    let gate = prm.gain * sg;
    var dot = 0.0;
    for (var j = 0u; j < prm.hw; j++) {
        let e = i * prm.hw + j;
        let g = dy[e];
        dot += g * r[e];
        dr[e] = select(0.0, dr[e], prm.accumulate != 0u) + g * gate;
    }
    ds[i] = gate * (1.0 - sg) * dot;
}
