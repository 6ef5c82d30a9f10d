//! Autotuning: choices that depend on the adapter, made by timing, checked, and cached on disk.
//!
//! Each choice has a default (what runs with autotuning off) and candidates. Candidates run on
//! seeded data beside the default; a candidate whose output differs from the default's beyond
//! the tests' tolerance is discarded before it can be timed, so tuning never changes results
//! beyond rounding. The fastest survivor (best of a few timed runs, after a warm-up) wins. The
//! winner is cached in `autotune.json` in the cache directory (`NFNET_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/nfnet`, else `$HOME/.cache/nfnet`), keyed by adapter, backend and driver,
//! so the next run starts without timing. `NFNET_AUTOTUNE=0` (or [`GpuOptions::autotune`])
//! turns tuning off: every choice is then the default, for reproducible timings.
//!
//! Choices today:
//! * `conv_storage`, per adapter: where the conv kernels read their operands, `buffer`
//!   (default: storage buffers) or `texture` (packed weights and activations as 4-channel
//!   texels, read by the `_textured` kernels). On a software rasterizer a texel fetch costs a
//!   fraction of a bounds-checked storage-buffer load, and loads dominate the conv kernels'
//!   cost; on a discrete GPU the two are close. Timed on a forward conv, the texture side
//!   paying for packing its input.
//! * the register tile of each conv kernel, per shape ([`crate::ops::grouped_conv::Tile`]): made when a
//!   plan builds the conv's launch, timed on that shape.
//!
//! Every candidate computes the same sums in the same order as the default (only the work per
//! invocation or the storage of the weights differs), so the check is bitwise, and a tuned
//! run gives bitwise the results of an untuned one.
//!
//! [`GpuOptions::autotune`]: crate::gpu::GpuOptions::autotune

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Launch};
use crate::ops::grouped_conv::{Conv2d, Padding, Trial};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// One autotune decision, for reports (`nfnet bench`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Choice {
    pub name: String,
    pub value: String,
    /// `timed` (measured now), `cached` (read from disk) or `default` (tuning off or failed).
    pub source: String,
    /// Milliseconds per candidate when timed now.
    pub timings_ms: Vec<(String, f64)>,
}

/// The decisions taken so far in this process, in order, one per choice.
pub fn choices() -> Vec<Choice> {
    log().lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn log() -> &'static std::sync::Mutex<Vec<Choice>> {
    static LOG: std::sync::OnceLock<std::sync::Mutex<Vec<Choice>>> = std::sync::OnceLock::new();
    LOG.get_or_init(Default::default)
}

/// Logs a decision once: a shape met again (a repeated block) reads the same choice.
fn record(choice: Choice) {
    let mut log = log().lock().unwrap_or_else(|p| p.into_inner());
    if !log.iter().any(|c| c.name == choice.name) {
        log.push(choice);
    }
}

/// The directory of the cache file.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("NFNET_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("nfnet")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("nfnet")))
}

/// The cache key of the adapter: choices are only valid on the same device and driver.
fn adapter_key(gpu: &Gpu) -> String {
    let i = &gpu.info;
    format!("{} | {:?} | {} {}", i.name, i.backend, i.driver, i.driver_info)
}

type CacheFile = BTreeMap<String, BTreeMap<String, String>>;

fn read_cache() -> CacheFile {
    cache_dir()
        .and_then(|d| std::fs::read(d.join("autotune.json")).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The cache file's contents, read once per process.
fn memory() -> &'static std::sync::Mutex<CacheFile> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<CacheFile>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| std::sync::Mutex::new(read_cache()))
}

fn cached(gpu: &Gpu, name: &str) -> Option<String> {
    let cache = memory().lock().unwrap_or_else(|p| p.into_inner());
    cache.get(&adapter_key(gpu)).and_then(|m| m.get(name)).cloned()
}

/// Adds one choice to the cache, and to the cache file atomically (a temporary file, then a
/// rename; merged with what other processes wrote meanwhile).
fn write_cache(gpu: &Gpu, name: &str, value: &str) -> Result<()> {
    memory()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(adapter_key(gpu))
        .or_default()
        .insert(name.into(), value.into());
    let dir = cache_dir().ok_or_else(|| Error::invalid("autotune", "no cache directory (set NFNET_CACHE_DIR or HOME)"))?;
    let io = |e: std::io::Error| Error::invalid("autotune", format!("writing the cache in {}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut cache = read_cache();
    cache.entry(adapter_key(gpu)).or_default().insert(name.into(), value.into());
    let tmp = dir.join(format!("autotune.json.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(&cache).map_err(|e| Error::invalid("autotune", e.to_string()))?;
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, dir.join("autotune.json")).map_err(io)
}

/// Runs `launch` once to warm up, then `reps` times, and returns the best time in milliseconds.
pub(crate) fn time(gpu: &Gpu, launch: &Launch, reps: usize) -> Result<f64> {
    gpu.run(&[launch])?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        gpu.run(&[launch])?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// Where conv operands live: the `conv_storage` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConvStorage {
    Buffer,
    Texture,
}

impl std::fmt::Display for ConvStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConvStorage::Buffer => "buffer",
            ConvStorage::Texture => "texture",
        })
    }
}

impl std::str::FromStr for ConvStorage {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<ConvStorage, ()> {
        match s {
            "buffer" => Ok(ConvStorage::Buffer),
            "texture" => Ok(ConvStorage::Texture),
            _ => Err(()),
        }
    }
}

/// Whether plans should give conv kernels their operands in textures on this adapter: the
/// cached choice, else timed now on the forward conv of a stage-like grouped 3x3 shape (default
/// tiles; the texture side packs x as part of the timed launch, as a plan does), else `false`.
pub fn conv_textures(gpu: &Gpu) -> bool {
    let spec = Conv2d {
        n: 2,
        c: 256,
        h: 12,
        w: 12,
        k: 256,
        r: 3,
        s: 3,
        groups: 2,
        stride: (1, 1),
        pad: Padding::symmetric(3, 3, (1, 1)),
        bias: false,
    };
    let candidates = [ConvStorage::Buffer, ConvStorage::Texture];
    let choice = pick(gpu, "conv_storage", &candidates, |storage| {
        Trial::new(gpu, Kernel::GroupedConvForward, &spec)?.run_storage(storage == ConvStorage::Texture)
    });
    choice == Some(ConvStorage::Texture)
}

/// The fastest of `candidates` (the default first) for the choice `name`: cached, else timed
/// with `measure` (milliseconds and the output), keeping only candidates whose output equals the
/// default's bitwise. `None` when tuning fails (the caller keeps the default).
pub(crate) fn pick<T>(gpu: &Gpu, name: &str, candidates: &[T], mut measure: impl FnMut(T) -> Result<(f64, Vec<f32>)>) -> Option<T>
where
    T: Copy + PartialEq + std::fmt::Display + std::str::FromStr,
{
    if let Some(value) = cached(gpu, name) {
        if let Some(t) = value.parse::<T>().ok().filter(|t| candidates.contains(t)) {
            record(Choice {
                name: name.into(),
                value,
                source: "cached".into(),
                timings_ms: vec![],
            });
            return Some(t);
        }
    }
    let mut timed = || -> Result<(T, Vec<(String, f64)>)> {
        let (ms0, reference) = measure(candidates[0])?;
        let (mut best, mut best_ms) = (candidates[0], ms0);
        let mut timings = vec![(candidates[0].to_string(), ms0)];
        for &t in &candidates[1..] {
            let (ms, out) = measure(t)?;
            if out.iter().zip(&reference).any(|(a, b)| a.to_bits() != b.to_bits()) {
                timings.push((format!("{t} (rejected: output differs)"), ms));
                continue;
            }
            timings.push((t.to_string(), ms));
            if ms < best_ms {
                (best, best_ms) = (t, ms);
            }
        }
        Ok((best, timings))
    };
    match timed() {
        Ok((best, timings_ms)) => {
            let _ = write_cache(gpu, name, &best.to_string());
            record(Choice {
                name: name.into(),
                value: best.to_string(),
                source: "timed".into(),
                timings_ms,
            });
            Some(best)
        }
        Err(e) => {
            record(Choice {
                name: name.into(),
                value: format!("{} (tuning failed: {e})", candidates[0]),
                source: "default".into(),
                timings_ms: vec![],
            });
            None
        }
    }
}
