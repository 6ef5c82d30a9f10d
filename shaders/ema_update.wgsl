// ema_update: the exponential moving average of the weights, evaluated in place of them.
//   info: StepInfo (ema_decay: this step's decay)   w: [len]   ema: [len] (updated in place)
//   ema = decay * ema + (1 - decay) * w
//   The trainer sets decay = min(decay_max, (1 + step) / (10 + step)) (TF1's warm-up, DeepMind's).
// Dispatch: gpu::step::grid over ceil(len / 256). Launcher: ops::ema::update.

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> info: StepInfo;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> ema: array<f32>;

@compute @workgroup_size(256)
fn ema_update(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    ema[i] = info.ema_decay * ema[i] + (1.0 - info.ema_decay) * w[i];
}
