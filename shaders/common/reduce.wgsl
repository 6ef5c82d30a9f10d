// Workgroup sums in a fixed order (a tree over 64 lanes), so results are bitwise reproducible.
// Callers must be in uniform control flow: every lane of the workgroup calls, none returned early.

const REDUCE_WG: u32 = 64u;
var<workgroup> reduce_scratch: array<vec2<f32>, 64>;

// The sum of `v` over the workgroup's 64 lanes, returned to every lane.
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
