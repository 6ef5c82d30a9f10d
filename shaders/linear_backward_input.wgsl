// linear_backward_input: dx (+)= dy W.
//   dy: [N, O]   w: [O, I]   dx: [N, I]; accumulate = 0 never reads the old dx.
// Dispatch: x = ceil(I / 64), lanes over inputs i (consecutive lanes read consecutive weights);
// y = ceil(N / 4) blocks of 4 rows, dy broadcast. Launcher: ops::linear::backward_input.

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
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const TN: u32 = 4u;

@compute @workgroup_size(64)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i = gid.x;
    if (i >= prm.i) {
        return;
    }
    let n0 = wid.y * TN;
    let nn = min(TN, prm.n - n0);
    var row: array<u32, 4>;
    var acc: array<f32, 4>;
    for (var t = 0u; t < TN; t++) {
        row[t] = (n0 + min(t, nn - 1u)) * prm.o;
        acc[t] = 0.0;
    }
    for (var o = 0u; o < prm.o; o++) {
        let wv = w[o * prm.i + i];
        for (var t = 0u; t < TN; t++) {
            acc[t] = fma(dy[row[t] + o], wv, acc[t]);
        }
    }
    for (var t = 0u; t < nn; t++) {
        let e = (n0 + t) * prm.i + i;
        dx[e] = select(0.0, dx[e], prm.accumulate != 0u) + acc[t];
    }
}
