// avg_pool_backward: each input pixel belongs to exactly one window, so
//   dx[i,iy,ix] (+)= dy[i, iy/2, ix/2] / (pixels of that window inside the image)
//   dy: [planes, P, Q]   dx: [planes, H, W]; accumulate = 0 never reads the old dx.
// Dispatch: gpu::step::grid over ceil(planes*H*W / 256). Launcher: ops::avg_pool::backward.
// Params (binding 0): common/avg_pool_params.wgsl.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn avg_pool_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    let hw = prm.h * prm.w;
    if (i >= prm.planes * hw) {
        return;
    }
    let plane = i / hw;
    let oy = (i % hw) / prm.w / 2u;
    let ox = (i % prm.w) / 2u;
    let rows = min(2u * oy + 2u, prm.h) - 2u * oy;
    let cols = min(2u * ox + 2u, prm.w) - 2u * ox;
    let g = dy[(plane * prm.p + oy) * prm.q + ox] / f32(rows * cols);
    dx[i] = select(0.0, dx[i], prm.accumulate != 0u) + g;
}
