//! The epoch loop of [`Trainer::fit`]: train, evaluate, record `metrics.csv` and the plot, save
//! the checkpoints, stop on an interrupt or a non-finite loss; on data-parallel ranks, rank 0
//! alone writes.

#[cfg(feature = "plot")]
use super::plot;
use super::{checkpoint, collective, report, EpochStats, Event, FitEnd, Trainer, RUN_FILES};
use crate::data::Dataset;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use web_time::Instant;

impl Trainer<'_> {
    /// The files a run writes in its folder ([`Trainer::fit`]'s `out`) that are there now.
    pub fn run_files(out: &Path) -> Vec<PathBuf> {
        (RUN_FILES.iter().map(|f| out.join(f))).filter(|p| p.exists()).collect()
    }

    /// Rank 0, or the only rank, writes the run's files.
    fn writes_files(&self) -> bool {
        self.shard().rank == 0
    }

    /// Adds the epoch's training losses of every rank (in rank order) into every rank's state.
    fn add_losses_over_ranks(&mut self) -> Result<()> {
        if let Some(group) = self.group.as_deref().filter(|g| g.ranks() > 1) {
            let all = collective::gather_f64(group, &[self.state.loss_sum, self.state.loss_count as f64])?;
            self.state.loss_sum = all.iter().map(|r| r[0]).sum();
            self.state.loss_count = all.iter().map(|r| r[1] as u64).sum();
        }
        Ok(())
    }

    /// Writes a checkpoint of the run to `path`: rank 0 does, the other ranks hold the same.
    fn save(&self, path: &Path, on_event: &mut dyn FnMut(Event)) -> Result<()> {
        if self.writes_files() {
            checkpoint::save(self, path)?;
            on_event(Event::Checkpoint(path));
        }
        Ok(())
    }

    /// Trains until `options.epochs`: every epoch evaluates on `data.val`, appends to
    /// `out/metrics.csv`, redraws `out/metrics.png`, and writes `out/last.safetensors` (and
    /// `out/best.safetensors` when top-1 improves). Of data-parallel ranks, rank 0 alone writes.
    pub fn fit(&mut self, data: &Dataset, out: &Path, on_event: &mut dyn FnMut(Event)) -> Result<FitEnd> {
        if self.writes_files() {
            std::fs::create_dir_all(out).map_err(|source| Error::Io {
                path: out.display().to_string(),
                error: source,
            })?;
        }
        // The rows of the epochs this run has behind it (a resumed run's; none for a new one).
        let mut history = report::read_history(&out.join("metrics.csv"));
        history.retain(|row| row.epoch <= self.state.epoch);
        while (self.state.epoch as usize) < self.options.epochs {
            let started = Instant::now();
            if self.state.batch == 0 {
                (self.state.loss_sum, self.state.loss_count) = (0.0, 0);
            }
            let step_before = self.state.step;
            self.exchange_seconds = 0.0;
            let done = self.train_epoch(data, on_event)?;
            self.add_losses_over_ranks()?;
            if !done {
                let path = out.join("last.safetensors");
                self.save(&path, on_event)?;
                return Ok(FitEnd::Interrupted(path));
            }
            on_event(Event::Evaluating { epoch: self.state.epoch });
            let val = self.evaluate(&data.val)?;
            let seconds = started.elapsed().as_secs_f64();
            let steps = self.state.step - step_before;
            let stats = EpochStats {
                epoch: self.state.epoch,
                step: self.state.step,
                train_loss: self.state.loss_sum / self.state.loss_count.max(1) as f64,
                lr: self.options.lr_at(self.state.step.saturating_sub(1), self.steps_per_epoch),
                images_per_second: (steps as usize * self.options.batch_size) as f64 / seconds.max(1e-9),
                seconds,
                skipped: data.train.skipped().len(),
                exchange_seconds: self.exchange_seconds,
                val,
            };
            if !stats.val.loss.is_finite() || !stats.train_loss.is_finite() {
                // Diverged: nothing of this epoch is written, the last checkpoint stays.
                return Err(Error::NotFinite {
                    what: format!("epoch {}", stats.epoch + 1),
                    message: format!(
                        "the validation loss is {} ({} of {} images with NaN or infinite logits) and the training loss {}; \
                         training stopped, and the checkpoints of the epochs before it are kept (try a lower --lr)",
                        stats.val.loss, stats.val.non_finite, stats.val.images, stats.train_loss
                    ),
                });
            }
            self.state.epoch += 1;
            self.state.batch = 0;
            let best = stats.val.top1 > self.state.best_top1;
            if best {
                self.state.best_top1 = stats.val.top1;
            }
            history.push(report::Row::from(&stats));
            self.check_weights_agree()?;
            if self.writes_files() {
                report::write(out, &history)?;
                #[cfg(feature = "plot")]
                plot::write(out, &history)?;
            }
            self.save(&out.join("last.safetensors"), on_event)?;
            if best {
                self.save(&out.join("best.safetensors"), on_event)?;
            }
            on_event(Event::Epoch(&stats));
            if let Some(tuner) = self
                .deferred_tuner
                .take()
                .filter(|_| (self.state.epoch as usize) < self.options.epochs)
            {
                on_event(Event::Tuning);
                self.retune(&tuner)?;
                on_event(Event::Tuned);
            }
        }
        Ok(FitEnd::Finished)
    }
}
