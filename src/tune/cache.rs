//! The tuner's file, `autotune.json`: choices by adapter, then by name. Written atomically and
//! merged with what other processes wrote meanwhile, so concurrent runs lose nothing.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Adapter key -> choice name -> value.
pub(super) type CacheFile = BTreeMap<String, BTreeMap<String, String>>;

/// The default directory of the cache file: `NFNET_CACHE_DIR`, else `$XDG_CACHE_HOME/nfnet`,
/// else `$HOME/.cache/nfnet`.
pub fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("NFNET_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("nfnet")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("nfnet")))
}

/// The cache key of the adapter: choices are only valid on the same device and driver.
pub(super) fn adapter_key(gpu: &Gpu) -> String {
    let i = &gpu.info;
    format!("{} | {:?} | {} {}", i.name, i.backend, i.driver, i.driver_info)
}

/// The cache file in `dir` (empty when missing or unreadable: it only saves time).
pub(super) fn read(dir: &Path) -> CacheFile {
    std::fs::read(dir.join("autotune.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Adds one choice to the cache file in `dir` (a temporary file, then a rename).
pub(super) fn write(dir: &Path, adapter: &str, name: &str, value: &str) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        path: dir.join("autotune.json").display().to_string(),
        error: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut cache = read(dir);
    cache.entry(adapter.into()).or_default().insert(name.into(), value.into());
    let tmp = dir.join(format!("autotune.json.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(&cache).map_err(|e| Error::invalid("autotune cache", e.to_string()))?;
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, dir.join("autotune.json")).map_err(io)
}
