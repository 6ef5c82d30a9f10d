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

// Kernels that pass over a unit twice (sums, then a pass that writes from them) may keep each
// lane's 4-element chunks of the unit in a private array of KEPT between the passes, and so read
// it once. KEEP, set per adapter by Step::new (Gpu::keeps_units), is 1 on CPU adapters, where
// private memory is the thread's stack and far cheaper than a storage load, and 0 on GPUs,
// where the arrays would spill to local memory, so there they compile away. Kept or loaded
// again, the values are the same.
override KEEP: u32 = 0u;
const KEPT: u32 = 48u;

// Whether a unit of `len` values is kept: KEEP, and at most KEPT chunks per lane (with 8 lanes,
// units of up to 1536 values: F0's largest). Uniform across the workgroup.
fn keeps_unit(len: u32) -> bool {
    return KEEP != 0u && len / 4u <= KEPT * REDUCE_WG;
}

// The sum of a vec4's components, in a fixed order.
fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}
