//! The per-epoch record of a run: `metrics.csv` (one row per epoch) and `metrics.png` (the
//! training and validation loss, and the validation top-1 and top-5, against the epoch), both
//! rewritten atomically after every epoch. A resumed run reads the rows it already has.

use super::EpochStats;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use plotters::prelude::*;
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

/// Writes `out/metrics.csv` and `out/metrics.png` for `rows`.
pub fn write(out: &Path, rows: &[Row]) -> Result<()> {
    let mut csv = String::from(HEADER);
    for r in rows {
        csv += &format!(
            "\n{},{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.2},{:.2},{}",
            r.epoch, r.step, r.train_loss, r.val_loss, r.val_top1, r.val_top5, r.lr, r.images_per_second, r.seconds, r.skipped_files
        );
    }
    csv.push('\n');
    write_atomic(&out.join("metrics.csv"), csv.as_bytes())?;
    let png = plot(rows).map_err(|e| Error::invalid("plot", e))?;
    write_atomic(&out.join("metrics.png"), &png)
}

const SIZE: (u32, u32) = (960, 400);

/// Registers the embedded font once (plotters draws text with it; no system fonts needed).
fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// One half of the plot: two curves (lines with a dot per epoch) against the epoch, with a
/// legend at `legend`.
fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    caption: &str,
    epochs: f64,
    y_max: f64,
    curves: [(&str, RGBColor, Vec<(f64, f64)>); 2],
    legend: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..epochs, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, color, data) in curves {
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// The curves as a PNG file's bytes.
fn plot(rows: &[Row]) -> std::result::Result<Vec<u8>, String> {
    font();
    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        let epochs = rows.last().map_or(1, |r| r.epoch).max(1) as f64;
        let max_loss = rows
            .iter()
            .flat_map(|r| [r.train_loss, r.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;
        let series = |get: fn(&Row) -> f64| rows.iter().map(move |r| (r.epoch as f64, get(r))).collect::<Vec<_>>();

        let loss = [
            ("train", BLUE, series(|r| r.train_loss)),
            ("validation", RED, series(|r| r.val_loss)),
        ];
        panel(&left, "loss", epochs, max_loss, loss, SeriesLabelPosition::MiddleRight)?;
        let accuracy = [("top-1", GREEN, series(|r| r.val_top1)), ("top-5", MAGENTA, series(|r| r.val_top5))];
        panel(
            &right,
            "validation accuracy",
            epochs,
            1.0,
            accuracy,
            SeriesLabelPosition::LowerRight,
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    let image = image::RgbImage::from_raw(SIZE.0, SIZE.1, pixels).ok_or("plot buffer size")?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(png)
}
