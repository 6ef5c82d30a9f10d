// linear_forward: y = x W^T + b (the classifier head, SE's fc1 and fc2).
//   x: [N, I]   w: [O, I]   b: [O] (unread unless has_bias)   y: [N, O]
// Register tile: each invocation computes TN rows x 4 outputs; per i, each of the 4 weights it
// loads feeds TN multiply-adds and each of the TN inputs 4 (storage loads, not multiply-adds, are
// what costs on a software device). TN is 8 from batch 8 up (each weight read once for 8 rows),
// else 4. Each sum runs over i in order, as the f64 reference's.
// Dispatch: x = ceil(O / (4 * 16)), lanes over output tiles; y = ceil(N / TN) blocks of TN rows.
// Launcher: ops::linear::forward.
// Params (binding 0): common/linear_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override TN: u32 = 4u;   // rows of x per invocation: 4 or 8
const TO: u32 = 4u;   // outputs per invocation

@compute @workgroup_size(16)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let o0 = gid.x * TO;
    if (o0 >= prm.o) {
        return;
    }
    let n0 = wid.y * TN;
    let nn = min(TN, prm.n - n0);
    var row: array<u32, 8>;
    var wrow: array<u32, 4>;
    var acc: array<f32, 32>;                    // [t * TO + j]: row n0 + t, output o0 + j
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
    for (var i = 0u; i < prm.i; i++) {
        var xs: array<f32, 8>;
        for (var t = 0u; t < TN; t++) {
            xs[t] = x[row[t] + i];
        }
        for (var j = 0u; j < TO; j++) {
            let wv = w[wrow[j] + i];
            for (var t = 0u; t < TN; t++) {
                acc[t * TO + j] = fma(xs[t], wv, acc[t * TO + j]);
            }
        }
    }
    for (var t = 0u; t < TN; t++) {
        for (var j = 0u; j < TO; j++) {
            if (t < nn && o0 + j < prm.o) {
                y[(n0 + t) * prm.o + o0 + j] = acc[t * TO + j];
            }
        }
    }
}
