// avg_pool_forward: 2x2 average pool, stride 2, ceil mode, padding not counted (timm's
// AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False); DeepMind's SAME avg_pool agrees).
//   x: [planes, H, W]   y: [planes, P, Q]   P = ceil(H/2), Q = ceil(W/2)   (planes = N*C)
//   y[i,p,q] = mean of the x[i, 2p+a, 2q+b], a, b in {0, 1}, that lie inside the image.
// Dispatch: gpu::step::grid over ceil(planes*P*Q / 256). Launcher: ops::avg_pool::forward.
// Params (binding 0): common/avg_pool_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn avg_pool_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    let pq = prm.p * prm.q;
    if (i >= prm.planes * pq) {
        return;
    }
    let plane = i / pq;
    let y0 = 2u * ((i % pq) / prm.q);
    let x0 = 2u * (i % prm.q);
    let y1 = min(y0 + 2u, prm.h);
    let x1 = min(x0 + 2u, prm.w);
    var sum = 0.0;
    for (var iy = y0; iy < y1; iy++) {
        for (var ix = x0; ix < x1; ix++) {
            sum += x[(plane * prm.h + iy) * prm.w + ix];
        }
    }
    y[i] = sum / f32((y1 - y0) * (x1 - x0));
}
