// residual_backward: gradients of y = alpha * skip_gain * r + shortcut.
//   dy: [len]   r: [len]   gain: [1]   dr: [len]   part: [parts] (partial sums for dgain)
//   dr = alpha * g * dy (overwritten). The shortcut's gradient is dy itself: the caller uses dy.
//   part[part_base + wg] = sum of dy * r over the workgroup's 1024 elements (a workgroup tree),
//   then sum_partials(scale = alpha) gives dgain = alpha * sum(dy * r) in a fixed order.
// Dispatch: gpu::step::grid over ceil(len / 1024) workgroups of REDUCE_WG lanes, 1024 / REDUCE_WG
// elements per lane.
// Launcher: ops::residual::backward.
// Params (binding 0): common/residual_params.wgsl.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<f32>;
@group(0) @binding(3) var<storage, read> gain: array<f32>;
@group(0) @binding(4) var<storage, read_write> dr: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;

const PER_GROUP: u32 = 1024u;

@compute @workgroup_size(REDUCE_WG)
fn residual_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = flat_group(wid, nwg);
    let base = group * PER_GROUP;
    if (base >= prm.len) {
        return;   // uniform across the workgroup
    }
    let g = select(1.0, gain[0], prm.has_gain != 0u);
    var dot = 0.0;
    for (var j = 0u; j < PER_GROUP / REDUCE_WG; j++) {
        let i = base + j * REDUCE_WG + lane;
        if (i < prm.len) {
            let d = dy[i];
            dr[i] = prm.alpha * g * d;
            dot += d * r[i];
        }
    }
    let total = workgroup_sum2(vec2<f32>(dot, 0.0), lane).x;
    if (lane == 0u && prm.has_gain != 0u) {
        part[prm.part_base + group] = total;
    }
}
