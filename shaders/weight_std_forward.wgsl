// weight_std_forward: scaled weight standardization, per output unit (row of w).
//   w: [K, F] (F = fan_in = C/G*R*S)   gain: [K]   w_hat: [K, F]   stats: [K, 2] = (mean - w[k,0], var)
//   mean_k = sum_i w[k,i] / F;  var_k = sum_i (w[k,i] - mean_k)^2 / F   (biased)
//   Both in one pass over the unit, as shifted sums: with K = w[k,0], S1 = sum (w - K) and
//   S2 = sum (w - K)^2, mean = K + S1/F and var = S2/F - (S1/F)^2. K is one of the unit's own
//   values, so S1/F is of the order of the spread and the subtraction loses little (a plain
//   sum of squares would lose everything to a mean far from zero). For the same reason the mean
//   is never formed in f32: w - mean is (w - K) - S1/F, which rounds to the spread, not to the
//   mean (near a mean of 4, mean itself rounds by 2.4e-7), and stats keep the offset S1/F.
//   form 0 (timm):     w_hat = gain*m * (w - mean) / (sqrt(var + eps) * sqrt(F))
//   form 1 (DeepMind): w_hat = gain*m * (w - mean) / sqrt(max(F * var, eps))
//   m is `multiplier` (timm's gamma folded into the conv, else 1). stats are kept for the backward.
// Dispatch: one workgroup of REDUCE_WG lanes per unit (gpu::step::grid over K); the sums are
// workgroup trees. Lane l reads the unit's 4-element chunks l, l + REDUCE_WG, ... (four
// neighbouring loads, which a CPU adapter serves for little more than one), then the elements past
// the last whole chunk one per lane. Launcher: ops::weight_std::forward.
// Params (binding 0): common/weight_std_params.wgsl.

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

fn w4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

@compute @workgroup_size(REDUCE_WG)
fn weight_std_forward(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let unit = flat_group(wid, nwg);
    if (unit >= prm.k) {
        return;   // uniform across the workgroup
    }
    let f = prm.fan_in;
    let base = unit * f;
    let end = base + f;
    let chunks_end = base + f / 4u * 4u;
    let shift = w[base];
    // Where the unit is kept (see keeps_unit), w's chunks wait here for the pass writing w_hat.
    let keep = keeps_unit(f);
    var kept: array<vec4<f32>, KEPT>;
    var j = 0u;   // this lane's chunk count
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    for (var i = base + 4u * lane; i < chunks_end; i += 4u * REDUCE_WG) {
        let wv = w4(i);
        let d = wv - shift;
        s1 += d;
        s2 += d * d;
        if (keep) {
            kept[j] = wv;
        }
        j++;
    }
    for (var i = chunks_end + lane; i < end; i += REDUCE_WG) {
        let d = w[i] - shift;
        s1.x += d;
        s2.x += d * d;
    }
    let sums = workgroup_sum2(vec2<f32>(hsum(s1), hsum(s2)), lane) / f32(f);
    let offset = sums.x;   // mean - shift
    let v = max(sums.y - sums.x * sums.x, 0.0);
    let scale = gain[unit] * prm.multiplier * ws_scale(v);
    j = 0u;
    for (var i = base + 4u * lane; i < chunks_end; i += 4u * REDUCE_WG) {
        var wv: vec4<f32>;
        if (keep) {
            wv = kept[j];
        } else {
            wv = w4(i);
        }
        j++;
        let o = ((wv - shift) - offset) * scale;
        w_hat[i] = o.x;
        w_hat[i + 1u] = o.y;
        w_hat[i + 2u] = o.z;
        w_hat[i + 3u] = o.w;
    }
    for (var i = chunks_end + lane; i < end; i += REDUCE_WG) {
        w_hat[i] = ((w[i] - shift) - offset) * scale;
    }
    if (lane == 0u) {
        stats[2u * unit] = offset;
        stats[2u * unit + 1u] = v;
    }
}
