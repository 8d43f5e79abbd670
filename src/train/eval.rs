//! `signtop eval`: runs a sign model through tract (the code the live monitor
//! uses) over labelled data and reports accuracy, per-class precision and
//! recall, and the confusion matrix.

use std::path::PathBuf;

use anyhow::Context;

use super::data;
use crate::classify::model::{DEFAULT_SIGN_MODEL, SignModel};
use crate::classify::smoothing::argmax;
use crate::pipeline::metrics::Latency;

/// `signtop eval` arguments.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled data: a recording folder or a SignPose prefix.
    #[arg(long, value_name = "DIR_OR_PREFIX")]
    pub data: PathBuf,
    /// The sign model (ONNX with its sidecar .json).
    #[arg(long, value_name = "FILE.onnx", default_value = DEFAULT_SIGN_MODEL)]
    pub model: PathBuf,
    /// Write PNG plots here: training curves (from the model's .train.json)
    /// and the confusion matrix.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
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
    let model = SignModel::load(&args.model)?;
    let data = data::load(&args.data)?;
    anyhow::ensure!(
        data.layout == model.layout() && data.frames() == model.frames(),
        "{} holds {} frames of {} features but the model {} reads {} frames of {}",
        args.data.display(),
        data.frames(),
        data.layout,
        args.model.display(),
        model.frames(),
        model.layout()
    );
    let (confusion, timing) = confusion_of(&model, &data)?;
    println!(
        "{} on {} ({} sequences)\n",
        args.model.display(),
        args.data.display(),
        data.len()
    );
    print!("{}", confusion.table());
    println!("\n{timing}");
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let written = super::plots::write_all(dir, &args.model, &confusion)?;
        for path in written {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
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

/// Predicts every row and counts the results (and times each prediction);
/// the model's labels are matched to the data's by name.
pub fn confusion_of(
    model: &SignModel,
    data: &data::Dataset,
) -> anyhow::Result<(Confusion, WindowTiming)> {
    let to_model: Vec<usize> = data
        .labels
        .iter()
        .map(|l| {
            model.labels().iter().position(|m| m == l).with_context(|| {
                format!(
                    "the data has class {l:?}, the model knows {}",
                    model.labels().join(", ")
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut confusion = Confusion::new(model.labels().to_vec());
    let mut timing = WindowTiming::default();
    for row in 0..data.len() {
        let window = data.row(row);
        let start = std::time::Instant::now();
        let probabilities = model.predict_raw(&window)?;
        timing.latency.record(start.elapsed());
        let (predicted, _) = argmax(&probabilities).with_context(|| {
            format!("the model gave no usable probabilities for sequence {row}: {probabilities:?}")
        })?;
        confusion.add(to_model[data.y[row]], predicted);
    }
    Ok((confusion, timing))
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
