// grad_accumulate: sums the gradients of the micro-batches of one optimizer step.
//   info: StepInfo (micro: the micro-batch, 0 first)   g: [len] (this micro-batch's gradient)
//   acc: [len]   acc = (micro == 0 ? 0 : acc) + scale * g   (scale = 1/micro-batches: the mean)
//   The first micro-batch never reads the old acc, so no zeroing pass is needed.
// Dispatch: gpu::step::grid over ceil(len / 256). Launcher: ops::grad_accumulate::accumulate.

struct Params {
    len: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> info: StepInfo;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(256)
fn grad_accumulate(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    acc[i] = select(acc[i], 0.0, info.micro == 0u) + prm.scale * g[i];
}
