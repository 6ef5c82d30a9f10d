// weight_std_backward: gradients of weight_std_forward with respect to w and gain.
//   w: [K, F]   gain: [K]   stats: [K, 2] (mean, var from the forward)   dw_hat: [K, F]
//   dw: [K, F]   dgain: [K]            (both overwritten)
//   With u = w - mean, s = the forward's 1/std factor, A = gain*m, S1 = sum dw_hat, S2 = sum dw_hat*u:
//   dgain = m * s * S2
//   dw_i  = A * s * (dw_hat_i - S1/F - c * S2 * u_i / F)
//   c = 1/(var + eps) for timm's form; 1/var for DeepMind's where F*var > eps, else 0 (the floor
//   holds s constant). The mean's gradient is the -S1/F term; var's is the c term.
// Dispatch: one workgroup of 64 per unit, as the forward. Launcher: ops::weight_std::backward.

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
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dw_hat: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgain: array<f32>;

@compute @workgroup_size(64)
fn weight_std_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let unit = flat_group(wid, nwg);
    if (unit >= prm.k) {
        return;   // uniform across the workgroup
    }
    let f = prm.fan_in;
    let ff = f32(f);
    let base = unit * f;
    let mean = stats[2u * unit];
    let v = stats[2u * unit + 1u];
    var s: f32;
    var c: f32;
    if (prm.form == 0u) {
        s = 1.0 / (sqrt(v + prm.eps) * sqrt(ff));
        c = 1.0 / (v + prm.eps);
    } else {
        s = 1.0 / sqrt(max(ff * v, prm.eps));
        c = select(0.0, 1.0 / v, ff * v > prm.eps);
    }
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = lane; i < f; i += REDUCE_WG) {
        let g = dw_hat[base + i];
        acc += vec2<f32>(g, g * (w[base + i] - mean));
    }
    let sums = workgroup_sum2(acc, lane);
    let a = gain[unit] * prm.multiplier * s;
    let mean_g = sums.x / ff;
    let k2 = c * sums.y / ff;
    for (var i = lane; i < f; i += REDUCE_WG) {
        dw[base + i] = a * (dw_hat[base + i] - mean_g - k2 * (w[base + i] - mean));
    }
    if (lane == 0u) {
        dgain[unit] = prm.multiplier * s * sums.y;
    }
}
