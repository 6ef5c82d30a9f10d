// The uniform parameters (binding 0) of every se_gate kernel, mirrored by ops::se_gate's Params:
// se_gate_backward, se_gate_forward.
struct Params {
    planes: u32,
    hw: u32,
    gain: f32,
    accumulate: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
