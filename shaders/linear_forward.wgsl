// linear_forward: y = x W^T + b (the classifier head, SE's fc1 and fc2).
//   x: [N, I]   w: [O, I]   b: [O] (unread unless has_bias)   y: [N, O]
// Dispatch: x = ceil(O / 64) workgroups, lanes over outputs o; y = ceil(N / 4) blocks of 4 rows.
// Each weight loaded feeds 4 multiply-adds; x is broadcast. Launcher: ops::linear::forward.

struct Params {
    n: u32,
    i: u32,
    o: u32,
    has_bias: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const TN: u32 = 4u;

@compute @workgroup_size(64)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let o = gid.x;
    if (o >= prm.o) {
        return;
    }
    let n0 = wid.y * TN;
    let nn = min(TN, prm.n - n0);
    let bias = select(0.0, b[select(0u, o, prm.has_bias != 0u)], prm.has_bias != 0u);
    var row: array<u32, 4>;
    var acc: array<f32, 4>;
    for (var t = 0u; t < TN; t++) {
        row[t] = (n0 + min(t, nn - 1u)) * prm.i;
        acc[t] = bias;
    }
    for (var i = 0u; i < prm.i; i++) {
        let wv = w[o * prm.i + i];
        for (var t = 0u; t < TN; t++) {
            acc[t] = fma(x[row[t] + i], wv, acc[t]);
        }
    }
    for (var t = 0u; t < nn; t++) {
        y[(n0 + t) * prm.o + o] = acc[t];
    }
}
