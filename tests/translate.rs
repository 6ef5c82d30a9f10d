//! Every WGSL kernel, specialised with each combination of override constants that the launchers
//! set or the tuner may choose, translated by naga to the languages wgpu writes: SPIR-V for
//! Vulkan (checked by `spirv-val` from SPIRV-Tools, Debian's `spirv-tools`), MSL for Metal, HLSL
//! for DX12 and GLSL ES 3.10 for GL, with the writers' options as wgpu-hal sets them. No GPU: a
//! constant that this machine's adapter never runs (another tile, another reduction width) is
//! still compiled for every backend. All failures are reported together, each naming the
//! kernel, the constants and the backend.
//!
//! The combinations come from the library's own functions where it has them: the conv kernels'
//! tiles (`tiles`) and each tile's constants (`tiles::overrides`) over a sweep of conv shapes
//! that reaches every row tile, channel tile and stride phase; the activation codes
//! (`Activation::code`); the packing prologues (`Prologue::overrides`); the linear row tile
//! (`linear::rows`). The AGC update's norm modes and the reduction widths (`Gpu::reduce_lanes`,
//! a power of two up to 64, with and without `KEEP`) are listed here, as `src/ops/sgd.rs` and
//! `Step::new` set them. An override a kernel declares that no combination sets fails the test:
//! the lists here miss it.
//!
//! The conv sweep takes the kernel sizes and strides that models and tests build (1x1 and 3x3,
//! strides 1 and 2): some 1,300 combinations, most of their time spent starting `spirv-val`
//! (naga alone takes a few seconds). `NFNET_TRANSLATE_ALL=1` adds the 1x3 and 3x1 kernels and
//! the mixed strides the launchers also take: some 4,300 combinations, over three times as long.
//!
//! Without `spirv-val` a developer's run still writes every SPIR-V module but skips its
//! validation with a note; under CI (`CI` set) a missing `spirv-val` fails the test.

use nfnet::gpu::Kernel;
use nfnet::ops::grouped_conv::tiles::overrides as conv_overrides;
use nfnet::ops::grouped_conv::{tiles, Conv2d, Padding, Pass, Prologue, Storage};
use nfnet::ops::linear;
use nfnet::ops::scaled_act::{Activation, ScaledAct};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One combination of override constants, sorted by name (values as `f64` bits, to sort).
type Constants = Vec<(&'static str, u64)>;

/// The SPIR-V versions written, each with the Vulkan environment `spirv-val` checks it under
/// and whether every combination is checked (else a kernel's first): the newest wgpu writes
/// (on Vulkan 1.3 and up, lavapipe among them) for all, the oldest (a Vulkan 1.0 device) for
/// one combination a kernel. Each `spirv-val` run costs some 15 ms, mostly its start.
const SPIRV: [((u8, u8), &str, bool); 2] = [((1, 6), "vulkan1.3", true), ((1, 0), "vulkan1.0", false)];

/// The lanes of the workgroup-tree reductions an adapter may run (`GpuOptions::reduce_lanes`).
const REDUCE_LANES: [u32; 7] = [1, 2, 4, 8, 16, 32, 64];

/// `grouped_conv`'s shapes for the sweep: 1x1 and 3x3 kernels at strides 1 and 2 (every size
/// and stride the tiled kernels take with `NFNET_TRANSLATE_ALL=1`), both stride phases of the
/// padding, rows of 1 to 20 pixels (every row tile up to 8 wide, clipped to the row) and a few
/// long ones, and channel counts on each side of the tiles' multiples of 4 and their caps. A
/// pass's tiles depend on the row length with one channel count (the forward's K, the input
/// gradient's C) or on both channel counts (the weight gradient), so the rows are swept with
/// C = K and the channel pairs with a few rows: the full product takes seconds longer and adds
/// no combination.
fn conv_shapes() -> Vec<Conv2d> {
    let rows: Vec<usize> = (1..=20).chain([24, 32, 64, 128, 256]).collect();
    let channels = [1, 2, 3, 4, 5, 8, 12, 16, 17, 20, 24, 28, 29, 32, 64, 256];
    let sweep = rows.iter().flat_map(|&w| channels.map(|c| (w, c, c))).chain(
        [1, 3, 8, 64]
            .into_iter()
            .flat_map(|w| channels.into_iter().flat_map(move |c| channels.map(|k| (w, c, k)))),
    );
    let sweep: Vec<(usize, usize, usize)> = sweep.collect();
    let mut shapes = Vec::new();
    let (kernels, strides) = match std::env::var_os("NFNET_TRANSLATE_ALL").is_some_and(|v| v == "1") {
        true => (&[(1, 1), (1, 3), (3, 1), (3, 3)][..], &[(1, 1), (1, 2), (2, 1), (2, 2)][..]),
        false => (&[(1, 1), (3, 3)][..], &[(1, 1), (2, 2)][..]),
    };
    for &(r, s) in kernels {
        for &stride in strides {
            for (top, left) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                for &(w, c, k) in &sweep {
                    let pad = Padding {
                        top,
                        bottom: 1,
                        left,
                        right: 1,
                    };
                    let spec = Conv2d {
                        n: 1,
                        c,
                        h: w,
                        w,
                        k,
                        r,
                        s,
                        groups: 1,
                        stride,
                        pad,
                        bias: false,
                    };
                    if spec.validate("translate").is_ok() {
                        shapes.push(spec);
                    }
                }
            }
        }
    }
    shapes
}

/// `pairs` as [`Constants`].
fn constants(pairs: &[(&'static str, f64)]) -> Constants {
    let mut c: Constants = pairs.iter().map(|&(n, v)| (n, v.to_bits())).collect();
    c.sort();
    c
}

/// Every kernel's combinations, deduplicated, in `Kernel::ALL` order.
fn combinations() -> Vec<(Kernel, Vec<Constants>)> {
    let mut sets: HashMap<Kernel, BTreeSet<Constants>> = HashMap::new();
    for spec in conv_shapes() {
        for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
            for storage in [Storage::Buffer, Storage::Texture] {
                for tile in tiles(pass, &spec, storage) {
                    let set = sets.entry(pass.tile_kernel(storage, tile)).or_default();
                    set.extend(conv_overrides(pass, &spec, storage, tile).iter().map(|o| constants(o)));
                }
            }
        }
    }
    let act = |act| ScaledAct { act, gamma: 1.0 };
    for kernel in [Kernel::ScaledActForward, Kernel::ScaledActBackward] {
        sets.entry(kernel)
            .or_default()
            .extend(Activation::ALL.iter().map(|a| constants(&[("ACT", a.code() as f64)])));
    }
    let prologues = Activation::ALL
        .iter()
        .flat_map(|&a| [Prologue::Act(act(a)), Prologue::ActBackward(act(a))]);
    sets.entry(Kernel::GroupedConvPackActivation)
        .or_default()
        .extend([Prologue::None].into_iter().chain(prologues).map(|p| constants(&p.overrides())));
    for kernel in [Kernel::LinearForward, Kernel::LinearBackwardInput] {
        sets.entry(kernel)
            .or_default()
            .extend((1..=64).flat_map(|n| [0.0, 1.0].map(|edges| constants(&[("TN", linear::rows(n) as f64), ("EDGES", edges)]))));
    }
    // src/ops/sgd.rs: 0 sums each unit's norms in one workgroup, 1 reads them, 2 has units of
    // one element.
    sets.entry(Kernel::SgdAgcUpdate)
        .or_default()
        .extend((0..3).map(|mode| constants(&[("NORMS", mode as f64)])));
    Kernel::ALL
        .iter()
        .map(|&kernel| {
            let base: Vec<Constants> = match sets.remove(&kernel) {
                Some(set) => set.into_iter().collect(),
                None => vec![Vec::new()],
            };
            // Step::new adds the adapter's reduction width and KEEP to every reducing kernel.
            if !kernel.preludes().contains(&"reduce") {
                return (kernel, base);
            }
            let mut all = BTreeSet::new();
            for b in &base {
                for lanes in REDUCE_LANES {
                    for keep in [0, 1] {
                        let mut c = b.clone();
                        c.extend(constants(&[("REDUCE_WG", lanes as f64), ("KEEP", keep as f64)]));
                        c.sort();
                        all.insert(c);
                    }
                }
            }
            (kernel, all.into_iter().collect())
        })
        .collect()
}

/// The kernel's name, with its variant where two kernels share the name (a buffer and a
/// texture form of one shader file).
fn label(kernel: Kernel) -> String {
    match Kernel::ALL.iter().filter(|k| k.name() == kernel.name()).count() {
        1 => kernel.name().into(),
        _ => format!("{} ({kernel:?})", kernel.name()),
    }
}

/// `NAME=value ...`, or `(defaults)`.
fn describe(c: &Constants) -> String {
    if c.is_empty() {
        return "(defaults)".into();
    }
    c.iter()
        .map(|&(n, v)| format!("{n}={}", f64::from_bits(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `spirv-val` runs here. Missing, it fails the test under CI and is skipped elsewhere.
fn spirv_val_present() -> bool {
    let ci = std::env::var_os("CI").is_some_and(|v| v != "false" && v != "0");
    match Command::new("spirv-val").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        result => {
            let why = match result {
                Ok(out) => format!("`spirv-val --version` exited with {}", out.status),
                Err(e) => format!("`spirv-val` did not start: {e}"),
            };
            assert!(
                !ci,
                "{why}: under CI the SPIR-V must be validated (install Debian's spirv-tools, as .ci/run does)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "nfnet tests: translate: {why}; writing SPIR-V without validating it (apt-get install spirv-tools)"
            );
            false
        }
    }
}

/// `spirv-val` on `words` (read from its standard input) under `env`: `Err` with its report.
fn spirv_val(words: &[u32], env: &str) -> Result<(), String> {
    let mut child = Command::new("spirv-val")
        .args(["--target-env", env, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spirv-val did not start: {e}"))?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let written = child.stdin.take().expect("piped stdin").write_all(&bytes);
    let out = child.wait_with_output().map_err(|e| format!("spirv-val: {e}"))?;
    match (out.status.success(), written) {
        (true, Ok(())) => Ok(()),
        (_, written) => {
            let mut report = vec![format!("spirv-val {}:", out.status)];
            report.extend([&out.stdout, &out.stderr].map(|o| String::from_utf8_lossy(o).trim().to_string()));
            report.extend(written.err().map(|e| format!("(writing its input: {e})")));
            report.retain(|r| !r.is_empty());
            Err(report.join(" "))
        }
    }
}

/// A resource's kind: it picks the space its number comes from (MSL buffer or texture slots,
/// HLSL register files, GL binding points).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Uniform,
    Storage { writable: bool },
    Texture,
    StorageTexture,
}

/// Each resource of `module` with its class, in binding order.
fn resources(module: &naga::Module) -> Vec<(naga::ResourceBinding, Class)> {
    let mut out: Vec<(naga::ResourceBinding, Class)> = module
        .global_variables
        .iter()
        .filter_map(|(_, var)| {
            let class = match var.space {
                naga::AddressSpace::Uniform => Class::Uniform,
                naga::AddressSpace::Storage { access } => Class::Storage {
                    writable: access.contains(naga::StorageAccess::STORE),
                },
                naga::AddressSpace::Handle => match module.types[var.ty].inner {
                    naga::TypeInner::Image {
                        class: naga::ImageClass::Storage { .. },
                        ..
                    } => Class::StorageTexture,
                    _ => Class::Texture,
                },
                _ => return None,
            };
            Some((var.binding?, class))
        })
        .collect();
    out.sort_by_key(|(b, _)| (b.group, b.binding));
    out
}

/// `(backend, error)` of each translation that failed.
type Failures = Vec<(String, String)>;

/// How [`translate`] checks the SPIR-V it writes.
#[derive(Clone, Copy, PartialEq)]
enum Validate {
    /// Not at all (no `spirv-val` here).
    No,
    /// The versions [`SPIRV`] checks for every combination.
    Usual,
    /// Every version (a kernel's first combination).
    All,
}

/// A kernel's module with its override constants substituted, reduced to its entry point.
struct Specialised<'a> {
    module: &'a naga::Module,
    info: &'a naga::valid::ModuleInfo,
    entry: &'a str,
    resources: Vec<(naga::ResourceBinding, Class)>,
    /// Whether the kernel needs the SUBGROUP feature.
    subgroups: bool,
}

/// The bounds checks wgpu-hal asks of the Vulkan, Metal and DX12 writers (on an adapter
/// without robust buffer access): every index, buffer access and texel load restricted.
const RESTRICT: naga::proc::BoundsCheckPolicies = naga::proc::BoundsCheckPolicies {
    index: naga::proc::BoundsCheckPolicy::Restrict,
    buffer: naga::proc::BoundsCheckPolicy::Restrict,
    image_load: naga::proc::BoundsCheckPolicy::Restrict,
    binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
};

/// Writes SPIR-V (checked by `spirv-val` as `validate` says), MSL, HLSL and GLSL for `module`
/// specialised with `c`.
fn translate(kernel: Kernel, module: &naga::Module, info: &naga::valid::ModuleInfo, c: &Constants, validate: Validate) -> Failures {
    let entry = kernel.name();
    let mut constants = naga::back::PipelineConstants::default();
    for &(n, v) in c {
        constants.insert(n.to_string(), f64::from_bits(v));
    }
    let stage = Some((naga::ShaderStage::Compute, entry));
    let (module, info) = match naga::back::pipeline_constants::process_overrides(module, info, stage, &constants) {
        Ok(m) => m,
        Err(e) => return vec![("override constants".into(), e.to_string())],
    };
    let s = Specialised {
        module: &module,
        info: &info,
        entry,
        resources: resources(&module),
        subgroups: kernel.needs_subgroups(),
    };
    let mut failures = spirv(&s, validate);
    failures.extend(msl(&s));
    failures.extend(hlsl(&s));
    failures.extend(glsl(&s));
    failures
}

/// Vulkan: SPIR-V with the writer's options as wgpu-hal sets them (every binding mapped, the
/// capabilities every Vulkan device has), no zero-initialised workgroup memory (as
/// `PipelineCache::get` asks), each version of [`SPIRV`] checked by `spirv-val` as `validate` says.
fn spirv(s: &Specialised, validate: Validate) -> Failures {
    use naga::back::spv;
    let mut failures = Vec::new();
    let binding_map: spv::BindingMap = s
        .resources
        .iter()
        .map(|&(b, _)| {
            let info = spv::BindingInfo {
                descriptor_set: b.group,
                binding: b.binding,
                binding_array_size: None,
            };
            (b, info)
        })
        .collect();
    let mut capabilities = vec![
        spv::Capability::Shader,
        spv::Capability::Matrix,
        spv::Capability::Sampled1D,
        spv::Capability::Image1D,
        spv::Capability::ImageQuery,
        spv::Capability::DerivativeControl,
        spv::Capability::StorageImageExtendedFormats,
    ];
    // With the SUBGROUP feature (the subgroup kernels), those wgpu-hal adds for it.
    if s.subgroups {
        capabilities.extend([
            spv::Capability::GroupNonUniform,
            spv::Capability::GroupNonUniformVote,
            spv::Capability::GroupNonUniformArithmetic,
            spv::Capability::GroupNonUniformBallot,
            spv::Capability::GroupNonUniformShuffle,
            spv::Capability::GroupNonUniformShuffleRelative,
            spv::Capability::GroupNonUniformQuad,
        ]);
    }
    // Subgroup operations start at SPIR-V 1.3 (Vulkan 1.1), which wgpu requires for them.
    for (version, env, always) in SPIRV.into_iter().filter(|(version, ..)| !s.subgroups || *version >= (1, 3)) {
        let backend = format!("SPIR-V {}.{}", version.0, version.1);
        let options = spv::Options {
            lang_version: version,
            flags: spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE,
            fake_missing_bindings: false,
            binding_map: binding_map.clone(),
            capabilities: Some(capabilities.iter().copied().collect()),
            bounds_check_policies: RESTRICT,
            zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
            ..Default::default()
        };
        let pipeline = spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: s.entry.into(),
        };
        match spv::write_vec(s.module, s.info, &options, Some(&pipeline)) {
            Ok(words) if validate == Validate::All || (validate == Validate::Usual && always) => {
                if let Err(e) = spirv_val(&words, env) {
                    failures.push((format!("{backend} (spirv-val --target-env {env})"), e));
                }
            }
            Ok(_) => {}
            Err(e) => failures.push((backend, e.to_string())),
        }
    }
    failures
}

/// Metal: MSL 2.0 (macOS 10.13, the oldest wgpu-hal runs), buffers and textures numbered in
/// slots of their own with the array-sizes buffer after the buffers (wgpu-hal's layout).
fn msl(s: &Specialised) -> Failures {
    use naga::back::msl;
    let mut resources = msl::EntryPointResources::default();
    let (mut buffers, mut textures) = (0u8, 0u8);
    for &(binding, class) in &s.resources {
        let mut target = msl::BindTarget {
            mutable: matches!(class, Class::Storage { writable: true } | Class::StorageTexture),
            ..Default::default()
        };
        match class {
            Class::Uniform | Class::Storage { .. } => (target.buffer, buffers) = (Some(buffers), buffers + 1),
            Class::Texture | Class::StorageTexture => (target.texture, textures) = (Some(textures), textures + 1),
        }
        resources.resources.insert(binding, target);
    }
    resources.sizes_buffer = Some(buffers);
    let options = msl::Options {
        lang_version: (2, 0),
        per_entry_point_map: [(s.entry.to_string(), resources)].into_iter().collect(),
        fake_missing_bindings: false,
        bounds_check_policies: RESTRICT,
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, s.entry.into())),
        ..Default::default()
    };
    match msl::write_string(s.module, s.info, &options, &pipeline) {
        Ok(_) => Vec::new(),
        Err(e) => vec![("MSL 2.0".into(), e.to_string())],
    }
}

/// DX12: HLSL for shader model 5.1 (FXC, which wgpu falls back to without DXC), registers
/// numbered per register file (b, t, u) in space 0.
fn hlsl(s: &Specialised) -> Failures {
    use naga::back::hlsl;
    let mut registers: BTreeMap<char, u32> = BTreeMap::new();
    let binding_map = s
        .resources
        .iter()
        .map(|&(binding, class)| {
            let file = match class {
                Class::Uniform => 'b',
                Class::Storage { writable: false } | Class::Texture => 't',
                Class::Storage { writable: true } | Class::StorageTexture => 'u',
            };
            let register = registers.entry(file).or_default();
            *register += 1;
            let target = hlsl::BindTarget {
                space: 0,
                register: *register - 1,
                binding_array_size: None,
                dynamic_storage_buffer_offsets_index: None,
                restrict_indexing: true,
            };
            (binding, target)
        })
        .collect();
    let options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V5_1,
        binding_map,
        fake_missing_bindings: false,
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, s.entry.into())),
    };
    match hlsl::Writer::new(String::new(), &options, &pipeline).write(s.module, s.info, None) {
        Ok(_) => Vec::new(),
        Err(e) => vec![("HLSL 5.1".into(), e.to_string())],
    }
}

/// GL: GLSL ES 3.10 compute, each entry point on its own, numbered per binding-point space
/// (uniform blocks, storage blocks, samplers, images) as in wgpu-hal's GL layout, without
/// bounds checks as wgpu-hal writes for GLES (GLSL ES cannot query a texture's levels; the rest
/// it leaves to the driver).
fn glsl(s: &Specialised) -> Failures {
    use naga::back::glsl;
    let mut slots: BTreeMap<Class, u8> = BTreeMap::new();
    let binding_map = s
        .resources
        .iter()
        .map(|&(binding, class)| {
            let space = match class {
                Class::Storage { .. } => Class::Storage { writable: false },
                other => other,
            };
            let slot = slots.entry(space).or_default();
            *slot += 1;
            (binding, *slot - 1)
        })
        .collect();
    let options = glsl::Options {
        version: glsl::Version::Embedded {
            version: 310,
            is_webgl: false,
        },
        writer_flags: glsl::WriterFlags::empty(),
        binding_map,
        zero_initialize_workgroup_memory: false,
    };
    let unchecked = naga::proc::BoundsCheckPolicies::default();
    let mut failures = Vec::new();
    for ep in &s.module.entry_points {
        let pipeline = glsl::PipelineOptions {
            shader_stage: ep.stage,
            entry_point: ep.name.clone(),
            multiview: None,
        };
        let mut out = String::new();
        let written = glsl::Writer::new(&mut out, s.module, s.info, &options, &pipeline, unchecked).and_then(|mut w| w.write());
        if let Err(e) = written {
            failures.push((format!("GLSL ES 3.10 ({})", ep.name), e.to_string()));
        }
    }
    failures
}

#[test]
fn every_kernel_translates_with_every_constant_combination() {
    let start = Instant::now();
    let spirv_val = spirv_val_present();
    let combinations = combinations();
    let mut failures = Vec::new();
    let mut count = 0;
    for (kernel, sets) in &combinations {
        let source = kernel.source();
        let module = match naga::front::wgsl::parse_str(source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {}", label(*kernel), e.emit_to_string(source)));
                continue;
            }
        };
        // The subgroup kernels need the capability the engine asks the device for (SUBGROUP).
        let capabilities = match kernel.needs_subgroups() {
            true => naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
            false => naga::valid::Capabilities::default(),
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        let info = match validator.validate(&module) {
            Ok(info) => info,
            Err(e) => {
                failures.push(format!("{}: {}", label(*kernel), e.emit_to_string(source)));
                continue;
            }
        };
        let set: BTreeSet<&str> = sets.iter().flatten().map(|&(n, _)| n).collect();
        for (_, o) in module.overrides.iter() {
            let name = o.name.as_deref().unwrap_or("(unnamed)");
            if !set.contains(name) {
                failures.push(format!(
                    "{}: no combination sets its override `{name}`: tests/translate.rs misses where it is set",
                    label(*kernel)
                ));
            }
        }
        for (i, c) in sets.iter().enumerate() {
            count += 1;
            let validate = match (spirv_val, i) {
                (false, _) => Validate::No,
                (true, 0) => Validate::All,
                (true, _) => Validate::Usual,
            };
            for (backend, error) in translate(*kernel, &module, &info, c, validate) {
                failures.push(format!("{} [{}] {backend}: {error}", label(*kernel), describe(c)));
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "nfnet tests: translate: {count} (kernel, constants) combinations of {} kernels to SPIR-V 1.6 and 1.0{}, MSL 2.0, \
         HLSL 5.1 and GLSL ES 3.10 in {:.1} s",
        combinations.len(),
        match spirv_val {
            true => " (checked by spirv-val: 1.6 each, 1.0 one a kernel)",
            false => " (not checked: no spirv-val)",
        },
        start.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "{} translation failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
