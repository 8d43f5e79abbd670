//! PNG plots for `signtop eval --plots`: training curves from the model's
//! `.train.json` and a confusion-matrix heat map, drawn with plotters.
//!
//! Text needs a TrueType font: DejaVu Sans (Debian `fonts-dejavu-core`) is
//! read at run time, so nothing is compiled in and no fontconfig is needed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::TrainingLog;
use super::eval::Confusion;
use super::trainer::EpochLog;

/// Where DejaVu Sans lives on Debian and its derivatives.
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];
const FONT: &str = "sans-serif";

/// Writes the confusion matrix, and the training curves when the model has a
/// training log; returns the files written.
pub fn write_all(dir: &Path, model: &Path, confusion: &Confusion) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    let mut written = Vec::new();
    let matrix = dir.join("confusion_matrix.png");
    confusion_png(confusion, &matrix)?;
    written.push(matrix);
    let log_path = TrainingLog::path_for(model);
    if log_path.is_file() {
        let text = std::fs::read_to_string(&log_path)
            .with_context(|| format!("reading {}", log_path.display()))?;
        let log: TrainingCurves = serde_json::from_str(&text)
            .with_context(|| format!("reading training log {}", log_path.display()))?;
        for (metric, file) in [
            (Metric::Accuracy, "accuracy.png"),
            (Metric::Loss, "loss.png"),
        ] {
            let path = dir.join(file);
            curves_png(&log, metric, &path)?;
            written.push(path);
        }
    } else {
        tracing::info!(path = %log_path.display(), "no training log: no curves");
    }
    Ok(written)
}

fn register_font() -> anyhow::Result<()> {
    let path = FONT_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "plots need the DejaVu Sans font ({}): install the Debian package fonts-dejavu-core",
                FONT_PATHS[0]
            )
        })?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // plotters keeps fonts for the life of the program.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a usable TrueType font", path.display()))
}

#[derive(Clone, Copy)]
enum Metric {
    Accuracy,
    Loss,
}

/// The part of a training log the curves need (older logs' settings differ).
#[derive(serde::Deserialize)]
struct TrainingCurves {
    history: Vec<EpochLog>,
}

fn curves_png(log: &TrainingCurves, metric: Metric, path: &Path) -> anyhow::Result<()> {
    let pick = |e: &super::trainer::EpochLog| match metric {
        Metric::Accuracy => (Some(e.train_accuracy), e.val_accuracy),
        Metric::Loss => (Some(e.train_loss), e.val_loss),
    };
    let train: Vec<(f32, f32)> = log
        .history
        .iter()
        .filter_map(|e| pick(e).0.map(|v| (e.epoch as f32, v)))
        .collect();
    let val: Vec<(f32, f32)> = log
        .history
        .iter()
        .filter_map(|e| pick(e).1.map(|v| (e.epoch as f32, v)))
        .collect();
    let (name, y_max) = match metric {
        Metric::Accuracy => ("accuracy", 1.0f32),
        Metric::Loss => (
            "loss",
            train.iter().chain(&val).map(|p| p.1).fold(0.1f32, f32::max) * 1.05,
        ),
    };
    let epochs = log.history.len().max(2) as f32;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    let draw_err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("training {name} by epoch"), (FONT, 24))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(1f32..epochs, 0f32..y_max)
        .map_err(|e| draw_err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(name)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| draw_err(&e))?;
    chart
        .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
        .map_err(|e| draw_err(&e))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val, RED.stroke_width(2)))
            .map_err(|e| draw_err(&e))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(&e))?;
    root.present().map_err(|e| draw_err(&e))
}

fn confusion_png(confusion: &Confusion, path: &Path) -> anyhow::Result<()> {
    let n = confusion.labels.len();
    let cell: i32 = 90;
    let (left, top): (i32, i32) = (140, 70);
    let side = |margin: i32, extra: i32| (margin + cell * n as i32 + extra) as u32;
    let size = (side(left, 20), side(top, 60));
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let draw_err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    root.draw(&Text::new(
        "confusion matrix (rows: true, columns: predicted)",
        (10, 15),
        (FONT, 18),
    ))
    .map_err(|e| draw_err(&e))?;
    for (i, row) in confusion.counts.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (j, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            let shade = (255.0 * (1.0 - share)) as u8;
            let x0 = left + cell * j as i32;
            let y0 = top + cell * i as i32;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                RGBColor(shade, shade, 255).filled(),
            ))
            .map_err(|e| draw_err(&e))?;
            let colour = if share > 0.5 { WHITE } else { BLACK };
            root.draw(&Text::new(
                count.to_string(),
                (x0 + cell / 2 - 8, y0 + cell / 2 - 8),
                (FONT, 18).into_font().color(&colour),
            ))
            .map_err(|e| draw_err(&e))?;
        }
    }
    for (i, label) in confusion.labels.iter().enumerate() {
        let y = top + cell * i as i32 + cell / 2 - 8;
        root.draw(&Text::new(label.clone(), (10, y), (FONT, 15)))
            .map_err(|e| draw_err(&e))?;
        let x = left + cell * i as i32 + 4;
        root.draw(&Text::new(
            label.clone(),
            (x, top + cell * n as i32 + 10),
            (FONT, 13),
        ))
        .map_err(|e| draw_err(&e))?;
    }
    root.present().map_err(|e| draw_err(&e))
}
