// linear_backward_weight: dW = dy^T x and db = sum_n dy (both overwritten).
//   x: [N, I]   dy: [N, O]   dw: [O, I]   db: [O] (unwritten unless has_bias)
//   Column i = I of x is taken as all ones, so its lane computes the bias gradient.
//   The sum over n runs in order n = 0, 1, ... in one invocation (deterministic).
// Dispatch: x = ceil((I + has_bias) / 64), lanes over columns; y = O, one output row per
// workgroup row, dy broadcast. Launcher: ops::linear::backward_weight.

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
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn linear_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let col = gid.x;
    let o = wid.y;
    if (col >= prm.i + prm.has_bias) {
        return;
    }
    let is_bias = col == prm.i;
    var acc = 0.0;
    for (var n = 0u; n < prm.n; n++) {
        let xv = select(x[select(n * prm.i + col, 0u, is_bias)], 1.0, is_bias);
        acc = fma(dy[n * prm.o + o], xv, acc);
    }
    if (is_bias) {
        db[o] = acc;
    } else {
        dw[o * prm.i + col] = acc;
    }
}
