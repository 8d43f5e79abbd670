//! Training and evaluating sign classifiers: `signtop train` and `signtop eval`.

pub mod data;
pub mod eval;
pub mod export;
pub mod net;
pub mod plots;
pub mod trainer;

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::classify::model::{SIDECAR_FORMAT, Sidecar, SignModel};
use data::Dataset;
use trainer::{EpochLog, Prepared, Split, TrainConfig};

/// Largest tract-vs-candle difference accepted after export.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// `signtop train` arguments.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training data: a recording folder (DIR/<class>/<recording>.npy) or a
    /// SignPose prefix such as ../shared/data/signpose/bp_hp6_dev.
    #[arg(long, value_name = "DIR_OR_PREFIX")]
    pub data: PathBuf,
    /// Where to write the ONNX model (the sidecar .json and .train.json go beside it).
    #[arg(long, value_name = "FILE.onnx")]
    pub out: PathBuf,
    /// Maximum epochs.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Seed (weights, shuffling, augmentation, dropout).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Fraction of each class's recordings held out for validation and early
    /// stopping; 0 trains on everything for exactly --epochs.
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,
    /// Instead of one model, run K-fold cross-validation by recording and report it.
    #[arg(long, value_name = "K")]
    pub kfold: Option<usize>,
    /// Train without mirror augmentation.
    #[arg(long)]
    pub no_mirror: bool,
    /// Feed raw MediaPipe coordinates (as SignPose did) instead of body-relative ones.
    #[arg(long)]
    pub raw_features: bool,
}

/// What `signtop train` writes beside the model: how it was made and its curves.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainingLog {
    /// The data it was trained on.
    pub data: String,
    /// Class names.
    pub labels: Vec<String>,
    /// The training settings.
    pub config: TrainConfig,
    /// Validation fraction used.
    pub val_split: f64,
    /// Rows trained on and validated on.
    pub train_rows: usize,
    /// Rows validated on.
    pub val_rows: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Per-epoch figures.
    pub history: Vec<EpochLog>,
    /// Largest |tract - candle| on the check rows after export.
    pub export_max_abs_diff: f32,
}

impl TrainingLog {
    /// The log path for a model path: `NAME.train.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("train.json")
    }
}

/// Runs `signtop train`.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let data = data::load(&args.data)?;
    let config = TrainConfig {
        epochs: args.epochs,
        seed: args.seed,
        mirror: !args.no_mirror,
        preprocessing: if args.raw_features {
            crate::classify::preprocess::Preprocessing::None
        } else {
            crate::classify::preprocess::Preprocessing::BodyRelative
        },
        ..TrainConfig::default()
    };
    anyhow::ensure!(
        (0.0..0.9).contains(&args.val_split),
        "--val-split must be in [0, 0.9), got {}",
        args.val_split
    );
    println!(
        "data: {} sequences of {} frames x {} features, classes: {}",
        data.len(),
        data.frames(),
        data.layout.features(),
        data.labels.join(", ")
    );
    let prepared = Prepared::new(&data, config.preprocessing, config.mirror);
    if let Some(k) = args.kfold {
        return run_kfold(&data, &prepared, &config, k);
    }
    let split = trainer::split_by_recording(&data, args.val_split, config.seed);
    let outcome = train_with_progress(&data, &prepared, &split, &config, "training")?;
    let net = outcome.net;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    export::write_onnx(&net, data.frames(), &args.out)?;
    sidecar_for(&data, &config)
        .save_for(&args.out)
        .with_context(|| format!("writing {}", Sidecar::path_for(&args.out).display()))?;
    let diff = export_parity(&net, &data, &prepared, &args.out)?;
    let log = TrainingLog {
        data: args.data.display().to_string(),
        labels: data.labels.clone(),
        config,
        val_split: args.val_split,
        train_rows: split.train.len(),
        val_rows: split.val.len(),
        best_epoch: outcome.best_epoch,
        history: outcome.history,
        export_max_abs_diff: diff,
    };
    let log_path = TrainingLog::path_for(&args.out);
    std::fs::write(&log_path, serde_json::to_string_pretty(&log)? + "\n")
        .with_context(|| format!("writing {}", log_path.display()))?;
    print_summary(&log, &args.out);
    anyhow::ensure!(
        diff < PARITY_TOLERANCE,
        "the exported model differs from the trained one by {diff:e} (limit {PARITY_TOLERANCE:e})"
    );
    Ok(())
}

fn sidecar_for(data: &Dataset, config: &TrainConfig) -> Sidecar {
    Sidecar {
        format: SIDECAR_FORMAT.to_string(),
        labels: data.labels.clone(),
        features: data.layout.features(),
        frames: data.frames(),
        preprocessing: config.preprocessing,
        input: export::INPUT_NAME.to_string(),
        output: export::OUTPUT_NAME.to_string(),
    }
}

fn train_with_progress(
    data: &Dataset,
    prepared: &Prepared,
    split: &Split,
    config: &TrainConfig,
    title: &str,
) -> anyhow::Result<trainer::TrainOutcome> {
    let bar = ProgressBar::new(config.epochs as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] epoch {pos}/{len} {msg} ({elapsed})")
            .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
            .progress_chars("=> "),
    );
    bar.set_prefix(title.to_string());
    let outcome = trainer::train(data, prepared, split, config, |log| {
        bar.set_position(log.epoch as u64);
        bar.set_message(epoch_message(log));
    })
    .context("training")?;
    bar.finish();
    Ok(outcome)
}

fn epoch_message(log: &EpochLog) -> String {
    let mut msg = format!(
        "loss {:.4} acc {:.1}%",
        log.train_loss,
        100.0 * log.train_accuracy
    );
    if let (Some(l), Some(a)) = (log.val_loss, log.val_accuracy) {
        msg += &format!(" | val loss {l:.4} acc {:.1}%", 100.0 * a);
    }
    msg
}

fn print_summary(log: &TrainingLog, out: &Path) {
    let kept = log.history.get(log.best_epoch.saturating_sub(1));
    println!(
        "trained on {} sequences ({} validated), {} epochs run, kept epoch {}",
        log.train_rows,
        log.val_rows,
        log.history.len(),
        log.best_epoch
    );
    if let Some(e) = kept {
        println!("kept epoch: {}", epoch_message(e));
    }
    println!(
        "wrote {} (+ {}, {}); tract vs candle max |diff| {:.2e}",
        out.display(),
        Sidecar::path_for(out).display(),
        TrainingLog::path_for(out).display(),
        log.export_max_abs_diff
    );
}

/// Reloads the written model with tract (as the monitor does) and compares its
/// probabilities with candle's on up to 32 rows.
fn export_parity(
    net: &net::SignNet,
    data: &Dataset,
    prepared: &Prepared,
    path: &Path,
) -> anyhow::Result<f32> {
    let model = SignModel::load(path)?;
    let rows: Vec<usize> = (0..data.len()).step_by((data.len() / 32).max(1)).collect();
    let candle_probs = net.probabilities(&prepared.batch(&rows, &[])?)?;
    let candle_probs: Vec<Vec<f32>> = candle_probs.to_vec2()?;
    let mut max = 0.0f32;
    for (row, expected) in rows.iter().zip(candle_probs) {
        let got = model.predict_raw(&data.row(*row))?;
        for (a, b) in got.iter().zip(expected) {
            max = max.max((a - b).abs());
        }
    }
    Ok(max)
}

fn run_kfold(
    data: &Dataset,
    prepared: &Prepared,
    config: &TrainConfig,
    k: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(k >= 2, "--kfold needs at least 2 folds, got {k}");
    let folds = trainer::kfold_by_recording(data, k, config.seed);
    let mut correct = 0.0f64;
    let mut total = 0usize;
    let mut per_fold = Vec::new();
    for (i, fold) in folds.iter().enumerate() {
        // Early stopping needs its own validation rows: hold some out of the
        // training folds, never the test fold.
        let inner = inner_split(data, fold, config.seed);
        let outcome = train_with_progress(
            data,
            prepared,
            &inner,
            config,
            &format!("fold {}/{k}", i + 1),
        )?;
        let (_, accuracy) = trainer::evaluate(&outcome.net, data, prepared, &fold.val)?;
        println!(
            "fold {}: {:.2}% on {} held-out sequences (kept epoch {})",
            i + 1,
            100.0 * accuracy,
            fold.val.len(),
            outcome.best_epoch
        );
        correct += f64::from(accuracy) * fold.val.len() as f64;
        total += fold.val.len();
        per_fold.push(accuracy);
    }
    let mean = correct / total.max(1) as f64;
    println!(
        "{k}-fold cross-validation by recording: {:.2}% ({} sequences; folds {})",
        100.0 * mean,
        total,
        per_fold
            .iter()
            .map(|a| format!("{:.1}%", 100.0 * a))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Splits a fold's training rows again (by recording) for early stopping.
fn inner_split(data: &Dataset, fold: &Split, seed: u64) -> Split {
    let subset = data.subset(&fold.train);
    let inner = trainer::split_by_recording(&subset, 0.15, seed.wrapping_add(7));
    Split {
        train: inner.train.iter().map(|&i| fold.train[i]).collect(),
        val: inner.val.iter().map(|&i| fold.train[i]).collect(),
    }
}
