// sgd_update: SGD with momentum (Nesterov or heavy-ball) and coupled weight decay, PyTorch's form.
//   info: StepInfo (lr, this step's learning rate)   g: [len] (the gradient, after AGC)
//   w: [len] (updated in place)   buf: [len] (momentum, in place)
//   d = g + weight_decay * w;  buf = momentum * buf + d;  w -= lr * (nesterov ? d + momentum * buf : buf)
//   buf starts at 0, so the first step's buf is d, as PyTorch's clone.
// Dispatch: gpu::step::grid over ceil(len / 256). Launcher: ops::sgd::update.

struct Params {
    len: u32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> info: StepInfo;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size(256)
fn sgd_update(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    let wv = w[i];
    let d = g[i] + prm.weight_decay * wv;
    let b = prm.momentum * buf[i] + d;
    buf[i] = b;
    w[i] = wv - info.lr * select(b, d + prm.momentum * b, prm.nesterov != 0u);
}
