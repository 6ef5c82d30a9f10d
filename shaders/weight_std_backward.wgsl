// weight_std_backward: gradients of weight_std_forward with respect to w and gain.
//   w: [K, F]   gain: [K]   stats: [K, 2] (mean - w[k,0], var from the forward)   dw_hat: [K, F]
//   dw: [K, F]   dgain: [K]   dw_sq: [K]   (all overwritten)
//   With u = w - mean (formed as (w - w[k,0]) - stats.x, as the forward forms it), s = the
//   forward's 1/std factor, A = gain*m, S1 = sum dw_hat, S2 = sum dw_hat*u:
//   dgain = m * s * S2
//   dw_i  = A * s * (dw_hat_i - S1/F - c * S2 * u_i / F)
//   c = 1/(var + eps) for timm's form; 1/var for DeepMind's where F*var > eps, else 0 (the floor
//   holds s constant). The mean's gradient is the -S1/F term; var's is the c term.
//   dw_sq = sum dw_i^2 per unit: AGC's squared gradient norm, summed here where dw is in
//   registers, so that sgd_agc_update need not read dw a second time.
// Dispatch: one workgroup of REDUCE_WG lanes per unit, reading 4-element chunks, as the forward.
// Launcher: ops::weight_std::backward.
// Params (binding 0): common/weight_std_params.wgsl.

@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dw_hat: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgain: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw_sq: array<f32>;

fn w4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

fn dw_hat4(i: u32) -> vec4<f32> {
    return vec4<f32>(dw_hat[i], dw_hat[i + 1u], dw_hat[i + 2u], dw_hat[i + 3u]);
}

@compute @workgroup_size(REDUCE_WG)
fn weight_std_backward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let unit = flat_group(wid, nwg);
    if (unit >= prm.k) {
        return;   // uniform across the workgroup
    }
    let f = prm.fan_in;
    let ff = f32(f);
    let base = unit * f;
    let end = base + f;
    let chunks_end = base + f / 4u * 4u;
    let shift = w[base];
    let offset = stats[2u * unit];
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
    // Where the unit is kept (see keeps_unit), the chunks of dw_hat and of u = w - mean wait
    // here for the pass writing dw.
    let keep = keeps_unit(f);
    var kept_g: array<vec4<f32>, KEPT>;
    var kept_u: array<vec4<f32>, KEPT>;
    var j = 0u;   // this lane's chunk count
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    for (var i = base + 4u * lane; i < chunks_end; i += 4u * REDUCE_WG) {
        let g = dw_hat4(i);
        let u = (w4(i) - shift) - offset;
        s1 += g;
        s2 += g * u;
        if (keep) {
            kept_g[j] = g;
            kept_u[j] = u;
        }
        j++;
    }
    for (var i = chunks_end + lane; i < end; i += REDUCE_WG) {
        let g = dw_hat[i];
        s1.x += g;
        s2.x += g * ((w[i] - shift) - offset);
    }
    let sums = workgroup_sum2(vec2<f32>(hsum(s1), hsum(s2)), lane);
    let a = gain[unit] * prm.multiplier * s;
    let mean_g = sums.x / ff;
    let k2 = c * sums.y / ff;
    var sq = vec4<f32>(0.0);
    j = 0u;
    for (var i = base + 4u * lane; i < chunks_end; i += 4u * REDUCE_WG) {
        var g: vec4<f32>;
        var u: vec4<f32>;
        if (keep) {
            g = kept_g[j];
            u = kept_u[j];
        } else {
            g = dw_hat4(i);
            u = (w4(i) - shift) - offset;
        }
        let d = a * (g - mean_g - k2 * u);
        j++;
        dw[i] = d.x;
        dw[i + 1u] = d.y;
        dw[i + 2u] = d.z;
        dw[i + 3u] = d.w;
        sq += d * d;
    }
    for (var i = chunks_end + lane; i < end; i += REDUCE_WG) {
        let d = a * (dw_hat[i] - mean_g - k2 * ((w[i] - shift) - offset));
        dw[i] = d;
        sq.x += d * d;
    }
    let norm_sq = workgroup_sum2(vec2<f32>(hsum(sq), 0.0), lane).x;
    if (lane == 0u) {
        dgain[unit] = prm.multiplier * s * sums.y;
        dw_sq[unit] = norm_sq;
    }
}
