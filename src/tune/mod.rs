//! Tuning: the choices that depend on the adapter, made by timing, checked, and cached on disk.
//!
//! A [`Tuner`] is an explicit object: whoever compiles a plan hands one over (`Plan::new`), and
//! the plan asks it for each choice. Its [`TuneOptions`] say whether to time at all, where the
//! cache file lives, and how much time tuning may take in all (the budget; past it every choice
//! is the default).
//!
//! Each choice has a default (what runs untuned) and candidates. Candidates run on seeded data
//! beside the default, and a candidate whose output differs from the default's in any bit is
//! rejected before it can win: every candidate computes the same sums in the same order (only the
//! work per invocation or the storage of the operands differs), so a tuned run gives bitwise
//! the results of an untuned one. The fastest survivor (best of a few timed runs, after a
//! warm-up) wins and is written to `autotune.json` in the cache directory, keyed by adapter,
//! backend and driver, so the next run starts without timing.
//!
//! Choices today:
//! * `conv_storage`, per adapter: where the conv kernels read their operands
//!   ([`Storage::Buffer`] or [`Storage::Texture`]). On a software device a texel fetch costs a
//!   fraction of a bounds-checked storage-buffer load, and loads dominate the conv kernels'
//!   cost; on a discrete GPU the two are close. Timed on a forward conv, the texture side paying
//!   for packing its input.
//! * the register tile of each conv pass, per shape and storage ([`Tile`]).

mod cache;
mod trial;

pub use cache::default_dir;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::grouped_conv::{tiles, Conv2d, Pass, Storage, Tile};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trial::Trial;

/// How a [`Tuner`] decides.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Time the candidates; off, every choice is the default (for reproducible timings).
    pub enabled: bool,
    /// Where the conv kernels read their operands, fixed; `None` tunes it (buffers untuned).
    pub conv_storage: Option<Storage>,
    /// The directory of `autotune.json`; `None` keeps choices in memory only.
    pub cache_dir: Option<PathBuf>,
    /// The most time timing may take in all; `None` for no bound.
    pub budget: Option<Duration>,
}

impl Default for TuneOptions {
    /// Tuning on, cached in [`default_dir`], no bound on its time.
    fn default() -> TuneOptions {
        TuneOptions {
            enabled: true,
            conv_storage: None,
            cache_dir: default_dir(),
            budget: None,
        }
    }
}

impl TuneOptions {
    /// Every choice the default: buffers and default tiles, nothing timed or cached.
    pub fn off() -> TuneOptions {
        TuneOptions {
            enabled: false,
            conv_storage: None,
            cache_dir: None,
            budget: None,
        }
    }

    /// The defaults, changed by the environment: `NFNET_AUTOTUNE=0` turns timing off,
    /// `NFNET_CONV_STORAGE=buffer|texture` fixes the conv storage, `NFNET_CACHE_DIR` moves the
    /// cache.
    pub fn from_env() -> Result<TuneOptions> {
        let mut options = TuneOptions::default();
        if std::env::var("NFNET_AUTOTUNE").is_ok_and(|v| v.trim() == "0") {
            options.enabled = false;
        }
        match std::env::var("NFNET_CONV_STORAGE").as_deref().map(str::trim) {
            Ok("") | Err(_) => {}
            Ok(storage) => options.conv_storage = Some(storage.parse().map_err(|e: Error| Error::invalid("NFNET_CONV_STORAGE", e))?),
        }
        Ok(options)
    }
}

/// One decision, for reports (`nfnet bench`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Choice {
    /// The adapter, backend and driver it holds for.
    pub adapter: String,
    pub name: String,
    pub value: String,
    /// `timed` (measured now), `cached` (read from disk) or `default` (tuning failed or out of
    /// budget).
    pub source: String,
    /// Milliseconds per candidate when timed now.
    pub timings_ms: Vec<(String, f64)>,
}

/// What the tuner has learned so far.
#[derive(Default)]
struct State {
    /// The cache file's contents, read on first use.
    cache: Option<cache::CacheFile>,
    /// The decisions taken, in order, one per name.
    choices: Vec<Choice>,
    /// Time spent timing.
    spent: Duration,
}

/// Makes and remembers the choices; see the module docs. Shared by reference: its state is
/// behind a lock.
pub struct Tuner {
    options: TuneOptions,
    state: Mutex<State>,
}

impl Tuner {
    pub fn new(options: TuneOptions) -> Tuner {
        Tuner {
            options,
            state: Mutex::default(),
        }
    }

    /// A tuner that times nothing: every choice is the default.
    pub fn off() -> Tuner {
        Tuner::new(TuneOptions::off())
    }

    pub fn options(&self) -> &TuneOptions {
        &self.options
    }

    /// The decisions taken so far, in order.
    pub fn choices(&self) -> Vec<Choice> {
        self.state().choices.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the conv kernels read their operands on `gpu`: the fixed choice, else (tuning on)
    /// the cached or timed one (on the forward conv of a stage-like grouped 3x3 shape, the
    /// texture side packing x inside the timed launch as a plan does), else buffers.
    pub fn conv_storage(&self, gpu: &Gpu) -> Storage {
        if let Some(storage) = self.options.conv_storage {
            return storage;
        }
        if !self.options.enabled {
            return Storage::Buffer;
        }
        let spec = Conv2d::symmetric([2, 256, 12, 12], 256, 3, 1).groups(2);
        let mut trial = None;
        self.pick(gpu, "conv_storage", &[Storage::Buffer, Storage::Texture], |storage| {
            let trial = match &mut trial {
                Some(t) => t,
                None => trial.insert(Trial::new(gpu, Pass::Forward, &spec, Storage::Buffer)?),
            };
            trial.run_storage(storage)
        })
    }

    /// The register tile of `pass` at `spec` on operands in `storage`: the default (the first
    /// of [`tiles()`]) untuned, else the cached or timed choice among the candidates. Candidates
    /// run on seeded data of the same shape and storage.
    pub fn conv_tile(&self, gpu: &Gpu, pass: Pass, spec: &Conv2d, storage: Storage) -> Tile {
        let kernel = pass.kernel(storage);
        let candidates = tiles(pass, spec, storage);
        if !self.options.enabled || candidates.len() < 2 || spec.validate(kernel.name()).is_err() {
            return candidates[0];
        }
        let p = &spec.pad;
        let key = format!(
            "{} n{}_c{}_{}x{}_k{}_{}x{}_g{}_s{}x{}_pad{},{},{},{}{}",
            kernel.name(),
            spec.n,
            spec.c,
            spec.h,
            spec.w,
            spec.k,
            spec.r,
            spec.s,
            spec.groups,
            spec.stride.0,
            spec.stride.1,
            p.top,
            p.bottom,
            p.left,
            p.right,
            if spec.bias { "_bias" } else { "" },
        );
        // Inputs are made once, and only when the choice is not cached.
        let mut trial = None;
        self.pick(gpu, &key, &candidates, |tile| {
            let trial = match &mut trial {
                Some(t) => t,
                None => trial.insert(Trial::new(gpu, pass, spec, storage)?),
            };
            trial.run(tile)
        })
    }

    /// The fastest of `candidates` (the default first) for the choice `name`: cached, else timed
    /// with `measure` (milliseconds and the output) within the budget, keeping only candidates
    /// whose output equals the default's bitwise; the default when timing fails or the budget
    /// is spent.
    fn pick<T>(&self, gpu: &Gpu, name: &str, candidates: &[T], measure: impl FnMut(T) -> Result<(f64, Vec<f32>)>) -> T
    where
        T: Copy + PartialEq + std::fmt::Display + std::str::FromStr,
    {
        let adapter = cache::adapter_key(gpu);
        let mut state = self.state();
        if let Some(c) = state.choices.iter().find(|c| c.adapter == adapter && c.name == name) {
            return c
                .value
                .parse::<T>()
                .ok()
                .filter(|t| candidates.contains(t))
                .unwrap_or(candidates[0]);
        }
        let dir = self.options.cache_dir.as_deref();
        let cached = (state.cache)
            .get_or_insert_with(|| dir.map(cache::read).unwrap_or_default())
            .get(&adapter)
            .and_then(|m| m.get(name))
            .and_then(|v| v.parse::<T>().ok())
            .filter(|t| candidates.contains(t));
        if let Some(t) = cached {
            state.record(&adapter, name, t.to_string(), "cached", vec![]);
            return t;
        }
        if self.options.budget.is_some_and(|b| state.spent >= b) {
            state.record(
                &adapter,
                name,
                format!("{} (tuning budget spent)", candidates[0]),
                "default",
                vec![],
            );
            return candidates[0];
        }
        let started = Instant::now();
        let timed = time_candidates(candidates, measure);
        state.spent += started.elapsed();
        match timed {
            Ok((best, timings)) => {
                if let Some(dir) = dir {
                    // The cache only saves time: a file that cannot be written is not an error.
                    let _ = cache::write(dir, &adapter, name, &best.to_string());
                }
                state.record(&adapter, name, best.to_string(), "timed", timings);
                best
            }
            Err(e) => {
                state.record(&adapter, name, format!("{} (tuning failed: {e})", candidates[0]), "default", vec![]);
                candidates[0]
            }
        }
    }
}

impl State {
    fn record(&mut self, adapter: &str, name: &str, value: String, source: &str, timings_ms: Vec<(String, f64)>) {
        self.choices.push(Choice {
            adapter: adapter.into(),
            name: name.into(),
            value,
            source: source.into(),
            timings_ms,
        });
    }
}

/// Times every candidate; the fastest whose output equals the first's (the default's) bitwise,
/// and the timings.
fn time_candidates<T>(candidates: &[T], mut measure: impl FnMut(T) -> Result<(f64, Vec<f32>)>) -> Result<(T, Vec<(String, f64)>)>
where
    T: Copy + std::fmt::Display,
{
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
}
