// grouped_conv_backward_bias: partial sums of the bias gradient, one partial per split of rows.
//   dy: [N, K, P, Q]   part: [splits, K]
//   part[z, k] = sum over the rows (n, p) of split z and all q of dy[n,k,p,q]
// Splits are those of grouped_conv_backward_weight; sum_partials adds them in a fixed order.
// Dispatch: x = ceil(K / 64), lanes over k; z = splits. Launcher: ops::grouped_conv::backward_weight.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;

@compute @workgroup_size(64)
fn grouped_conv_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k = gid.x;
    if (k >= prm.k) {
        return;
    }
    let pq = prm.p * prm.q;
    let row0 = wid.z * prm.rows_per_split;
    let row1 = min(row0 + prm.rows_per_split, prm.n * prm.p);
    var acc = 0.0;
    for (var row = row0; row < row1; row++) {
        let base = ((row / prm.p) * prm.k + k) * pq + (row % prm.p) * prm.q;
        for (var q = 0u; q < prm.q; q++) {
            acc += dy[base + q];
        }
    }
    part[wid.z * prm.k + k] = acc;
}
