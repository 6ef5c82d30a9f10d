// Workgroup sums in a fixed order (a tree over the workgroup's lanes), so results are bitwise
// reproducible. Callers must be in uniform control flow: every lane of the workgroup calls, none
// returned early. REDUCE_WG, the lanes of a reducing workgroup, is set per adapter by Step::new
// (Gpu::reduce_lanes: a power of two up to 64; 8 on CPU adapters, 64 on GPUs).

override REDUCE_WG: u32 = 64u;
var<workgroup> reduce_scratch: array<vec2<f32>, 64>;

// The sum of `v` over the workgroup's REDUCE_WG lanes, returned to every lane.
fn workgroup_sum2(v: vec2<f32>, lane: u32) -> vec2<f32> {
    reduce_scratch[lane] = v;
    workgroupBarrier();
    for (var half = REDUCE_WG / 2u; half > 0u; half = half / 2u) {
        if (lane < half) {
            reduce_scratch[lane] = reduce_scratch[lane] + reduce_scratch[lane + half];
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[0];
    workgroupBarrier();
    return total;
}

// The sum of a vec4's components, in a fixed order.
fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}
