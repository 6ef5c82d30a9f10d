// The uniform parameters (binding 0) of every global_pool kernel, mirrored by ops::global_pool's Params:
// global_pool_backward, global_pool_forward.
struct Params {
    planes: u32,
    hw: u32,
    accumulate: u32,
    _pad0: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
