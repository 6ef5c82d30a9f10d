// dropout_apply: y = x * mask * scale, with mask drawn from Philox; dropout and drop path.
//   x: [len]   y: [len]
//   Element e (index_base + i) uses mask unit m = info.pass_index * units + e / per_mask: per_mask = 1
//   is dropout, C*H*W is stochastic depth (one mask per sample); units = len / per_mask of the
//   whole tensor, so m counts units over the step's global batch, however it is split into
//   passes and ranks. mask = unit_float(philox((m, stream, info.step, 0), (seed_lo, seed_hi)).x)
//   < keep: a new mask every step. scale = 1/keep (inverted dropout, timm's drop path) or 1
//   (DeepMind's drop path). Both passes are this kernel: the backward applies the same mask to dy.
// Dispatch: gpu::step::grid over ceil(len / 256). Launcher: ops::dropout::apply.

struct Params {
    len: u32,
    per_mask: u32,
    index_base: u32,
    stream: u32,
    keep: f32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    units: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> info: StepInfo;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn dropout_apply(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + lane;
    if (i >= prm.len) {
        return;
    }
    let unit = info.pass_index * prm.units + (prm.index_base + i) / prm.per_mask;
    let bits = philox4x32_10(vec4<u32>(unit, prm.stream, info.step, 0u), vec2<u32>(prm.seed_lo, prm.seed_hi)).x;
    let kept = unit_float(bits) < prm.keep;
    y[i] = select(0.0, x[i] * prm.scale, kept);
}
