// The uniform parameters of every grouped_conv kernel (ops::grouped_conv's Params), binding 0.
struct Params {
    n: u32, c: u32, h: u32, w: u32,          // input N (of this batch chunk), C, H, W
    k: u32, p: u32, q: u32, groups: u32,     // output channels K, output P, Q; groups G
    pad_top: u32, pad_left: u32, has_bias: u32, accumulate: u32,
    w_stride: u32,                           // packed weight row length (a multiple of 4)
    blocks: u32,                             // pixel blocks per row (ceil(Q / TP)), or splits
    phase_y: u32, phase_x: u32,              // backward_input: the stride phase of this dispatch
    rows: u32, cols: u32,                    // backward_input: rows and pixels of the phase
    rows_per_split: u32,                     // backward_weight: rows (n, p) per split of the N*P
    n_base: u32,                             // textured kernels: the chunk's first image
    _pad0: u32, _pad1: u32, _pad2: u32, _pad3: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
