//! Training and evaluating sign classifiers: `signtop train` and `signtop eval`.

pub mod augment;
pub mod data;
pub mod eval;
pub mod export;
pub mod import;
pub mod net;
pub mod plots;
pub mod trainer;

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::classify::model::{SIDECAR_FORMAT, Sidecar, SignModel};
use crate::classify::preprocess::Preprocessing;
use crate::landmarks::keypoints::Layout;
use data::Dataset;
use net::NetConfig;
use trainer::{EpochLog, Prepared, Split, TrainConfig};

/// Learning rate when adapting a trained model (`--from`).
const ADAPT_LEARNING_RATE: f64 = 5e-4;

/// Epochs when adapting (`--from`): a few takes a class overfit with more
/// (models/README.md, "Few takes").
const ADAPT_EPOCHS: usize = 40;

/// `--anchor` when adapting: each step pulls the weights 10 x 5e-4 = 0.5% of
/// the way back to the model's (models/README.md: 95.35% over 8 seeds with 5
/// takes a class, against 89.89% without; worse with 1 or 3 takes).
const ADAPT_ANCHOR: f64 = 10.0;

/// Largest tract-vs-candle difference accepted after export.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// The network to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Architecture {
    /// Temporal convolutions with max and mean pooling over the window (default).
    Conv,
    /// SignPose's stacked LSTMs (64, 128, 64).
    Lstm,
}

/// What the model reads per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FeaturesArg {
    /// Body position and hand shapes (default; holds across sessions).
    HandShapes,
    /// Every keypoint, centred on the shoulders and scaled by their width.
    BodyRelative,
    /// Raw MediaPipe coordinates, as SignPose fed them.
    Raw,
}

/// Layers `--from` leaves untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Freeze {
    /// Train every layer.
    None,
    /// Keep the per-frame embedding (the first layer).
    Embed,
    /// Keep everything before the dense head (embedding and convolutions, or the LSTMs).
    Trunk,
}

impl Freeze {
    /// Variable-name prefixes of the frozen layers.
    fn prefixes(self, net: &NetConfig) -> Vec<String> {
        match (self, net) {
            (Freeze::None, _) => Vec::new(),
            (Freeze::Embed, NetConfig::Conv { .. }) => vec![net::EMBED.to_string()],
            (Freeze::Embed, NetConfig::Lstm { .. }) => vec![net::lstm_name(0)],
            (Freeze::Trunk, NetConfig::Conv { conv, .. }) => {
                std::iter::once(net::EMBED.to_string())
                    .chain((0..conv.len()).map(net::conv_name))
                    .collect()
            }
            (Freeze::Trunk, NetConfig::Lstm { lstm, .. }) => {
                (0..lstm.len()).map(net::lstm_name).collect()
            }
        }
    }
}

/// `signtop train` arguments.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training data, one or more sources merged by class name: recording
    /// folders (DIR/<class>/<recording>.npy) or SignPose prefixes such as
    /// ../shared/data/signpose/bp_hp6_dev.
    #[arg(long, value_name = "DIR_OR_PREFIX", num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// After training, score the model on these sources too, each on its own
    /// line (e.g. another session: a leave-one-session-out figure).
    #[arg(long, value_name = "DIR_OR_PREFIX", num_args = 1..)]
    pub test_data: Vec<PathBuf>,
    /// Where to write the ONNX model (the sidecar .json and .train.json go beside it).
    #[arg(long, value_name = "FILE.onnx")]
    pub out: PathBuf,
    /// Keypoint layout of the model (default: 258 if any source is 258, else 1662).
    #[arg(long)]
    pub layout: Option<Layout>,
    /// The network.
    #[arg(long, value_enum, default_value_t = Architecture::Conv)]
    pub arch: Architecture,
    /// What the model reads per frame.
    #[arg(long, value_enum, default_value_t = FeaturesArg::HandShapes)]
    pub features: FeaturesArg,
    /// Maximum epochs [default: 120, or 40 with --from].
    #[arg(long)]
    pub epochs: Option<usize>,
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
    /// Train without mirrored windows.
    #[arg(long)]
    pub no_mirror: bool,
    /// Train at the recorded pace only (no time resampling).
    #[arg(long)]
    pub no_pace: bool,
    /// Train without runs of lost hands and poses.
    #[arg(long)]
    pub no_loss: bool,
    /// Train without framing changes (scale, aspect, shift, rotation).
    #[arg(long)]
    pub no_framing: bool,
    /// Start from this model's weights (an ONNX file `signtop train` wrote,
    /// or `built-in` for the sign model built into signtop, for --layout)
    /// and adapt it to --data; classes the data adds get new outputs. Its
    /// features, frames and span are kept. Adapting defaults to 40 epochs at
    /// learning rate 5e-4 with --anchor 10, the best measured with 5 takes a
    /// sign (models/README.md).
    #[arg(long, value_name = "FILE.onnx")]
    pub from: Option<PathBuf>,
    /// AdamW learning rate (default 2e-3, or 5e-4 with --from).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// With --from: layers kept as the model has them (default: none).
    #[arg(long, value_enum, requires = "from")]
    pub freeze: Option<Freeze>,
    /// With --from: after each step, pull every trained weight back towards
    /// the model's value by this times the learning rate (default 10; 0 lets
    /// the weights go where the takes lead).
    #[arg(long, value_name = "RATE", requires = "from")]
    pub anchor: Option<f64>,
    /// Train on only the first K recordings of each class (in the order
    /// given) and score the model on the rest: how few takes suffice.
    #[arg(long, value_name = "K")]
    pub takes: Option<usize>,
}

impl TrainArgs {
    /// The training settings these arguments ask for.
    pub fn config(&self) -> TrainConfig {
        let defaults = TrainConfig::default();
        let mut augment = defaults.augment.clone();
        if self.no_mirror {
            augment.mirror = false;
        }
        if self.no_pace {
            augment.pace = (1.0, 1.0);
        }
        if self.no_loss {
            augment.hand_loss = 0.0;
            augment.pose_loss = 0.0;
        }
        if self.no_framing {
            augment.rotation_deg = 0.0;
            augment.scale = 0.0;
            augment.aspect = 0.0;
            augment.shift = 0.0;
        }
        let adapting = self.from.is_some();
        let learning_rate = self.learning_rate.unwrap_or(if adapting {
            ADAPT_LEARNING_RATE
        } else {
            defaults.learning_rate
        });
        TrainConfig {
            epochs: self.epochs.unwrap_or(if adapting {
                ADAPT_EPOCHS
            } else {
                defaults.epochs
            }),
            seed: self.seed,
            learning_rate,
            preprocessing: match self.features {
                FeaturesArg::HandShapes => Preprocessing::HandShapes,
                FeaturesArg::BodyRelative => Preprocessing::BodyRelative,
                FeaturesArg::Raw => Preprocessing::None,
            },
            net: match self.arch {
                Architecture::Conv => NetConfig::temporal_conv(),
                Architecture::Lstm => NetConfig::signpose_lstm(),
            },
            augment,
            adapt: trainer::AdaptConfig {
                frozen: Vec::new(),
                anchor: self
                    .anchor
                    .unwrap_or(if adapting { ADAPT_ANCHOR } else { 0.0 }),
            },
            ..defaults
        }
    }
}

/// What `signtop train` writes beside the model: how it was made and its curves.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainingLog {
    /// The data it was trained on.
    pub data: Vec<String>,
    /// Class names.
    pub labels: Vec<String>,
    /// The training settings.
    pub config: TrainConfig,
    /// Validation fraction used.
    pub val_split: f64,
    /// Recordings trained on.
    pub train_rows: usize,
    /// Recordings validated on.
    pub val_rows: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Per-epoch figures.
    pub history: Vec<EpochLog>,
    /// Largest |tract - candle| on the check windows after export.
    pub export_max_abs_diff: f32,
    /// Seconds the training took.
    pub seconds: f64,
}

impl TrainingLog {
    /// The log path for a model path: `NAME.train.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("train.json")
    }
}

/// The `--from` value that names the sign model built into signtop.
pub const BUILT_IN_FROM: &str = "built-in";

/// When `from` is [`BUILT_IN_FROM`]: the built-in sign model's layout
/// (`layout`, 258 unless given) and its ONNX bytes.
fn built_in_base(from: &Path, layout: Option<Layout>) -> Option<(Layout, &'static [u8])> {
    (from == Path::new(BUILT_IN_FROM)).then(|| {
        let layout = layout.unwrap_or(Layout::PoseHands);
        let onnx = match layout {
            Layout::PoseHands => crate::classify::model::BUILT_IN_ONNX,
            Layout::PoseFaceHands => crate::classify::model::BUILT_IN_ONNX_1662,
        };
        (layout, onnx)
    })
}

/// Runs `signtop train`.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let built_in = args
        .from
        .as_deref()
        .and_then(|m| built_in_base(m, args.layout));
    let base = match (&args.from, built_in) {
        (_, Some((layout, _))) => Some(SignModel::built_in(layout)?),
        (Some(path), None) => Some(SignModel::load(path)?),
        (None, None) => None,
    };
    let layout = base.as_ref().map(SignModel::layout).or(args.layout);
    let mut data = data::load_all(&args.data, layout)?;
    let mut config = args.config();
    if let Some(base) = &base {
        adopt_base(&mut config, &mut data, base)?;
    }
    let held_back = match args.takes {
        Some(k) => Some(keep_first_takes(&mut data, k)?),
        None => None,
    };
    let pull = config.adapt.anchor * config.learning_rate;
    anyhow::ensure!(
        (0.0..1.0).contains(&pull),
        "--anchor {} x learning rate {} must be at least 0 and below 1 (the share of the way back each step)",
        config.adapt.anchor,
        config.learning_rate
    );
    anyhow::ensure!(
        (0.0..0.9).contains(&args.val_split),
        "--val-split must be in [0, 0.9), got {}",
        args.val_split
    );
    anyhow::ensure!(
        data.labels.len() >= 2,
        "{}: {} class(es) ({}): a classifier needs at least two",
        data.sources.join(", "),
        data.labels.len(),
        data.labels.join(", ")
    );
    print_data(&data);
    let prepared = Prepared::new(&data, &config);
    check_lengths(&data, &prepared, &config)?;
    if let Some(k) = args.kfold {
        return run_kfold(&data, &prepared, &config, k);
    }
    let split = trainer::split_by_recording(&data, args.val_split, config.seed);
    let (features, classes) = (prepared.model_features(), data.labels.len());
    let (dropout, seed) = (config.net.dropout(), config.seed);
    let start_net = match &args.from {
        Some(path) => Some(match built_in {
            Some((_, bytes)) => {
                import::net_from_onnx_bytes(path, bytes, features, classes, dropout, seed)?
            }
            None => import::net_from_onnx(path, features, classes, dropout, seed)?,
        }),
        None => None,
    };
    if let Some(net) = &start_net {
        config.adapt.frozen = args.freeze.unwrap_or(Freeze::None).prefixes(net.config());
        config.net = net.config().clone();
    }
    let outcome = train_with_progress(&data, &prepared, &split, &config, start_net, "training")?;
    let net = outcome.net;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    export::write_onnx(&net, config.frames, &args.out)?;
    sidecar_for(&data, &config)
        .save_for(&args.out)
        .with_context(|| format!("writing {}", Sidecar::path_for(&args.out).display()))?;
    let diff = export_parity(&net, &data, &prepared, &args.out)?;
    let log = TrainingLog {
        data: data.sources.clone(),
        labels: data.labels.clone(),
        config,
        val_split: args.val_split,
        train_rows: split.train.len(),
        val_rows: split.val.len(),
        best_epoch: outcome.best_epoch,
        history: outcome.history,
        export_max_abs_diff: diff,
        seconds: started.elapsed().as_secs_f64(),
    };
    let log_path = TrainingLog::path_for(&args.out);
    std::fs::write(&log_path, serde_json::to_string_pretty(&log)? + "\n")
        .with_context(|| format!("writing {}", log_path.display()))?;
    print_summary(&log, &args.out);
    anyhow::ensure!(
        diff < PARITY_TOLERANCE,
        "the exported model differs from the trained one by {diff:e} (limit {PARITY_TOLERANCE:e})"
    );
    if let Some(rest) = &held_back {
        let model = SignModel::load(&args.out)?;
        let mut timing = eval::WindowTiming::default();
        let score = eval::score_dataset(&model, rest, &mut timing, false)?;
        println!("\nthe other takes of the training data (every window, through tract):");
        println!("{}", score.line());
    }
    if !args.test_data.is_empty() {
        let model = SignModel::load(&args.out)?;
        let report = eval::score_sources(&model, &args.test_data, false)?;
        println!("\ntested on other data (every window, through tract):");
        print!("{}", report.lines());
    }
    Ok(())
}

/// Training from `base`: its window and features, its classes first (in its
/// output order), then the classes the data adds.
fn adopt_base(
    config: &mut TrainConfig,
    data: &mut Dataset,
    base: &SignModel,
) -> anyhow::Result<()> {
    let sidecar = base.sidecar();
    config.preprocessing = sidecar.preprocessing;
    config.frames = sidecar.frames;
    config.span_seconds = sidecar.span().as_secs_f64();
    let mut labels = base.labels().to_vec();
    for label in &data.labels {
        if !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    let added = labels.len() - base.labels().len();
    if added > 0 {
        println!(
            "adding {added} class(es) to the model's {}: {}",
            base.labels().len(),
            labels[base.labels().len()..].join(", ")
        );
    }
    *data = data.with_labels(labels);
    Ok(())
}

/// Keeps the first `k` recordings of each class; returns the others.
fn keep_first_takes(data: &mut Dataset, k: usize) -> anyhow::Result<Dataset> {
    anyhow::ensure!(k >= 1, "--takes needs at least 1 recording a class");
    let mut seen = vec![0usize; data.labels.len()];
    let (mut kept, mut rest) = (Vec::new(), Vec::new());
    for (i, r) in data.recordings.iter().enumerate() {
        seen[r.label] += 1;
        if seen[r.label] <= k {
            kept.push(i);
        } else {
            rest.push(i);
        }
    }
    anyhow::ensure!(
        !rest.is_empty(),
        "--takes {k}: no recordings are left to score"
    );
    let held_back = data.subset(&rest);
    *data = data.subset(&kept);
    println!(
        "--takes {k}: training on {} recordings, scoring the other {}",
        kept.len(),
        rest.len()
    );
    Ok(held_back)
}

fn print_data(data: &Dataset) {
    println!(
        "data: {} recordings, layout {}, classes: {}",
        data.len(),
        data.layout,
        data.labels.join(", ")
    );
    if data.sources.len() > 1 {
        for (i, source) in data.sources.iter().enumerate() {
            println!("  {source}: {} recordings", data.rows_of_source(i).len());
        }
    }
}

/// Every recording must hold at least one window once at the model's rate.
fn check_lengths(data: &Dataset, prepared: &Prepared, config: &TrainConfig) -> anyhow::Result<()> {
    for (row, recording) in data.recordings.iter().enumerate() {
        let frames = prepared.recording(row).nrows();
        anyhow::ensure!(
            frames >= config.frames,
            "{}: {frames} frames at the model's {:.1} frames a second, shorter than its window of {} frames ({:.1} s)",
            recording.name,
            1.0 / config.frame_interval(),
            config.frames,
            config.span_seconds
        );
    }
    Ok(())
}

fn sidecar_for(data: &Dataset, config: &TrainConfig) -> Sidecar {
    Sidecar {
        format: SIDECAR_FORMAT.to_string(),
        labels: data.labels.clone(),
        features: data.layout.features(),
        frames: config.frames,
        preprocessing: config.preprocessing,
        span_seconds: Some(config.span_seconds),
        input: export::INPUT_NAME.to_string(),
        output: export::OUTPUT_NAME.to_string(),
    }
}

fn train_with_progress(
    data: &Dataset,
    prepared: &Prepared,
    split: &Split,
    config: &TrainConfig,
    start: Option<net::SignNet>,
    title: &str,
) -> anyhow::Result<trainer::TrainOutcome> {
    let bar = ProgressBar::new(config.epochs as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] epoch {pos}/{len} {msg} ({elapsed})")
            .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
            .progress_chars("=> "),
    );
    bar.set_prefix(title.to_string());
    let on_epoch = |log: &EpochLog| {
        bar.set_position(log.epoch as u64);
        bar.set_message(epoch_message(log));
    };
    let outcome = match start {
        Some(net) => trainer::train_from(net, prepared, split, config, on_epoch),
        None => trainer::train(data, prepared, split, config, on_epoch),
    }
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
        "trained on {} recordings ({} validated), {} epochs run, kept epoch {}, {:.0} s",
        log.train_rows,
        log.val_rows,
        log.history.len(),
        log.best_epoch,
        log.seconds
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
/// probabilities with candle's on the first window of up to 32 recordings.
fn export_parity(
    net: &net::SignNet,
    data: &Dataset,
    prepared: &Prepared,
    path: &Path,
) -> anyhow::Result<f32> {
    let model = SignModel::load(path)?;
    let rows: Vec<usize> = (0..data.len()).step_by((data.len() / 32).max(1)).collect();
    let mut max = 0.0f32;
    for &row in &rows {
        let window = augment::all_windows(prepared.recording(row), model.frames())
            .into_iter()
            .next()
            .context("a recording shorter than the window")?;
        let batch = prepared.every_window(&[row])?;
        let x = batch.x.narrow(0, 0, 1)?;
        let expected: Vec<f32> = net.probabilities(&x)?.flatten_all()?.to_vec1()?;
        let got = model.predict_raw(&window)?;
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
            None,
            &format!("fold {}/{k}", i + 1),
        )?;
        let batch = prepared.every_window(&fold.val)?;
        let (_, accuracy) = trainer::evaluate(&outcome.net, &batch)?;
        let windows = batch.rows.len();
        println!(
            "fold {}: {:.2}% of {windows} windows of {} held-out recordings (kept epoch {})",
            i + 1,
            100.0 * accuracy,
            fold.val.len(),
            outcome.best_epoch
        );
        correct += f64::from(accuracy) * windows as f64;
        total += windows;
        per_fold.push(accuracy);
    }
    let mean = correct / total.max(1) as f64;
    println!(
        "{k}-fold cross-validation by recording: {:.2}% ({} windows; folds {})",
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
