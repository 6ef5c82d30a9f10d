//! The per-epoch record of a run: `metrics.csv`, one row per epoch, rewritten atomically after
//! every epoch (and drawn into `metrics.png` with the `plot` feature). A resumed run reads the
//! rows it already has.

use super::EpochStats;
use crate::error::Result;
use crate::io::write_atomic;
use std::path::Path;

/// One line of `metrics.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub epoch: u64,
    pub step: u64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_top1: f64,
    pub val_top5: f64,
    pub lr: f64,
    pub images_per_second: f64,
    pub seconds: f64,
    pub skipped_files: usize,
}

const HEADER: &str = "epoch,step,train_loss,val_loss,val_top1,val_top5,lr,images_per_second,seconds,skipped_files";

impl From<&EpochStats> for Row {
    fn from(s: &EpochStats) -> Row {
        Row {
            epoch: s.epoch + 1,
            step: s.step,
            train_loss: s.train_loss,
            val_loss: s.val.loss,
            val_top1: s.val.top1,
            val_top5: s.val.top5,
            lr: s.lr as f64,
            images_per_second: s.images_per_second,
            seconds: s.seconds,
            skipped_files: s.skipped,
        }
    }
}

/// The rows of an existing `metrics.csv` (none if it is missing or unreadable).
pub fn read_history(path: &Path) -> Vec<Row> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f.get(i)?.parse::<f64>().ok();
            Some(Row {
                epoch: num(0)? as u64,
                step: num(1)? as u64,
                train_loss: num(2)?,
                val_loss: num(3)?,
                val_top1: num(4)?,
                val_top5: num(5)?,
                lr: num(6)?,
                images_per_second: num(7)?,
                seconds: num(8)?,
                skipped_files: num(9)? as usize,
            })
        })
        .collect()
}

/// Writes `out/metrics.csv` for `rows`.
pub fn write(out: &Path, rows: &[Row]) -> Result<()> {
    let mut csv = String::from(HEADER);
    for r in rows {
        csv += &format!(
            "\n{},{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.2},{:.2},{}",
            r.epoch, r.step, r.train_loss, r.val_loss, r.val_top1, r.val_top5, r.lr, r.images_per_second, r.seconds, r.skipped_files
        );
    }
    csv.push('\n');
    write_atomic(&out.join("metrics.csv"), csv.as_bytes())
}
