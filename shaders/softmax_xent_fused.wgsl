// softmax_xent_fused: softmax cross-entropy with label smoothing, loss and dlogits in one pass.
//   logits: [N, K]   labels: [N] (u32 class index), or with mixed = 1 [N, 3] (a, b, lambda's
//   f32 bits: MixUp/CutMix targets)   loss_rows: [N]   dlogits: [N, K]
//   q_k  = (1 - smoothing) * (lambda [k == a] + (1 - lambda) [k == b]) + smoothing / K
//   loss_rows[n] = logsumexp(z) - sum_k q_k z_k
//   dlogits[n,k] = (softmax(z)_k - q_k) * grad_scale      (grad_scale = 1/N for the batch mean)
//   A label >= K gives NaN (the host checks labels when they are uploaded).
// The mean loss is sum_partials(loss_rows, scale 1/N). Dispatch: gpu::step::grid over ceil(N / 64),
// one invocation per row. Launcher: ops::softmax_xent::forward_backward.

struct Params {
    n: u32,
    classes: u32,
    smoothing: f32,
    grad_scale: f32,
    mixed: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss_rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(64)
fn softmax_xent_fused(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wid, nwg) * 64u + lane;
    if (row >= prm.n) {
        return;
    }
    let k = prm.classes;
    let base = row * k;
    let mixed = prm.mixed != 0u;
    let label = labels[select(row, 3u * row, mixed)];
    let label_b = select(label, labels[select(0u, 3u * row + 1u, mixed)], mixed);
    let lam = select(1.0, bitcast<f32>(labels[select(0u, 3u * row + 2u, mixed)]), mixed);
    var m = logits[base];
    for (var j = 1u; j < k; j++) {
        m = max(m, logits[base + j]);
    }
    var se = 0.0;
    var sz = 0.0;
    for (var j = 0u; j < k; j++) {
        let z = logits[base + j];
        se += exp(z - m);
        sz += z;
    }
    let off = prm.smoothing / f32(k);
    let keep = 1.0 - prm.smoothing;
    let bad = label >= k || label_b >= k;
    let za = logits[base + select(label, 0u, bad)];
    let zb = logits[base + select(label_b, 0u, bad)];
    let lse = m + log(se);
    let loss = lse - keep * (lam * za + (1.0 - lam) * zb) - off * sz;
    // NaN from a runtime value: WGSL makes a NaN in a constant expression a shader-creation
    // error (Tint, in browsers, rejects `bitcast<f32>(0x7fc00000u)`; naga lets it through).
    var nan_bits = 0x7fc00000u;
    let nan = bitcast<f32>(nan_bits);
    loss_rows[row] = select(loss, nan, bad);
    for (var j = 0u; j < k; j++) {
        let q = off + keep * (select(0.0, lam, j == label) + select(0.0, 1.0 - lam, j == label_b));
        let d = (exp(logits[base + j] - m) / se - q) * prm.grad_scale;
        dlogits[base + j] = select(d, nan, bad);
    }
}
