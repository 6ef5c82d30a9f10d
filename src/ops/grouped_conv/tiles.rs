//! Register tiles: how much of its pass one invocation computes. Each pass has a default tile
//! (what runs untuned) and a few candidates the tuner may time; [`tiles`] lists them, the
//! default first.

use super::{row_tile, Conv2d, Packing, Storage};
#[cfg(doc)]
use crate::gpu::Gpu;
use crate::gpu::Kernel;

/// The three passes of a conv.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

impl Pass {
    /// The kernel that runs the pass on operands in `storage`.
    pub fn kernel(self, storage: Storage) -> Kernel {
        match (self, storage) {
            (Pass::Forward, Storage::Buffer) => Kernel::GroupedConvForward,
            (Pass::Forward, Storage::Texture) => Kernel::GroupedConvForwardTextured,
            (Pass::BackwardInput, Storage::Buffer) => Kernel::GroupedConvBackwardInput,
            (Pass::BackwardInput, Storage::Texture) => Kernel::GroupedConvBackwardInputTextured,
            (Pass::BackwardWeight, Storage::Buffer) => Kernel::GroupedConvBackwardWeight,
            (Pass::BackwardWeight, Storage::Texture) => Kernel::GroupedConvBackwardWeightTextured,
        }
    }

    /// The kernel that runs the pass with `tile` on operands in `storage`: [`Pass::kernel`], or
    /// for a tile that shares its loads the pass's `_subgroup` or `_workgroup` kernel.
    pub fn tile_kernel(self, storage: Storage, tile: Tile) -> Kernel {
        match (self, tile.share) {
            (Pass::Forward, Share::Subgroup) => Kernel::GroupedConvForwardSubgroup,
            (Pass::BackwardInput, Share::Subgroup) => Kernel::GroupedConvBackwardInputSubgroup,
            (Pass::BackwardWeight, Share::Subgroup) => Kernel::GroupedConvBackwardWeightSubgroup,
            (Pass::Forward, Share::Workgroup) => Kernel::GroupedConvForwardWorkgroup,
            (Pass::BackwardInput, Share::Workgroup) => Kernel::GroupedConvBackwardInputWorkgroup,
            (Pass::BackwardWeight, Share::Workgroup) => Kernel::GroupedConvBackwardWeightWorkgroup,
            _ => self.kernel(storage),
        }
    }
}

/// Which loads the invocations of a tile share, and so which kernel runs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Share {
    /// None: each lane loads all it reads (the buffer and `_textured` kernels).
    #[default]
    Lane,
    /// The weights (the weight gradient: dy), across the subgroup (`_subgroup` kernels: 1x1,
    /// on texels, on adapters where [`Gpu::shares_subgroups`]).
    Subgroup,
    /// Operand tiles staged in workgroup memory (`_workgroup` kernels, on storage buffers): the
    /// forward's and input gradient's weights, the weight gradient's x and dy. Shaped for GPUs,
    /// where a workgroup's lanes share a fast on-chip memory; they run on any adapter.
    Workgroup,
}

/// A register tile of a conv kernel (its override constants): `pixels` outputs along a row
/// (forward `TP`; the input gradient picks its own per phase, at most `pixels` when nonzero;
/// the textured weight gradient reads it as kernel taps per invocation, `TAPS`), `channels4`
/// vec4s of the channels an invocation produces (forward and weight gradient `TK4`, input
/// gradient `TC4`), `inputs` input channels per invocation (weight gradient `CB`, or `4*CB4`
/// textured). `share` selects the kernels that share loads across invocations ([`Share`]). Tiles
/// change only which invocation computes which outputs, never the order of any sum, so every
/// tile gives bitwise the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub pixels: usize,
    pub channels4: usize,
    pub inputs: usize,
    pub share: Share,
}

impl Tile {
    /// A tile of the kernels that each lane runs alone.
    pub fn new(pixels: usize, channels4: usize, inputs: usize) -> Tile {
        Tile {
            pixels,
            channels4,
            inputs,
            share: Share::Lane,
        }
    }

    /// The same tile run by the kernel that shares `share`.
    pub fn shared(self, share: Share) -> Tile {
        Tile { share, ..self }
    }
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pixels={} channels4={} inputs={}", self.pixels, self.channels4, self.inputs)?;
        match self.share {
            Share::Lane => {}
            Share::Subgroup => write!(f, " subgroup")?,
            Share::Workgroup => write!(f, " workgroup")?,
        }
        Ok(())
    }
}

impl std::str::FromStr for Tile {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Tile, ()> {
        let mut words = s.split_whitespace();
        let mut v = words
            .by_ref()
            .take(3)
            .map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok()));
        let (pixels, channels4, inputs) = match (v.next().flatten(), v.next().flatten(), v.next().flatten()) {
            (Some(p), Some(c), Some(i)) => (p, c, i),
            _ => return Err(()),
        };
        let share = match (words.next(), words.next()) {
            (None, None) => Share::Lane,
            (Some("subgroup"), None) => Share::Subgroup,
            (Some("workgroup"), None) => Share::Workgroup,
            _ => return Err(()),
        };
        Ok(Tile::new(pixels, channels4, inputs).shared(share))
    }
}

/// The tiles of `pass` at `spec` on operands in `storage`, the default first.
pub fn tiles(pass: Pass, spec: &Conv2d, storage: Storage) -> Vec<Tile> {
    let textured = storage == Storage::Texture;
    match pass {
        Pass::Forward => forward(spec, textured),
        Pass::BackwardInput => backward_input(spec, textured),
        Pass::BackwardWeight => backward_weight(spec, textured),
    }
}

/// The override constants of each dispatch of `pass` at `spec` with `tile` on operands in
/// `storage`, as its launcher sets them: one set, or one per stride phase for the input
/// gradient. With [`tiles`] it lists every specialisation of the conv kernels (the shader
/// translation test, `tests/translate.rs`, compiles each one).
pub fn overrides(pass: Pass, spec: &Conv2d, storage: Storage, tile: Tile) -> Vec<Vec<(&'static str, f64)>> {
    match pass {
        Pass::Forward => vec![super::forward::overrides(spec, tile)],
        Pass::BackwardInput => super::backward_input::phases(spec, tile)
            .iter()
            .map(|p| p.overrides.to_vec())
            .collect(),
        Pass::BackwardWeight => vec![super::backward_weight::overrides(spec, tile, storage)],
    }
}

/// The forward's tiles: for the buffer kernel 16 channels with the row tile that loads least,
/// then 32 channels and other row tiles; for the `_textured` kernel 4 pixels x 4 channels, then
/// other small tiles, then for a 1x1 the subgroup kernel's.
fn forward(spec: &Conv2d, textured: bool) -> Vec<Tile> {
    let (_, q) = spec.out_hw();
    let sw = spec.stride.1;
    let tile4 = Packing::OutputInner.tile4(spec);
    let row = |tk4: usize| row_tile(q, ((17 - spec.s) / sw + 1).min(8), |tp| (tp - 1) * sw + spec.s, spec.s * 4 * tk4);
    // (channels4, pixels) pairs. The textured kernel fetches 4 channels at once; on lavapipe a
    // 3x3 conv runs fastest with 4 pixels x 4 channels, a 1x1 with 4 pixels x 16 channels
    // (BENCHMARKS.md). The buffer kernel amortises its costly loads over large tiles.
    let (two, four) = (tile4.min(2), tile4.min(4));
    let pairs: Vec<(usize, usize)> = match (textured, spec.r * spec.s) {
        (true, 1) => vec![(four, 4), (two, 6), (four, 2), (two, 4), (1, 6), (1, 4), (two, 2), (1, 2)],
        (true, _) => vec![(1, 4), (two, 2), (1, 2), (two, 4), (two, 6), (four, 4), (four, 2), (1, 6)],
        (false, _) => [four, tile4]
            .into_iter()
            .flat_map(|tk4| [(tk4, row(tk4)), (tk4, 4), (tk4, 8)])
            .collect(),
    };
    let mut tiles = Vec::new();
    for (tk4, tp) in pairs {
        let tp = tp.min(q);
        let tile = Tile::new(tp, tk4, 1);
        if tp * tk4 <= 64 && (tp - 1) * sw + spec.s <= 17 && !tiles.contains(&tile) {
            tiles.push(tile);
        }
    }
    if textured && spec.r * spec.s == 1 && four == 4 {
        tiles.extend(subgroup_tiles(q));
    }
    // The workgroup kernel's, sized for a GPU's registers: 4 pixels x 16 channels, 8 x 8.
    if !textured {
        let shared = [(four, 4), (two, 8)].map(|(tk4, tp)| Tile::new(tp.min(q), tk4, 1).shared(Share::Workgroup));
        tiles.extend(shared.into_iter().filter(|t| (t.pixels - 1) * sw + spec.s <= 17));
        unique(&mut tiles);
    }
    tiles
}

/// The tiles of the subgroup kernels, 6 or 4 pixels (at most `cols`) x 16 channels: on lavapipe
/// 1.2-2x the textured kernels' 1x1 rows (8 pixels run at a tenth of that).
fn subgroup_tiles(cols: usize) -> Vec<Tile> {
    let mut tiles: Vec<Tile> = [6, 4].map(|tp| Tile::new(tp.min(cols), 4, 1).shared(Share::Subgroup)).to_vec();
    unique(&mut tiles);
    tiles
}

/// The input gradient's tiles, the default first: the row tile is chosen per stride phase, so
/// the candidates differ in the channels per invocation. `pixels` caps the row tile (0: up to
/// 8); the textured kernel, like the textured forward, runs a 3x3 conv best with 4 pixels x 4
/// channels and a 1x1 with 4 pixels x 16 channels; then, for a 1x1 at stride 1, the subgroup
/// kernel's.
fn backward_input(spec: &Conv2d, textured: bool) -> Vec<Tile> {
    let tile4 = Packing::InputInner.tile4(spec);
    let tile = |pixels: usize, channels4: usize| Tile::new(pixels, channels4.min(tile4), 1);
    let mut tiles = match textured {
        true if spec.r * spec.s == 1 => vec![
            tile(4, 4),
            tile(8, 2),
            tile(2, 4),
            tile(4, 2),
            tile(8, 1),
            tile(4, 1),
            tile(2, 2),
            tile(2, 1),
        ],
        true => vec![
            tile(4, 1),
            tile(2, 1),
            tile(4, 2),
            tile(2, 2),
            tile(8, 1),
            tile(8, 2),
            tile(4, 4),
            tile(2, 4),
        ],
        false => vec![tile(0, 4), tile(0, 8)],
    };
    // The workgroup kernel's: 16 channels, or 8 with rows of up to 8 pixels.
    if !textured {
        tiles.extend([tile(4, 4), tile(8, 2)].map(|t| t.shared(Share::Workgroup)));
    }
    // The subgroup kernel takes the one phase of a 1x1 at stride 1.
    if textured && spec.r * spec.s == 1 && spec.stride == (1, 1) && tile4 >= 4 {
        tiles.extend(subgroup_tiles(spec.w));
    }
    unique(&mut tiles);
    tiles
}

/// Drops the repeats that clamping a tile to a small shape makes, keeping the first of each.
fn unique(tiles: &mut Vec<Tile>) {
    let mut seen = Vec::new();
    tiles.retain(|t| {
        let new = !seen.contains(t);
        seen.push(*t);
        new
    });
}

/// The weight gradient's tiles (input channels x output channel vec4s per invocation): for the
/// buffer kernel, or (`textured`) the `_textured` one, whose input channels come in quads and
/// whose `pixels` is the number of kernel taps per invocation (all R*S, one row of S, or 1): on
/// lavapipe it runs fastest with 8 input x 8 output channels x 3 taps (3x3) or 16 x 8 (1x1),
/// 48 and 32 vec4 accumulators; 64 run at a tenth of the speed.
fn backward_weight(spec: &Conv2d, textured: bool) -> Vec<Tile> {
    let (cg, kg) = (spec.c / spec.groups, spec.k / spec.groups);
    let cg = if textured { cg.div_ceil(4) * 4 } else { cg };
    let rs = spec.r * spec.s;
    let tile = |inputs: usize, channels4: usize, taps: usize| {
        Tile::new(if textured { taps } else { 0 }, channels4.min(kg.div_ceil(4)), inputs.min(cg))
    };
    let mut tiles = match (rs, textured) {
        (1, false) => vec![tile(8, 2, 0), tile(8, 4, 0), tile(16, 2, 0)],
        (_, false) => vec![tile(1, 2, 0), tile(1, 4, 0), tile(2, 2, 0)],
        (1, true) => vec![
            tile(16, 2, 1),
            tile(8, 4, 1),
            tile(8, 2, 1),
            tile(4, 4, 1),
            tile(16, 1, 1),
            tile(8, 1, 1),
            tile(4, 2, 1),
            tile(4, 1, 1),
        ],
        (_, true) => vec![
            tile(8, 2, spec.s),
            tile(4, 2, spec.s),
            tile(4, 4, spec.s),
            tile(4, 1, spec.s),
            tile(8, 1, spec.s),
            tile(4, 1, rs),
            tile(8, 2, 1),
            tile(4, 4, 1),
            tile(4, 1, 1),
        ],
    };
    // The subgroup kernel's (1x1 on texels), whose dy loads are shared: on lavapipe the tuner
    // picked it for the 1x1 128 -> 128 at 48x48 (1.7x the textured kernel's time there). With 3
    // or 4 input quads a lane its dispatch never returned on llvmpipe: not offered.
    if textured && rs == 1 {
        let shared = [tile(8, 4, 1), tile(8, 2, 1), tile(4, 4, 1)];
        tiles.extend(shared.map(|t| t.shared(Share::Subgroup)));
    }
    let first = tiles[0];
    let taps = |t: &Tile| if textured { t.pixels } else { rs };
    tiles.retain(|t| *t == first || t.inputs * taps(t) * t.channels4 <= 48);
    // The workgroup kernel's, 8 x 8 lanes a block: for a 1x1 8 input x 8 output channels a
    // lane (a 64 x 64 block) or 4 x 8; for a 3x3 one input channel's 9 taps x 8 output channels,
    // or 2 x 4. They stage at most 2048 x values (8*CB channels x R rows x 15*SW + S columns).
    if !textured {
        let pairs: &[(usize, usize)] = if rs == 1 { &[(8, 2), (4, 2)] } else { &[(1, 2), (2, 1)] };
        let block = |t: &Tile| 8 * t.inputs * spec.r * (15 * spec.stride.1 + spec.s) <= 2048;
        let shared = pairs.iter().map(|&(inputs, channels4)| {
            let inputs = inputs.min(cg.div_ceil(8));
            Tile::new(0, channels4.min(kg.div_ceil(32)), inputs).shared(Share::Workgroup)
        });
        tiles.extend(shared.filter(block));
    }
    unique(&mut tiles);
    tiles
}
