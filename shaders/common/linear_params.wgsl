// The uniform parameters (binding 0) of every linear kernel, mirrored by ops::linear's Params:
// linear_backward_input, linear_backward_weight, linear_forward.
struct Params {
    n: u32,
    i: u32,
    o: u32,
    has_bias: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
