// The uniform parameters (binding 0) of every avg_pool kernel, mirrored by ops::avg_pool's Params:
// avg_pool_backward, avg_pool_forward.
struct Params {
    planes: u32, h: u32, w: u32, p: u32,
    q: u32, accumulate: u32, _pad0: u32, _pad1: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
