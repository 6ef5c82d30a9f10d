// Prelude shared by every kernel (joined in front of the kernel's file by gpu::kernel).
// Dimension letters: N batch, C input channels, H W input height and width, K output channels,
// G groups, R S kernel height and width, P Q output height and width.

// The flat workgroup index of a 1-D launch folded into x and y (gpu::step::grid), so that no
// dimension exceeds 65535 workgroups.
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}
