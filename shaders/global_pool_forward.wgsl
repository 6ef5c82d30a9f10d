// global_pool_forward: the spatial mean of each plane (the head's pool, SE's squeeze).
//   x: [planes, HW]   y: [planes]   y[i] = sum_j x[i, j] / HW, summed in order j = 0, 1, ...
// Dispatch: gpu::step::grid over ceil(planes / 64), one invocation per plane.
// Launcher: ops::global_pool::forward.
// Params (binding 0): common/global_pool_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn global_pool_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 64u + lane;
    if (i >= prm.planes) {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < prm.hw; j++) {
        sum += x[i * prm.hw + j];
    }
    y[i] = sum / f32(prm.hw);
}
