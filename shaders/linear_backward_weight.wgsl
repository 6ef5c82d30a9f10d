// linear_backward_weight: dW = dy^T x and db = sum_n dy (both overwritten).
//   x: [N, I]   dy: [N, O]   dw: [O, I]   db: [O] (unwritten unless has_bias)
//   Column i = I of x is taken as all ones, so its lane computes the bias gradient.
//   The sum over n runs in order n = 0, 1, ... in one invocation (deterministic).
// Register tile: each invocation computes 16 rows (outputs) x 8 columns; per n, each dy value it
// loads (the same for every lane of a workgroup) feeds 8 multiply-adds and each x value 16.
// Dispatch: x = ceil((I + has_bias) / (8 * 64)), lanes over column tiles; y = ceil(O / 16).
// Launcher: ops::linear::backward_weight.
// Params (binding 0): common/linear_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;

const TO: u32 = 16u;   // outputs (rows of dW) per invocation
const TI: u32 = 8u;   // columns per invocation

@compute @workgroup_size(64)
fn linear_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c0 = gid.x * TI;
    let o0 = wid.y * TO;
    let cols = prm.i + prm.has_bias;
    if (c0 >= cols) {
        return;
    }
    var acc: array<f32, 128>;                   // [j * TI + c]: output o0 + j, column c0 + c
    for (var n = 0u; n < prm.n; n++) {
        var ds: array<f32, 16>;
        for (var j = 0u; j < TO; j++) {
            ds[j] = dy[n * prm.o + min(o0 + j, prm.o - 1u)];
        }
        for (var c = 0u; c < TI; c++) {
            let col = c0 + c;
            let is_bias = col == prm.i;
            let xv = select(x[n * prm.i + min(col, prm.i - 1u)], 1.0, is_bias);
            for (var j = 0u; j < TO; j++) {
                acc[j * TI + c] = fma(ds[j], xv, acc[j * TI + c]);
            }
        }
    }
    for (var j = 0u; j < TO; j++) {
        for (var c = 0u; c < TI; c++) {
            let o = o0 + j;
            let col = c0 + c;
            if (o < prm.o && col < cols) {
                if (col == prm.i) {
                    db[o] = acc[j * TI + c];
                } else {
                    dw[o * prm.i + col] = acc[j * TI + c];
                }
            }
        }
    }
}
