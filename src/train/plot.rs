//! `metrics.png`: the training and validation loss, and the validation top-1 and top-5,
//! against the epoch, drawn with plotters and its embedded font (the `plot` feature).

use super::report::Row;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use plotters::prelude::*;
use std::path::Path;

/// Draws `rows` into `out/metrics.png` (atomically).
pub(super) fn write(out: &Path, rows: &[Row]) -> Result<()> {
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
