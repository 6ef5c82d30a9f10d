// global_pool_backward: dx[i, j] (+)= dy[i] / HW.
//   dy: [planes]   dx: [planes, HW]; accumulate = 0 never reads the old dx.
// Dispatch: gpu::step::grid over ceil(planes*HW / 256). Launcher: ops::global_pool::backward.
// Params (binding 0): common/global_pool_params.wgsl.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn global_pool_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.planes * prm.hw) {
        return;
    }
    dx[i] = select(0.0, dx[i], prm.accumulate != 0u) + dy[i / prm.hw] / f32(prm.hw);
}
