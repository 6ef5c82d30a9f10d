// sgd_agc_update: DeepMind's SGD_AGC in one pass over a parameter: adaptive gradient clipping of
// the raw gradient, unit by unit (Brock et al. 2021, section 4), then sgd_update's coupled weight
// decay and momentum.
//   info: StepInfo (lr)   g: [units, len] (the raw gradient, read only)
//   w: [units, len] (updated in place)   buf: [units, len] (momentum, in place)
//   max_u = clip * max(|w_u|, eps);  f_u = max_u / max(|g_u|, 1e-6) where |g_u| >= max_u, else 1
//   d = f_u * g + weight_decay * w;  buf = momentum * buf + d;  w -= lr * (nesterov ? d + momentum * buf : buf)
//   |.| is the L2 norm over a unit (of w before the update), a workgroup tree in a fixed order,
//   or, with the pipeline constant NORMS = 1, given: |w|^2 = len * (var + mean^2) from
//   stats: [units, 2] (weight_std_forward's mean - w[u,0] and variance of w) and |g|^2 from g_sq:
//   [units] (weight_std_backward's); the kernel then reads w and g once. With NORMS = 2 every
//   unit is one element (a gain [K,1,1,1] clipped per channel): each lane takes one unit, its
//   norms |w_i| and |g_i| (the same values as a workgroup's sum of one square and zeros), and no
//   workgroup is spent on a unit of one element.
// Dispatch: one workgroup of REDUCE_WG lanes per unit (ops::chunked over units); lane l reads the
// unit's 4-element chunks l, l + REDUCE_WG, ..., then the elements past the last whole chunk one
// per lane (as weight_std_forward). NORMS = 2: one lane per unit. Launcher: ops::sgd::agc_update.

struct Params {
    units: u32,
    len: u32,
    clip: f32,
    eps: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    _pad: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> info: StepInfo;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;   // unread unless NORMS = 1
@group(0) @binding(6) var<storage, read> g_sq: array<f32>;    // unread unless NORMS = 1

override NORMS: u32 = 0u;

fn g4(i: u32) -> vec4<f32> {
    return vec4<f32>(g[i], g[i + 1u], g[i + 2u], g[i + 3u]);
}

fn w4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

fn buf4(i: u32) -> vec4<f32> {
    return vec4<f32>(buf[i], buf[i + 1u], buf[i + 2u], buf[i + 3u]);
}

// The update of 4 elements, w[i..i+4] = wv, from their clipped gradient `gc`: sgd_update's formula.
fn update4(i: u32, wv: vec4<f32>, gc: vec4<f32>) {
    let d = gc + prm.weight_decay * wv;
    let b = prm.momentum * buf4(i) + d;
    let w2 = wv - info.lr * select(b, d + prm.momentum * b, prm.nesterov != 0u);
    buf[i] = b.x;
    buf[i + 1u] = b.y;
    buf[i + 2u] = b.z;
    buf[i + 3u] = b.w;
    w[i] = w2.x;
    w[i + 1u] = w2.y;
    w[i + 2u] = w2.z;
    w[i + 3u] = w2.w;
}

// The update of element i from its clipped gradient `gc`: sgd_update's formula.
fn update1(i: u32, gc: f32) {
    let wv = w[i];
    let d = gc + prm.weight_decay * wv;
    let b = prm.momentum * buf[i] + d;
    buf[i] = b;
    w[i] = wv - info.lr * select(b, d + prm.momentum * b, prm.nesterov != 0u);
}

// AGC's factor for a unit with squared norms sums = (|w|^2, |g|^2).
fn clip_factor(sums: vec2<f32>) -> f32 {
    let max_norm = prm.clip * max(sqrt(sums.x), prm.eps);
    let g_norm = sqrt(sums.y);
    return select(max_norm / max(g_norm, 1e-6), 1.0, g_norm < max_norm);
}

@compute @workgroup_size(REDUCE_WG)
fn sgd_agc_update(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    if (NORMS == 2u) {
        let i = flat_group(wid, nwg) * REDUCE_WG + lane;
        if (i < prm.units) {
            let gv = g[i];
            update1(i, gv * clip_factor(vec2<f32>(w[i] * w[i], gv * gv)));
        }
        return;
    }
    let unit = flat_group(wid, nwg);
    if (unit >= prm.units) {
        return;   // uniform across the workgroup
    }
    let base = unit * prm.len;
    let end = base + prm.len;
    let chunks_end = base + prm.len / 4u * 4u;
    var sums: vec2<f32>;   // (|w|^2, |g|^2)
    // Summing the norms here (NORMS = 0) over a kept unit (see keeps_unit), the chunks of w and
    // g wait for the update.
    let keep = NORMS == 0u && keeps_unit(prm.len);
    var kept_w: array<vec4<f32>, KEPT>;
    var kept_g: array<vec4<f32>, KEPT>;
    var j = 0u;   // this lane's chunk count
    if (NORMS == 1u) {
        let mean = w[base] + stats[2u * unit];   // stats keep the mean as an offset from w[base]
        sums = vec2<f32>(f32(prm.len) * (stats[2u * unit + 1u] + mean * mean), g_sq[unit]);
        // Every lane has read w[base] before the lane that owns it updates it.
        storageBarrier();
    } else {
        var ww = vec4<f32>(0.0);
        var gg = vec4<f32>(0.0);
        for (var i = base + 4u * lane; i < chunks_end; i += 4u * REDUCE_WG) {
            let wv = w4(i);
            let gv = g4(i);
            ww += wv * wv;
            gg += gv * gv;
            if (keep) {
                kept_w[j] = wv;
                kept_g[j] = gv;
            }
            j++;
        }
        for (var i = chunks_end + lane; i < end; i += REDUCE_WG) {
            ww.x += w[i] * w[i];
            gg.x += g[i] * g[i];
        }
        sums = workgroup_sum2(vec2<f32>(hsum(ww), hsum(gg)), lane);
    }
    let factor = clip_factor(sums);
    // Every lane has read the whole unit's w (the barrier in workgroup_sum2) before any writes;
    // with NORMS = 1 each lane reads only the elements it writes.
    j = 0u;
    for (var i = base + 4u * lane; i < chunks_end; i += 4u * REDUCE_WG) {
        if (keep) {
            update4(i, kept_w[j], kept_g[j] * factor);
        } else {
            update4(i, w4(i), g4(i) * factor);
        }
        j++;
    }
    for (var i = chunks_end + lane; i < end; i += REDUCE_WG) {
        update1(i, g[i] * factor);
    }
}
