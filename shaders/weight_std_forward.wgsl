// weight_std_forward: scaled weight standardization, per output unit (row of w).
//   w: [K, F] (F = fan_in = C/G*R*S)   gain: [K]   w_hat: [K, F]   stats: [K, 2] = (mean, var)
//   mean_k = sum_i w[k,i] / F;  var_k = sum_i (w[k,i] - mean_k)^2 / F   (biased, two passes)
//   form 0 (timm):     w_hat = gain*m * (w - mean) / (sqrt(var + eps) * sqrt(F))
//   form 1 (DeepMind): w_hat = gain*m * (w - mean) / sqrt(max(F * var, eps))
//   m is `multiplier` (timm's gamma folded into the conv, else 1). stats are kept for the backward.
// Dispatch: one workgroup of 64 per unit (gpu::step::grid over K); the sums are workgroup trees.
// Launcher: ops::weight_std::forward.

struct Params {
    k: u32,
    fan_in: u32,
    eps: f32,
    form: u32,
    multiplier: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read_write> w_hat: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

// The standardizing factor 1/std of one unit with variance v (both forms).
fn ws_scale(v: f32) -> f32 {
    let f = f32(prm.fan_in);
    if (prm.form == 0u) {
        return 1.0 / (sqrt(v + prm.eps) * sqrt(f));
    }
    return 1.0 / sqrt(max(f * v, prm.eps));
}

@compute @workgroup_size(64)
fn weight_std_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let unit = flat_group(wid, nwg);
    if (unit >= prm.k) {
        return;   // uniform across the workgroup
    }
    let f = prm.fan_in;
    let base = unit * f;
    var s = 0.0;
    for (var i = lane; i < f; i += REDUCE_WG) {
        s += w[base + i];
    }
    let mean = workgroup_sum2(vec2<f32>(s, 0.0), lane).x / f32(f);
    var ss = 0.0;
    for (var i = lane; i < f; i += REDUCE_WG) {
        let d = w[base + i] - mean;
        ss += d * d;
    }
    let v = workgroup_sum2(vec2<f32>(ss, 0.0), lane).x / f32(f);
    let scale = gain[unit] * prm.multiplier * ws_scale(v);
    for (var i = lane; i < f; i += REDUCE_WG) {
        w_hat[base + i] = (w[base + i] - mean) * scale;
    }
    if (lane == 0u) {
        stats[2u * unit] = mean;
        stats[2u * unit + 1u] = v;
    }
}
