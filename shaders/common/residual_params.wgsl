// The uniform parameters (binding 0) of every residual kernel, mirrored by ops::residual's Params:
// residual_backward, residual_forward.
struct Params {
    len: u32,
    alpha: f32,
    has_gain: u32,
    part_base: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
