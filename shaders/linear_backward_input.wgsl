// linear_backward_input: dx (+)= dy W.
//   dy: [N, O]   w: [O, I]   dx: [N, I]; accumulate = 0 never reads the old dx.
// Register tile: each invocation computes TN rows x 8 inputs; per o, each weight it loads feeds
// TN multiply-adds and each dy value 8. TN is 8 from batch 8 up, else 4 (as linear_forward). Each
// sum runs over o in order.
// Dispatch: x = ceil(I / (8 * 16)), lanes over input tiles (consecutive lanes read consecutive
// weights); y = ceil(N / TN) blocks of TN rows, dy broadcast. Launcher: ops::linear::backward_input.
// Params (binding 0): common/linear_params.wgsl.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override TN: u32 = 4u;      // rows of dy per invocation: 4 or 8
override EDGES: u32 = 1u;   // 0 when TN divides N and TI divides I: no store is guarded
const TI: u32 = 8u;         // inputs per invocation

@compute @workgroup_size(16)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = gid.x * TI;
    if (i0 >= prm.i) {
        return;
    }
    let n0 = wid.y * TN;
    let nn = min(TN, prm.n - n0);
    var row: array<u32, 8>;
    var col: array<u32, 8>;
    var acc: array<f32, 64>;                    // [t * TI + j]: row n0 + t, input i0 + j
    for (var t = 0u; t < TN; t++) {
        row[t] = (n0 + min(t, nn - 1u)) * prm.o;
    }
    for (var j = 0u; j < TI; j++) {
        col[j] = min(i0 + j, prm.i - 1u);
    }
    for (var o = 0u; o < prm.o; o++) {
        var ds: array<f32, 8>;
        for (var t = 0u; t < TN; t++) {
            ds[t] = dy[row[t] + o];
        }
        for (var j = 0u; j < TI; j++) {
            let wv = w[o * prm.i + col[j]];
            for (var t = 0u; t < TN; t++) {
                acc[t * TI + j] = fma(ds[t], wv, acc[t * TI + j]);
            }
        }
    }
    for (var t = 0u; t < TN; t++) {
        for (var j = 0u; j < TI; j++) {
            if (EDGES == 0u || (t < nn && i0 + j < prm.i)) {
                let e = (n0 + t) * prm.i + i0 + j;
                dx[e] = select(0.0, dx[e], prm.accumulate != 0u) + acc[t * TI + j];
            }
        }
    }
}
