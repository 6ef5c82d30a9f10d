// grouped_conv_backward_bias: partial sums of the bias gradient, one partial per split of rows.
//   dy: [N, K, P, Q]   part: [splits, K]
//   part[split_base + z, k] = sum over the rows (n, p) of split z and all q of dy[n,k,p,q]
// Splits are those of grouped_conv_backward_weight; sum_partials adds them in a fixed order.
// Dispatch: x = ceil(K / 64), lanes over k; z = splits. Launcher: ops::grouped_conv::backward_weight.

struct Params {
    n: u32, c: u32, h: u32, w: u32,          // input N (of this batch chunk), C, H, W
    k: u32, p: u32, q: u32, groups: u32,     // output channels K, output P, Q; groups G
    pad_top: u32, pad_left: u32, has_bias: u32, accumulate: u32,
    w_stride: u32,                           // packed weight row length (a multiple of 4)
    blocks: u32,                             // pixel blocks per row (ceil(Q / TP)), or splits
    phase_y: u32, phase_x: u32,              // backward_input: the stride phase of this dispatch
    rows: u32, cols: u32,                    // backward_input: rows and pixels of the phase
    rows_per_split: u32, split_base: u32,    // backward_weight: the split of the N*P rows
    n_base: u32,                             // textured kernels: the chunk's first image
    _pad1: u32, _pad2: u32, _pad3: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
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
    part[(prm.split_base + wid.z) * prm.k + k] = acc;
}
