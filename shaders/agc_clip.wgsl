// agc_clip: adaptive gradient clipping, unit-wise (Brock et al. 2021, section 4), in place.
//   w: [units, len]   g: [units, len] (the raw gradient, clipped in place)
//   For each unit u (an output channel of a conv, a row of a linear, or a whole small tensor):
//   max_u = clip * max(|w_u|, eps); if |g_u| >= max_u then g_u *= max_u / max(|g_u|, 1e-6).
//   |.| is the L2 norm over the unit, a workgroup tree in a fixed order.
// Dispatch: one workgroup of 64 per unit (gpu::step::grid over units). Launcher: ops::agc::clip.

struct Params {
    units: u32,
    len: u32,
    clip: f32,
    eps: f32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;

@compute @workgroup_size(64)
fn agc_clip(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let unit = flat_group(wid, nwg);
    if (unit >= prm.units) {
        return;   // uniform across the workgroup
    }
    let base = unit * prm.len;
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = lane; i < prm.len; i += REDUCE_WG) {
        let wv = w[base + i];
        let gv = g[base + i];
        acc += vec2<f32>(wv * wv, gv * gv);
    }
    let sums = workgroup_sum2(acc, lane);
    let max_norm = prm.clip * max(sqrt(sums.x), prm.eps);
    let g_norm = sqrt(sums.y);
    if (g_norm < max_norm) {
        return;
    }
    let factor = max_norm / max(g_norm, 1e-6);
    for (var i = lane; i < prm.len; i += REDUCE_WG) {
        g[base + i] = g[base + i] * factor;
    }
}
