//! `signtop eval`: runs a sign model through tract (the code the live monitor
//! uses) over every window of labelled recordings, source by source, and
//! reports accuracy, per-class precision and recall, and the confusion matrix.

use std::path::PathBuf;

use anyhow::Context;

use super::augment::all_windows;
use super::data;
use crate::classify::model::{BUILT_IN_NAME, DEFAULT_SIGN_MODEL, SignModel};
use crate::classify::smoothing::argmax;
use crate::pipeline::metrics::Latency;

/// `signtop eval` arguments.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled data, one or more: recording folders or SignPose prefixes.
    /// Each is reported on its own line, then all together. Classes the model
    /// does not know are skipped (and said); a 1662 source is cut to 258 for
    /// a 258 model.
    #[arg(long, value_name = "DIR_OR_PREFIX", num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// The sign model (ONNX with its sidecar .json); default: the built-in one.
    #[arg(long, value_name = "FILE.onnx")]
    pub model: Option<PathBuf>,
    /// Write PNG plots here: training curves (from the model's .train.json)
    /// and the confusion matrix.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Also print every window's prediction (recording, first frame, top class
    /// and its probability): where in a clip the model goes wrong.
    #[arg(long)]
    pub windows: bool,
}

/// Counts of true class (rows) against predicted class (columns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    /// Class names.
    pub labels: Vec<String>,
    /// counts[true][predicted].
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// An empty matrix over `labels`.
    pub fn new(labels: Vec<String>) -> Confusion {
        let n = labels.len();
        Confusion {
            labels,
            counts: vec![vec![0; n]; n],
        }
    }

    /// Counts one prediction.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// Adds another matrix over the same labels.
    pub fn merge(&mut self, other: &Confusion) {
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (c, o) in row.iter_mut().zip(other_row) {
                *c += o;
            }
        }
    }

    /// Fraction of all predictions that were right.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.counts.iter().flatten().sum();
        let right: usize = (0..self.labels.len()).map(|i| self.counts[i][i]).sum();
        right as f64 / total.max(1) as f64
    }

    /// Of the rows predicted as `class`, the fraction that were.
    pub fn precision(&self, class: usize) -> Option<f64> {
        let predicted: usize = self.counts.iter().map(|row| row[class]).sum();
        (predicted > 0).then(|| self.counts[class][class] as f64 / predicted as f64)
    }

    /// Of the rows that were `class`, the fraction predicted as such.
    pub fn recall(&self, class: usize) -> Option<f64> {
        let actual: usize = self.counts[class].iter().sum();
        (actual > 0).then(|| self.counts[class][class] as f64 / actual as f64)
    }

    /// The report: accuracy, per-class precision/recall, the matrix.
    pub fn table(&self) -> String {
        let width = self
            .labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(5)
            .max(9);
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let mut out = format!("accuracy {:.2}%\n\n", 100.0 * self.accuracy());
        out += &format!(
            "{:<width$}  {:>9}  {:>9}  {:>7}\n",
            "class", "precision", "recall", "rows"
        );
        for (i, label) in self.labels.iter().enumerate() {
            let rows: usize = self.counts[i].iter().sum();
            out += &format!(
                "{label:<width$}  {:>9}  {:>9}  {rows:>7}\n",
                pct(self.precision(i)),
                pct(self.recall(i))
            );
        }
        out += &format!(
            "\nconfusion matrix (rows: true class, columns: predicted)\n{:<width$}",
            ""
        );
        let col = self
            .labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(3)
            .max(3);
        for label in &self.labels {
            out += &format!("  {label:>col$}");
        }
        out += "\n";
        for (i, label) in self.labels.iter().enumerate() {
            out += &format!("{label:<width$}");
            for count in &self.counts[i] {
                out += &format!("  {count:>col$}");
            }
            out += "\n";
        }
        out
    }
}

/// Runs `signtop eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let model = match &args.model {
        Some(path) => SignModel::load(path)?,
        None => SignModel::built_in(crate::landmarks::keypoints::Layout::PoseHands)?,
    };
    let name = args
        .model
        .as_ref()
        .map_or_else(|| BUILT_IN_NAME.to_string(), |p| p.display().to_string());
    println!(
        "{}: {} classes ({}), {} frames over {:.1} s, layout {}\n",
        name,
        model.labels().len(),
        model.labels().join(", "),
        model.frames(),
        model.sidecar().span().as_secs_f64(),
        model.layout()
    );
    let report = score_sources(&model, &args.data, args.windows)?;
    print!("{}", report.lines());
    println!();
    print!("{}", report.total.table());
    println!("\n{}", report.timing);
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = args
            .model
            .as_deref()
            .unwrap_or(std::path::Path::new(DEFAULT_SIGN_MODEL));
        let written = super::plots::write_all(dir, log, &report.total)?;
        for path in written {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// One source's result.
#[derive(Clone, Debug)]
pub struct SourceScore {
    /// The source as given.
    pub source: String,
    /// Its windows' predictions.
    pub confusion: Confusion,
    /// Recordings scored.
    pub recordings: usize,
    /// Classes of the source that the model does not know, with how many
    /// recordings of each were skipped.
    pub skipped: Vec<(String, usize)>,
}

impl SourceScore {
    /// One line: accuracy, windows, recordings, skipped classes.
    pub fn line(&self) -> String {
        let windows: usize = self.confusion.counts.iter().flatten().sum();
        let mut line = format!(
            "{}: {:.2}% of {windows} windows ({} recordings)",
            self.source,
            100.0 * self.confusion.accuracy(),
            self.recordings
        );
        if !self.skipped.is_empty() {
            let skipped: Vec<String> = self
                .skipped
                .iter()
                .map(|(label, n)| format!("{label} ({n})"))
                .collect();
            line += &format!(
                "; skipped, not classes of the model: {}",
                skipped.join(", ")
            );
        }
        line
    }
}

/// Every source's result, their sum and the model's speed.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per source, in the order given.
    pub sources: Vec<SourceScore>,
    /// All windows of all sources.
    pub total: Confusion,
    /// Time per window.
    pub timing: WindowTiming,
}

impl Report {
    /// A line per source, then the total when there are several.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for s in &self.sources {
            out += &s.line();
            out += "\n";
        }
        if self.sources.len() > 1 {
            let windows: usize = self.total.counts.iter().flatten().sum();
            out += &format!(
                "total: {:.2}% of {windows} windows\n",
                100.0 * self.total.accuracy()
            );
        }
        out
    }
}

/// Scores `model` on every window of every source, each source on its own.
/// With `list`, each window's prediction is printed as it is made.
pub fn score_sources(model: &SignModel, specs: &[PathBuf], list: bool) -> anyhow::Result<Report> {
    let mut total = Confusion::new(model.labels().to_vec());
    let mut timing = WindowTiming::default();
    let mut sources = Vec::new();
    for spec in specs {
        let data = data::load_all(std::slice::from_ref(spec), Some(model.layout()))
            .with_context(|| format!("reading {} for {}", spec.display(), model_name(model)))?;
        let score = score_dataset(model, &data, &mut timing, list)?;
        total.merge(&score.confusion);
        sources.push(score);
    }
    Ok(Report {
        sources,
        total,
        timing,
    })
}

fn model_name(model: &SignModel) -> String {
    format!("a model of {} classes", model.labels().len())
}

/// Scores every window of `data` (one source) and times each prediction.
pub fn score_dataset(
    model: &SignModel,
    data: &data::Dataset,
    timing: &mut WindowTiming,
    list: bool,
) -> anyhow::Result<SourceScore> {
    let source = data.sources.join(", ");
    let to_model: Vec<Option<usize>> = data
        .labels
        .iter()
        .map(|l| model.labels().iter().position(|m| m == l))
        .collect();
    anyhow::ensure!(
        to_model.iter().any(Option::is_some),
        "{source}: none of its classes ({}) is a class of the model ({})",
        data.labels.join(", "),
        model.labels().join(", ")
    );
    let interval = model.sidecar().span().as_secs_f64() / model.frames() as f64;
    let mut confusion = Confusion::new(model.labels().to_vec());
    let mut skipped: Vec<(String, usize)> = Vec::new();
    let mut recordings = 0;
    for recording in &data.recordings {
        let Some(truth) = to_model[recording.label] else {
            let label = &data.labels[recording.label];
            match skipped.iter_mut().find(|(l, _)| l == label) {
                Some((_, n)) => *n += 1,
                None => skipped.push((label.clone(), 1)),
            }
            continue;
        };
        let frames = recording.at_interval(interval);
        let windows = all_windows(&frames, model.frames());
        anyhow::ensure!(
            !windows.is_empty(),
            "{}: {} frames, shorter than the model's window of {} frames ({:.1} s)",
            recording.name,
            frames.nrows(),
            model.frames(),
            model.sidecar().span().as_secs_f64()
        );
        recordings += 1;
        for (first, window) in windows.into_iter().enumerate() {
            let start = std::time::Instant::now();
            let probabilities = model.predict_raw(&window)?;
            timing.latency.record(start.elapsed());
            let (predicted, p) = argmax(&probabilities).with_context(|| {
                format!(
                    "{}: the model gave no usable probabilities: {probabilities:?}",
                    recording.name
                )
            })?;
            if list {
                let mark = if predicted == truth { "" } else { "  <- wrong" };
                println!(
                    "{} frame {first}: {} {:.2}{mark}",
                    recording.name,
                    model.labels()[predicted],
                    p
                );
            }
            confusion.add(truth, predicted);
        }
    }
    Ok(SourceScore {
        source,
        confusion,
        recordings,
        skipped,
    })
}

/// Time per window of the model on tract (preprocessing included).
#[derive(Clone, Debug, Default)]
pub struct WindowTiming {
    latency: Latency,
}

impl std::fmt::Display for WindowTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.latency.percentiles();
        write!(
            f,
            "speed: {:.3} / {:.3} / {:.3} ms per window (p50 / p95 / p99 over {} windows, one thread)",
            p.p50, p.p95, p.p99, p.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall_and_table() {
        let mut c = Confusion::new(vec!["Cow".into(), "Bird".into()]);
        c.add(0, 0);
        c.add(0, 0);
        c.add(0, 1);
        c.add(1, 1);
        assert!((c.accuracy() - 0.75).abs() < 1e-9);
        assert_eq!(c.precision(1), Some(0.5));
        assert_eq!(c.recall(0), Some(2.0 / 3.0));
        let table = c.table();
        assert!(table.contains("accuracy 75.00%"), "{table}");
        assert!(table.contains("Cow"), "{table}");
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), Some((1, 0.7)));
    }
}
