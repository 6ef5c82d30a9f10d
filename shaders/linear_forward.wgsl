// linear_forward: y = x W^T + b (the classifier head, SE's fc1 and fc2).
//   x: [N, I]   w: [O, I]   b: [O] (unread unless has_bias)   y: [N, O]
// Register tile: each invocation computes TN rows x TO = 16 outputs; per 4 values of i, each of
// the 16 weight chunks it loads feeds 4*TN multiply-adds and each of the TN input chunks 64
// (storage loads, not multiply-adds, are what costs on a software device). TN is 8 from batch 8
// up (each weight read once for 8 rows), else 4. Each sum runs over i in order, as the f64
// reference's, whole chunks of 4 first, then the last I % 4 one by one.
// Dispatch: x = ceil(O / (16 * 16)), lanes over output tiles; y = ceil(N / TN) blocks of TN rows.
// Launcher: ops::linear::forward.
// Params (binding 0): common/linear_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override TN: u32 = 4u;      // rows of x per invocation: 4 or 8
override EDGES: u32 = 1u;   // 0 when TN divides N and TO divides O: no store is guarded
const TO: u32 = 16u;        // outputs per invocation (ops::linear's FORWARD_OUTPUTS)

fn x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

fn w4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

@compute @workgroup_size(16)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let o0 = gid.x * TO;
    if (o0 >= prm.o) {
        return;
    }
    let n0 = wid.y * TN;
    let nn = min(TN, prm.n - n0);
    var row: array<u32, 8>;
    var wrow: array<u32, 16>;
    var acc: array<f32, 128>;                   // [t * TO + j]: row n0 + t, output o0 + j
    for (var j = 0u; j < TO; j++) {
        let o = min(o0 + j, prm.o - 1u);
        wrow[j] = o * prm.i;
        let bias = select(0.0, b[select(0u, o, prm.has_bias != 0u)], prm.has_bias != 0u);
        for (var t = 0u; t < TN; t++) {
            acc[t * TO + j] = bias;
        }
    }
    for (var t = 0u; t < TN; t++) {
        row[t] = (n0 + min(t, nn - 1u)) * prm.i;
    }
    let chunks_end = prm.i / 4u * 4u;
    for (var i = 0u; i < chunks_end; i += 4u) {
        var xs: array<vec4<f32>, 8>;
        for (var t = 0u; t < TN; t++) {
            xs[t] = x4(row[t] + i);
        }
        for (var j = 0u; j < TO; j++) {
            let wv = w4(wrow[j] + i);
            for (var t = 0u; t < TN; t++) {
                var a = acc[t * TO + j];
                a = fma(xs[t].x, wv.x, a);
                a = fma(xs[t].y, wv.y, a);
                a = fma(xs[t].z, wv.z, a);
                acc[t * TO + j] = fma(xs[t].w, wv.w, a);
            }
        }
    }
    for (var i = chunks_end; i < prm.i; i++) {
        for (var j = 0u; j < TO; j++) {
            let wv = w[wrow[j] + i];
            for (var t = 0u; t < TN; t++) {
                acc[t * TO + j] = fma(x[row[t] + i], wv, acc[t * TO + j]);
            }
        }
    }
    for (var t = 0u; t < TN; t++) {
        for (var j = 0u; j < TO; j++) {
            if (EDGES == 0u || (t < nn && o0 + j < prm.o)) {
                y[(n0 + t) * prm.o + o0 + j] = acc[t * TO + j];
            }
        }
    }
}
