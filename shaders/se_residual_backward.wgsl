// se_residual_backward: gradients of y = alpha * skip_gain * se_gain * sigmoid(s) * r + shortcut
// (se_residual_forward), se_gate_backward and residual_backward in one pass over dy.
//   dy: [planes, HW]   s: [planes]   r: [planes, HW]   gain: [1] (unread when has_gain = 0)
//   dr: [planes, HW]   ds: [planes]   part: [parts] (partial sums for dgain)
//   With gate = se_gain * sigmoid(s), a = alpha * skip_gain and dot = sum_hw dy * r (in a fixed
//   order, a workgroup tree):
//   dr (+)= (a * dy) * gate            (accumulate = 0 never reads the old dr)
//   ds     = gate * (1 - sigmoid(s)) * (a * dot)
//   part[part_base + plane] = gate * dot; sum_partials(scale = alpha) gives
//   dgain = alpha * sum(dy * gate * r). The shortcut's gradient is dy itself: the caller uses dy.
// Dispatch: one workgroup of REDUCE_WG lanes per plane (ops::chunked over planes).
// Launcher: ops::se_residual::backward.
// Params (binding 0): common/se_residual_params.wgsl.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read> r: array<f32>;
@group(0) @binding(4) var<storage, read> gain: array<f32>;
@group(0) @binding(5) var<storage, read_write> dr: array<f32>;
@group(0) @binding(6) var<storage, read_write> ds: array<f32>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;

@compute @workgroup_size(REDUCE_WG)
fn se_residual_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let plane = flat_group(wid, nwg);
    if (plane >= prm.planes) {
        return;   // uniform across the workgroup
    }
    let sg = 1.0 / (1.0 + exp(-s[plane]));
    let gate = prm.se_gain * sg;
    let a = prm.alpha * select(1.0, gain[0], prm.has_gain != 0u);
    let base = plane * prm.hw;
    var dot = 0.0;
    for (var i = base + lane; i < base + prm.hw; i += REDUCE_WG) {
        let d = dy[i];
        dot += d * r[i];
        dr[i] = select(0.0, dr[i], prm.accumulate != 0u) + (a * d) * gate;
    }
    let total = workgroup_sum2(vec2<f32>(dot, 0.0), lane).x;
    if (lane == 0u) {
        ds[plane] = gate * (1.0 - sg) * (a * total);
        if (prm.has_gain != 0u) {
            part[prm.part_base + plane] = gate * total;
        }
    }
}
