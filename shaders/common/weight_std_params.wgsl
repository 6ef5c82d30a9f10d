// The uniform parameters (binding 0) of every weight_std kernel, mirrored by ops::weight_std's Params:
// weight_std_backward, weight_std_forward.
struct Params {
    k: u32,
    fan_in: u32,
    eps: f32,
    form: u32,
    multiplier: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
