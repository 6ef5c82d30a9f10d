// The uniform parameters (binding 0) of every scaled_act kernel, mirrored by ops::scaled_act's Params:
// scaled_act_backward, scaled_act_forward.
struct Params {
    len: u32,
    gamma: f32,
    accumulate: u32,
    _pad: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
