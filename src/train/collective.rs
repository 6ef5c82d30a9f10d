//! Data-parallel training: what ranks exchange, and how a sum over ranks stays deterministic.
//!
//! A [`Collective`] joins `ranks` trainers, one per GPU, that each compute the gradients of
//! their shard of every global batch (see [`super::Trainer::new_in`]). It moves bytes and does
//! no arithmetic, so the transport (MPI between processes, [`LocalGroup`] between threads)
//! cannot change a result: [`mean_over_ranks`] sums in rank order itself.
//!
//! ```text
//! mean_over_ranks(x [len]) on rank r of N, chunk c = ceil(len / N):
//!   all_to_all   x padded to [N, c]: chunk j goes to rank j; rank r receives [N, c], every
//!                rank's values of chunk r
//!   sum          ((x_0 + x_1) + x_2) ... + x_{N-1}, then / N: rank order, whatever the transport
//!   all_gather   the N reduced chunks, in rank order: [N, c] -> x [len] on every rank
//! ```
//! The same bytes cross the wire as in a ring allreduce (a reduce-scatter and an all-gather,
//! 2 (N-1)/N len floats per rank), and every rank ends with bitwise the same result.

use crate::error::{Error, Result};
use std::sync::{Arc, Condvar, Mutex};

/// The byte-moving operations data-parallel training needs. Every rank calls them in the same
/// order with the same lengths (collective calls, as in MPI).
pub trait Collective {
    /// This rank, in `0..ranks()`.
    fn rank(&self) -> usize;
    fn ranks(&self) -> usize;
    /// `send` holds `ranks()` equal parts; part j goes to rank j, and `recv` (the same length)
    /// receives rank i's part for this rank at part i.
    fn all_to_all(&self, send: &[u8], recv: &mut [u8]) -> Result<()>;
    /// `all` (`ranks()` times `mine`'s length) receives every rank's `mine`, in rank order.
    fn all_gather(&self, mine: &[u8], all: &mut [u8]) -> Result<()>;
}

/// Replaces `x` on every rank by the mean of all ranks' `x`, summed in rank order (see the
/// module docs): bitwise the same on every rank and in every run with the same ranks.
pub fn mean_over_ranks(group: &dyn Collective, x: &mut [f32]) -> Result<()> {
    let n = group.ranks();
    if n == 1 {
        return Ok(());
    }
    let chunk = x.len().div_ceil(n);
    let mut send = vec![0f32; n * chunk];
    send[..x.len()].copy_from_slice(x);
    let mut parts = vec![0f32; n * chunk];
    group.all_to_all(bytemuck::cast_slice(&send), bytemuck::cast_slice_mut(&mut parts))?;
    let mut mine = parts[..chunk].to_vec();
    for part in parts.chunks_exact(chunk).skip(1) {
        mine.iter_mut().zip(part).for_each(|(m, v)| *m += v);
    }
    mine.iter_mut().for_each(|m| *m /= n as f32);
    group.all_gather(bytemuck::cast_slice(&mine), bytemuck::cast_slice_mut(&mut send))?;
    x.copy_from_slice(&send[..x.len()]);
    Ok(())
}

/// Every rank's `mine` (the same length on all), in rank order.
pub fn gather_f64(group: &dyn Collective, mine: &[f64]) -> Result<Vec<Vec<f64>>> {
    let mut all = vec![0f64; mine.len() * group.ranks()];
    group.all_gather(bytemuck::cast_slice(mine), bytemuck::cast_slice_mut(&mut all))?;
    Ok(all.chunks_exact(mine.len().max(1)).map(<[f64]>::to_vec).collect())
}

/// Checks that every rank holds the same `checksum` (of its weights); the error names the ranks
/// that differ from rank 0.
pub fn check_same_everywhere(group: &dyn Collective, what: &str, checksum: u64) -> Result<()> {
    let mut all = vec![0u64; group.ranks()];
    group.all_gather(bytemuck::bytes_of(&checksum), bytemuck::cast_slice_mut(&mut all))?;
    let differ: Vec<usize> = (1..all.len()).filter(|&r| all[r] != all[0]).collect();
    match differ.first() {
        None => Ok(()),
        Some(&rank) => Err(Error::Rank {
            rank,
            message: format!(
                "{what} differ from rank 0's (checksums {:016x} and {:016x}; ranks that differ: {differ:?}): \
                 the ranks no longer train the same model",
                all[rank], all[0]
            ),
        }),
    }
}

/// FNV-1a over the bits of `values`: equal for bitwise-equal weights.
pub fn checksum(values: &[f32], mut hash: u64) -> u64 {
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    hash
}

/// Where [`checksum`] starts.
pub const CHECKSUM_START: u64 = 0xCBF2_9CE4_8422_2325;

/// Ranks that are threads of one process, one GPU each ([`LocalGroup::new`] gives one handle per
/// rank). Also what the tests use in place of MPI. A rank whose handle is dropped (it stopped,
/// say with an error) makes every other rank's next call an error naming it, never a hang.
pub struct LocalGroup {
    rank: usize,
    ranks: usize,
    shared: Arc<(Mutex<Exchange>, Condvar)>,
}

#[derive(Default)]
struct Exchange {
    /// Each rank's contribution to the operation in progress.
    slots: Vec<Option<Vec<u8>>>,
    /// Operations completed; the contributions of the last one.
    done: u64,
    published: Arc<Vec<Vec<u8>>>,
    /// A rank that left the group.
    gone: Option<usize>,
}

impl LocalGroup {
    /// The handles of `ranks` ranks, rank i at index i; move each to its own thread.
    pub fn new(ranks: usize) -> Vec<LocalGroup> {
        let exchange = Exchange {
            slots: vec![None; ranks],
            ..Default::default()
        };
        let shared = Arc::new((Mutex::new(exchange), Condvar::new()));
        (0..ranks)
            .map(|rank| LocalGroup {
                rank,
                ranks,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Contributes `mine` and returns every rank's contribution to this operation, in rank order.
    fn exchange(&self, mine: &[u8]) -> Result<Arc<Vec<Vec<u8>>>> {
        let (lock, wake) = &*self.shared;
        let mut x = lock.lock().unwrap_or_else(|e| e.into_inner());
        let target = x.done + 1;
        x.slots[self.rank] = Some(mine.to_vec());
        if x.slots.iter().all(Option::is_some) {
            x.published = Arc::new(x.slots.iter_mut().map(|s| s.take().unwrap_or_default()).collect());
            x.done = target;
            wake.notify_all();
        }
        // A rank that is slow to read cannot miss its operation's contributions: the next
        // operation completes only when it has contributed to that one too.
        while x.done < target {
            if let Some(rank) = x.gone {
                return Err(Error::Rank {
                    rank,
                    message: "left the group (it stopped, with an error or killed); the other ranks stop too".into(),
                });
            }
            x = wake.wait(x).unwrap_or_else(|e| e.into_inner());
        }
        Ok(x.published.clone())
    }
}

impl Drop for LocalGroup {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        let mut x = lock.lock().unwrap_or_else(|e| e.into_inner());
        x.gone.get_or_insert(self.rank);
        wake.notify_all();
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn all_to_all(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let part = send.len() / self.ranks;
        let all = self.exchange(send)?;
        for (i, from) in all.iter().enumerate() {
            recv[i * part..(i + 1) * part].copy_from_slice(&from[self.rank * part..(self.rank + 1) * part]);
        }
        Ok(())
    }

    fn all_gather(&self, mine: &[u8], all: &mut [u8]) -> Result<()> {
        let slots = self.exchange(mine)?;
        for (i, from) in slots.iter().enumerate() {
            all[i * mine.len()..(i + 1) * mine.len()].copy_from_slice(from);
        }
        Ok(())
    }
}
