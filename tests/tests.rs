//! The one integration test binary (one link step, one lavapipe start). Each module says what
//! it checks; GPU modules skip on a machine without an adapter, and fail under CI without one.

/// The structure of the source: layers, file and function sizes, a library that never prints.
mod architecture;
/// The convolution's tiles and storages agree bitwise; the tuner keeps results and caches.
mod conv;
/// Data-parallel training on ranks that are threads: one device's sums, resumable across rank
/// counts, errors instead of hangs.
mod data_parallel;
/// The same inputs twice give bitwise the same outputs.
mod determinism;
/// Bad input gets a typed error naming the problem, never a panic or a wgpu abort.
mod errors;
/// The fuzz corpora (fuzz/corpus/) replayed through the fuzz targets' functions (no GPU).
mod fuzz_corpus;
/// Every CPU reference's backward pass against central finite differences (no GPU).
mod gradcheck;
/// Tensors larger than one storage binding: split dispatches agree with the reference, or a
/// typed error before any work.
mod limits;
/// Model configs, counts, planned memory, one-submit steps, weights files and bad input.
mod model;
/// `nfnet train` under `mpirun -np 2`: one process's result, resumable across rank counts, a
/// failed or killed rank ends the job (the `mpi` feature).
#[cfg(feature = "mpi")]
mod mpi;
/// Every GPU kernel against its f64 CPU reference: seeded random inputs, odd shapes,
/// NaN-poisoned outputs, forward and backward.
mod ops;
/// The model on the adapter against timm's fixtures: logits, loss, gradients, two steps.
mod parity;
/// Nothing lost: run folders, interrupted runs, non-finite losses and weights, bad options.
mod runs;
/// Every shader parses and validates under naga, and matches its declared bindings (no GPU).
mod shaders;
/// Shared test support: the GPU context, seeded data, NaN-poisoned outputs, the error report.
mod support;
/// Training: exact resume, crash-safe checkpoints, image folders with bad files, bad input.
mod train;
/// Each kernel and override-constant combination through naga to SPIR-V, MSL, HLSL and GLSL.
mod translate;
