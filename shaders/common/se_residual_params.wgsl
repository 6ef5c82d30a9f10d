// The uniform parameters (binding 0) of every se_residual kernel, mirrored by ops::se_residual's Params:
// se_residual_backward, se_residual_forward.
struct Params {
    planes: u32,
    hw: u32,
    se_gain: f32,
    alpha: f32,
    has_gain: u32,
    part_base: u32,
    accumulate: u32,
    _pad: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
