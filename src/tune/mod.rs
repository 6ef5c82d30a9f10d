//! Tuning: the choices that depend on the adapter, made by timing, checked, and cached on disk.
//!
//! A [`Tuner`] is an explicit object: whoever compiles a plan hands one over (`Plan::new`), and
//! the plan asks it for each choice. Its [`TuneOptions`] say whether to time at all, where the
//! cache file lives, how much time tuning may take in all (the budget, [`DEFAULT_BUDGET`]
//! unless set; past it every choice is the default) and who hears how it goes (a
//! [`ProgressHook`], called with a [`TuneProgress`] before each timed candidate and after each
//! timed choice: the library never prints, a caller may).
//!
//! The budget bounds the time spent timing, the trials' setup and pipeline compiles included.
//! No measurement starts unless what is left of the budget would hold the longest one so far
//! (a driver call cannot be cut short: on wgpu's GL backend a kernel compiles at its first
//! dispatch, and Mesa's llvmpipe has taken minutes over one); a choice stopped that way keeps
//! the fastest of the candidates measured (each checked bitwise as always), and the choices
//! after it are the defaults. A choice cut short (source `partial`) or skipped (`default`) is
//! not written to the cache, so the next run, finding the finished choices cached, times the
//! rest. A choice that alone took the whole budget is marked in the cache instead (`<value>
//! (partial)`, which no run reads as a choice): the next run times it again (its first
//! measurements often paid for compiles that the driver has cached since), and if it alone
//! takes the whole budget again, its fastest candidate measured is cached as the choice, so
//! that no later run stalls on it.
//!
//! Each choice has a default (what runs untuned) and candidates. Candidates run on seeded data
//! beside the default, and a candidate whose output differs from the default's in any bit is
//! rejected before it can win: every candidate computes the same sums in the same order (only the
//! work per invocation or the storage of the operands differs), so a tuned run gives bitwise
//! the results of an untuned one. The fastest survivor (best of a few timed runs, after a
//! warm-up) wins and is written to `autotune.json` in the cache directory, keyed by adapter,
//! backend and driver, so the next run starts without timing.
//!
//! A job that wants its first result at once need not wait for the tuner: built with a
//! [`TuneOptions::cached_only`] tuner, its plans take the cached choices and the defaults for
//! the rest ([`Tuner::untimed`] counts them), and a timing tuner makes those choices later, the
//! plans being built again with them (training: `Trainer::tune_after_first_epoch`). Either
//! way the results are bitwise the same.
//!
//! Choices today:
//! * `conv_storage`, per adapter: where the conv kernels read their operands
//!   ([`Storage::Buffer`] or [`Storage::Texture`]). On a software device a texel fetch costs a
//!   fraction of a bounds-checked storage-buffer load, and loads dominate the conv kernels'
//!   cost; on a discrete GPU the two are close. Timed on a forward conv, the texture side paying
//!   for packing its input; untuned, textures on a CPU adapter and buffers elsewhere.
//! * the register tile of each conv pass, per shape and storage ([`Tile`]), and with it whether
//!   the kernel shares loads ([`Share`]): for a 1x1 on texels the weights across the subgroup,
//!   on buffers operand tiles in workgroup memory (the candidates shaped for GPUs).

mod cache;
mod trial;

pub use cache::default_dir;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
#[cfg(doc)]
use crate::ops::grouped_conv::Share;
use crate::ops::grouped_conv::{tiles, Conv2d, Pass, Storage, Tile};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trial::Trial;
use web_time::Instant;

/// The time tuning may take in all unless [`TuneOptions::budget`] says otherwise: on a fast
/// adapter every choice is timed well within it; on a slow one (a software device) the first
/// run starts working after it, and later runs finish what it left (from the cache).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// The mark, after its value, of a choice in the cache that alone took the whole budget once.
const PARTIAL: &str = " (partial)";

/// How a [`Tuner`] decides.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Time the candidates; off, every choice is the default (for reproducible timings).
    pub enabled: bool,
    /// Where the conv kernels read their operands, fixed; `None` tunes it (untuned:
    /// [`Storage::untuned`]).
    pub conv_storage: Option<Storage>,
    /// The directory of `autotune.json`; `None` keeps choices in memory only.
    pub cache_dir: Option<PathBuf>,
    /// The most time timing may take in all (see the module docs); `None` for no bound.
    pub budget: Option<Duration>,
    /// Take cached choices but time nothing: a choice not in the cache is the default, and
    /// [`Tuner::untimed`] counts it. A run that must start at once builds its plans this way and
    /// times the rest later (`Trainer::tune_after_first_epoch`).
    pub cached_only: bool,
    /// Told how tuning goes; `None` hears nothing.
    pub progress: Option<ProgressHook>,
}

impl Default for TuneOptions {
    /// Tuning on, cached in [`default_dir`], within [`DEFAULT_BUDGET`], no progress hook.
    fn default() -> TuneOptions {
        TuneOptions {
            enabled: true,
            conv_storage: None,
            cache_dir: default_dir(),
            budget: Some(DEFAULT_BUDGET),
            cached_only: false,
            progress: None,
        }
    }
}

impl TuneOptions {
    /// Every choice the default: the adapter's default storage and tiles, nothing timed or cached.
    pub fn off() -> TuneOptions {
        TuneOptions {
            enabled: false,
            conv_storage: None,
            cache_dir: None,
            budget: None,
            cached_only: false,
            progress: None,
        }
    }

    /// The defaults, changed by the environment: `NFNET_AUTOTUNE=0` turns timing off,
    /// `NFNET_CONV_STORAGE=buffer|texture` fixes the conv storage, `NFNET_CACHE_DIR` moves the
    /// cache, `NFNET_TUNE_BUDGET=<seconds>` sets the budget (`none` for no bound).
    pub fn from_env() -> Result<TuneOptions> {
        let mut options = TuneOptions::default();
        if std::env::var("NFNET_AUTOTUNE").is_ok_and(|v| v.trim() == "0") {
            options.enabled = false;
        }
        match std::env::var("NFNET_TUNE_BUDGET").as_deref().map(str::trim) {
            Ok("") | Err(_) => {}
            Ok("none") => options.budget = None,
            Ok(seconds) => {
                let budget = seconds.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok());
                let message = || format!("{seconds:?}: expected seconds (such as 30 or 2.5) or `none`");
                options.budget = Some(budget.ok_or_else(|| Error::invalid("NFNET_TUNE_BUDGET", message()))?);
            }
        }
        match std::env::var("NFNET_CONV_STORAGE").as_deref().map(str::trim) {
            Ok("") | Err(_) => {}
            Ok(storage) => options.conv_storage = Some(storage.parse().map_err(|e: Error| Error::invalid("NFNET_CONV_STORAGE", e))?),
        }
        Ok(options)
    }
}

/// A callback told how tuning goes, as it goes ([`TuneProgress`]). It runs on the thread that
/// asked for the choice, while the tuner is locked: it must not call back into the tuner (it
/// is told what it needs), and it should be quick.
#[derive(Clone)]
pub struct ProgressHook(pub Arc<dyn Fn(&TuneProgress) + Send + Sync>);

impl ProgressHook {
    pub fn new(hook: impl Fn(&TuneProgress) + Send + Sync + 'static) -> ProgressHook {
        ProgressHook(Arc::new(hook))
    }
}

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook(..)")
    }
}

/// Where tuning stands, for a [`ProgressHook`]. Choices found in the cache are not reported:
/// a run whose choices are all cached hears nothing.
#[derive(Clone, Debug)]
pub struct TuneProgress {
    /// The adapter's name (the choices hold for it).
    pub adapter: String,
    /// The choice concerned (as in [`Choice::name`]).
    pub name: String,
    pub stage: TuneStage,
    /// Choices timed so far by this tuner, counting one being timed now or just made.
    pub choices: usize,
    /// Time spent tuning so far (timing, trial setup and pipeline compiles).
    pub spent: Duration,
    /// The budget ([`TuneOptions::budget`]).
    pub budget: Option<Duration>,
}

/// What a [`TuneProgress`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuneStage {
    /// Candidate `candidate` (from 0, the default) of `candidates` is about to be timed.
    Timing { candidate: usize, candidates: usize },
    /// The choice is made (timed in full) and cached.
    Chosen,
    /// The budget ran out (what is left would not hold the longest measurement so far), timing
    /// this choice or before it: it is the fastest candidate measured, or the default, and
    /// every choice after it the default, and the next run times them again (see the module
    /// docs). Reported once per tuner, as the last report it makes.
    BudgetSpent,
}

/// One decision, for reports (`nfnet bench`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Choice {
    /// The adapter, backend and driver it holds for.
    pub adapter: String,
    pub name: String,
    pub value: String,
    /// `timed` (measured now), `cached` (read from disk), `partial` (the fastest of the
    /// candidates measured before the budget ran out; see the module docs for when it is
    /// cached) or `default` (not cached with [`TuneOptions::cached_only`], tuning failed, or out of budget).
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
    /// Choices left at the default because they were not cached ([`TuneOptions::cached_only`]).
    untimed: usize,
    /// The longest single measurement (with its trial's setup and compiles).
    longest: Duration,
    /// Choices timed (in full or in part).
    timed: usize,
    /// The budget ran out (and the hook has been told).
    budget_spent: bool,
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

    /// How many choices a [`TuneOptions::cached_only`] tuner left at the default for want of a
    /// cached one: what a tuner that times would time now.
    pub fn untimed(&self) -> usize {
        self.state().untimed
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the conv kernels read their operands on `gpu`: the fixed choice, else (tuning on)
    /// the cached or timed one (on the forward conv of a stage-like grouped 3x3 shape, the
    /// texture side packing x inside the timed launch as a plan does), else the adapter's
    /// default ([`Storage::untuned`]).
    pub fn conv_storage(&self, gpu: &Gpu) -> Storage {
        if let Some(storage) = self.options.conv_storage {
            return storage;
        }
        let default = Storage::untuned(gpu);
        if !self.options.enabled {
            return default;
        }
        let spec = Conv2d::symmetric([2, 256, 12, 12], 256, 3, 1).groups(2);
        let other = match default {
            Storage::Buffer => Storage::Texture,
            Storage::Texture => Storage::Buffer,
        };
        let mut trial = None;
        self.pick(gpu, "conv_storage", &[default, other], |storage| {
            let trial = match &mut trial {
                Some(t) => t,
                None => trial.insert(Trial::new(gpu, Pass::Forward, &spec, Storage::Buffer)?),
            };
            trial.run_storage(storage)
        })
    }

    /// The register tile of `pass` at `spec` on operands in `storage`: the default (the first
    /// of [`tiles()`]) untuned, else the cached or timed choice among the candidates (the
    /// subgroup tiles only where [`Gpu::shares_subgroups`]). Candidates run on seeded data of
    /// the same shape and storage.
    pub fn conv_tile(&self, gpu: &Gpu, pass: Pass, spec: &Conv2d, storage: Storage) -> Tile {
        let kernel = pass.kernel(storage);
        let mut candidates = tiles(pass, spec, storage);
        candidates.retain(|t| !pass.tile_kernel(storage, *t).needs_subgroups() || gpu.shares_subgroups());
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
            .cloned()
            .unwrap_or_default();
        let marked = cached.ends_with(PARTIAL); // not a choice, whatever `T::from_str` makes of it
        if let Some(t) = cached.parse::<T>().ok().filter(|t| !marked && candidates.contains(t)) {
            state.record(&adapter, name, t.to_string(), "cached", vec![]);
            return t;
        }
        if self.options.cached_only {
            state.untimed += 1;
            state.record(&adapter, name, format!("{} (not cached)", candidates[0]), "default", vec![]);
            return candidates[0];
        }
        let budget = self.options.budget;
        if budget.is_some_and(|b| state.spent + state.longest >= b) {
            self.budget_spent(&mut state, gpu, name);
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
        let deadline = budget.map(|b| started + (b - state.spent));
        state.timed += 1;
        let (spent, mut longest, choices) = (state.spent, state.longest, state.timed);
        let report = |candidate: usize| {
            let stage = TuneStage::Timing {
                candidate,
                candidates: candidates.len(),
            };
            self.report(gpu, name, stage, choices, spent + started.elapsed());
        };
        let timed = time_candidates(candidates, deadline, &mut longest, report, measure);
        let took = started.elapsed();
        (state.spent, state.longest) = (spent + took, longest);
        match timed {
            Ok(Timed { best, timings, complete }) => {
                // Cut short, a choice is timed again by the next run; one that alone took the
                // whole budget is marked, and kept the second time (see the module docs).
                let alone = budget.is_some_and(|b| took >= b);
                let value = match (complete, alone, marked) {
                    (true, ..) | (false, true, true) => Some(best.to_string()),
                    (false, true, false) => Some(format!("{best}{PARTIAL}")),
                    (false, false, _) => None,
                };
                if let (Some(dir), Some(value)) = (dir, value) {
                    // The cache only saves time: a file that cannot be written is not an error.
                    let _ = cache::write(dir, &adapter, name, &value);
                }
                let source = if complete { "timed" } else { "partial" };
                state.record(&adapter, name, best.to_string(), source, timings);
                match complete {
                    true => self.report(gpu, name, TuneStage::Chosen, state.timed, state.spent),
                    false => self.budget_spent(&mut state, gpu, name),
                }
                best
            }
            Err(e) => {
                state.record(&adapter, name, format!("{} (tuning failed: {e})", candidates[0]), "default", vec![]);
                candidates[0]
            }
        }
    }

    /// Tells the hook, if any, where tuning stands.
    fn report(&self, gpu: &Gpu, name: &str, stage: TuneStage, choices: usize, spent: Duration) {
        if let Some(hook) = &self.options.progress {
            (hook.0)(&TuneProgress {
                adapter: gpu.info.name.clone(),
                name: name.into(),
                stage,
                choices,
                spent,
                budget: self.options.budget,
            });
        }
    }

    /// Notes that the budget ran out at the choice `name`, telling the hook the first time.
    fn budget_spent(&self, state: &mut State, gpu: &Gpu, name: &str) {
        if !std::mem::replace(&mut state.budget_spent, true) {
            self.report(gpu, name, TuneStage::BudgetSpent, state.timed, state.spent);
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

/// What [`time_candidates`] found.
struct Timed<T> {
    /// The fastest candidate whose output equals the default's bitwise.
    best: T,
    /// Milliseconds per candidate measured, by name.
    timings: Vec<(String, f64)>,
    /// Every candidate was measured (else the deadline came first).
    complete: bool,
}

/// Times the candidates in turn, calling `starting` with each one's index first, until all are
/// measured or the next could end past `deadline` (were it to take `longest`, the longest
/// measurement so far, which it updates); the default, first, is always measured. The fastest
/// whose output equals the default's bitwise, and the timings.
fn time_candidates<T>(
    candidates: &[T],
    deadline: Option<Instant>,
    longest: &mut Duration,
    mut starting: impl FnMut(usize),
    mut measure: impl FnMut(T) -> Result<(f64, Vec<f32>)>,
) -> Result<Timed<T>>
where
    T: Copy + std::fmt::Display,
{
    let mut timed = |i: usize, longest: &mut Duration| {
        starting(i);
        let started = Instant::now();
        let measured = measure(candidates[i]);
        *longest = started.elapsed().max(*longest);
        measured
    };
    let (ms0, reference) = timed(0, longest)?;
    let (mut best, mut best_ms) = (candidates[0], ms0);
    let mut timings = vec![(candidates[0].to_string(), ms0)];
    for (i, &t) in candidates.iter().enumerate().skip(1) {
        if deadline.is_some_and(|d| Instant::now() + *longest >= d) {
            return Ok(Timed {
                best,
                timings,
                complete: false,
            });
        }
        let (ms, out) = timed(i, longest)?;
        if out.iter().zip(&reference).any(|(a, b)| a.to_bits() != b.to_bits()) {
            timings.push((format!("{t} (rejected: output differs)"), ms));
            continue;
        }
        timings.push((t.to_string(), ms));
        if ms < best_ms {
            (best, best_ms) = (t, ms);
        }
    }
    Ok(Timed {
        best,
        timings,
        complete: true,
    })
}
