//! The training loop: splits by recording, windows drawn afresh each epoch
//! with augmentation ([`super::augment`]), mini-batch AdamW, early stopping
//! on validation loss, per-epoch history.

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::augment::{self, AugmentConfig};
use super::data::Dataset;
use super::net::{NetConfig, SignNet};
use crate::classify::preprocess::Preprocessing;
use crate::classify::window::{DEFAULT_SPAN_SECONDS, DEFAULT_WINDOW_LEN};
use crate::landmarks::keypoints::Layout;

/// Everything that decides a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum passes over the training recordings.
    pub epochs: usize,
    /// Windows per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed for initial weights, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Frames per window (the model's input length).
    pub frames: usize,
    /// Seconds a window covers: recordings with capture times are resampled
    /// to `frames / span_seconds` frames a second, and so is the live camera.
    pub span_seconds: f64,
    /// Windows drawn from each training recording per epoch.
    pub windows_per_recording: usize,
    /// Fewest windows an epoch draws: few recordings (a user's own takes)
    /// get more windows each, so an epoch is still several optimiser steps.
    pub min_windows_per_epoch: usize,
    /// Per-window preprocessing (stored in the sidecar).
    pub preprocessing: Preprocessing,
    /// How training windows are changed.
    pub augment: AugmentConfig,
    /// Architecture, layer sizes and dropout.
    pub net: NetConfig,
    /// How a network started from another model's weights is held near them
    /// (`--from`); the defaults change nothing.
    #[serde(default)]
    pub adapt: AdaptConfig,
}

/// Keeping an adapted network close to the model it started from: a few
/// takes a class are too few to move every weight far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptConfig {
    /// Layers left as they are (variable-name prefixes, e.g. `embed`, `conv0`).
    pub frozen: Vec<String>,
    /// After each step every trained weight moves this share of `lr` back
    /// towards its starting value (weight decay towards the start, not zero).
    pub anchor: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 120,
            batch_size: 32,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            seed: 42,
            patience: 30,
            frames: DEFAULT_WINDOW_LEN,
            span_seconds: DEFAULT_SPAN_SECONDS,
            windows_per_recording: 2,
            min_windows_per_epoch: 256,
            preprocessing: Preprocessing::HandShapes,
            augment: AugmentConfig::default(),
            net: NetConfig::default(),
            adapt: AdaptConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Seconds between two of the model's frames.
    pub fn frame_interval(&self) -> f64 {
        self.span_seconds / self.frames.max(1) as f64
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch number from 1.
    pub epoch: usize,
    /// Mean training loss (with dropout and augmentation).
    pub train_loss: f32,
    /// Training accuracy (same batches).
    pub train_accuracy: f32,
    /// Validation loss, when there is a validation set.
    pub val_loss: Option<f32>,
    /// Validation accuracy, when there is a validation set.
    pub val_accuracy: Option<f32>,
}

/// A trained network and how it got there.
pub struct TrainOutcome {
    /// The network (best validation epoch's weights when validating).
    pub net: SignNet,
    /// Per-epoch history.
    pub history: Vec<EpochLog>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Rows for training and validation, split by recording group.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training row indices.
    pub train: Vec<usize>,
    /// Validation row indices.
    pub val: Vec<usize>,
}

/// Holds out about `fraction` of each class's recordings (at least one when
/// `fraction > 0`), chosen with `seed`.
pub fn split_by_recording(data: &Dataset, fraction: f64, seed: u64) -> Split {
    let folds = shuffled_groups_per_class(data, seed);
    let mut val_groups = std::collections::HashSet::new();
    for groups in folds {
        let n = ((groups.len() as f64) * fraction).round() as usize;
        let n = if fraction > 0.0 { n.max(1) } else { 0 };
        val_groups.extend(groups.into_iter().take(n));
    }
    partition(data, |g| val_groups.contains(&g))
}

/// `k` folds by recording, stratified by class: fold `f` validates on every
/// k-th recording group of each class (after a seeded shuffle).
pub fn kfold_by_recording(data: &Dataset, k: usize, seed: u64) -> Vec<Split> {
    let mut fold_of = std::collections::HashMap::new();
    for groups in shuffled_groups_per_class(data, seed) {
        for (i, g) in groups.into_iter().enumerate() {
            fold_of.entry(g).or_insert(i % k.max(1));
        }
    }
    (0..k)
        .map(|f| partition(data, |g| fold_of.get(&g) == Some(&f)))
        .collect()
}

fn shuffled_groups_per_class(data: &Dataset, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5151_7e5e);
    (0..data.labels.len())
        .map(|class| {
            let mut groups: Vec<usize> = data
                .recordings
                .iter()
                .filter(|r| r.label == class)
                .map(|r| r.group)
                .collect();
            groups.sort_unstable();
            groups.dedup();
            groups.shuffle(&mut rng);
            groups
        })
        .collect()
}

fn partition(data: &Dataset, is_val: impl Fn(usize) -> bool) -> Split {
    let (val, train): (Vec<usize>, Vec<usize>) =
        (0..data.len()).partition(|&i| is_val(data.recordings[i].group));
    Split { train, val }
}

/// The dataset's recordings at the model's frame rate, ready to be windowed.
pub struct Prepared {
    layout: Layout,
    frames: usize,
    preprocessing: Preprocessing,
    recordings: Vec<Array2<f32>>,
    labels: Vec<usize>,
}

/// Model inputs and their labels: (windows, frames, model features) and (windows,).
pub struct Batch {
    /// The windows, preprocessed.
    pub x: Tensor,
    /// Class index of each window.
    pub y: Tensor,
    /// Recording each window came from.
    pub rows: Vec<usize>,
}

impl Prepared {
    /// Every recording of `data`, resampled to `config`'s frame rate where it
    /// has capture times.
    pub fn new(data: &Dataset, config: &TrainConfig) -> Prepared {
        let interval = config.frame_interval();
        let recordings = data
            .recordings
            .iter()
            .map(|r| r.at_interval(interval))
            .collect();
        Prepared {
            layout: data.layout,
            frames: config.frames,
            preprocessing: config.preprocessing,
            recordings,
            labels: data.labels_of(),
        }
    }

    /// Values per frame the model reads.
    pub fn model_features(&self) -> usize {
        self.preprocessing.model_features(self.layout)
    }

    /// Frames of recording `row` at the model's rate.
    pub fn recording(&self, row: usize) -> &Array2<f32> {
        &self.recordings[row]
    }

    /// Augmented windows, one per entry of `rows`.
    pub fn drawn(
        &self,
        rows: &[usize],
        augment: &AugmentConfig,
        rng: &mut ChaCha8Rng,
    ) -> candle_core::Result<Batch> {
        let windows = rows
            .iter()
            .map(|&r| {
                augment::draw_window(&self.recordings[r], self.layout, self.frames, augment, rng)
            })
            .collect();
        self.batch(windows, rows.to_vec())
    }

    /// Every window of every recording in `rows`, unchanged.
    pub fn every_window(&self, rows: &[usize]) -> candle_core::Result<Batch> {
        let mut windows = Vec::new();
        let mut owners = Vec::new();
        for &r in rows {
            for w in augment::all_windows(&self.recordings[r], self.frames) {
                windows.push(w);
                owners.push(r);
            }
        }
        self.batch(windows, owners)
    }

    fn batch(&self, windows: Vec<Vec<f32>>, rows: Vec<usize>) -> candle_core::Result<Batch> {
        let width = self.model_features();
        let mut values = Vec::with_capacity(windows.len() * self.frames * width);
        for w in &windows {
            values.extend(self.preprocessing.apply_window(self.layout, w));
        }
        let x = Tensor::from_vec(values, (windows.len(), self.frames, width), &Device::Cpu)?;
        let y: Vec<u32> = rows.iter().map(|&r| self.labels[r] as u32).collect();
        let y = Tensor::from_vec(y, rows.len(), &Device::Cpu)?;
        Ok(Batch { x, y, rows })
    }
}

/// Trains a fresh network on `split.train`, validating on `split.val`;
/// `on_epoch` sees each epoch's figures (for the progress bar).
pub fn train(
    data: &Dataset,
    prepared: &Prepared,
    split: &Split,
    config: &TrainConfig,
    on_epoch: impl FnMut(&EpochLog),
) -> candle_core::Result<TrainOutcome> {
    let net = SignNet::new(
        prepared.model_features(),
        data.labels.len(),
        &config.net,
        config.seed,
    )?;
    train_from(net, prepared, split, config, on_epoch)
}

/// Trains `net` (fresh, or started from another model's weights) on `split.train`.
pub fn train_from(
    mut net: SignNet,
    prepared: &Prepared,
    split: &Split,
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochLog),
) -> candle_core::Result<TrainOutcome> {
    let trained = trained_vars(&net, &config.adapt.frozen)?;
    let anchor = Anchor::new(&trained, config.adapt.anchor * config.learning_rate)?;
    let mut optimiser = AdamW::new(
        trained.into_iter().map(|(_, v)| v).collect(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1));
    let mut history = Vec::new();
    // (validation loss, epoch, weights) of the best epoch so far.
    let mut best: Option<(f32, usize, super::net::Snapshot)> = None;
    let validation = if split.val.is_empty() {
        None
    } else {
        Some(prepared.every_window(&split.val)?)
    };
    let per_recording = config
        .windows_per_recording
        .max(
            config
                .min_windows_per_epoch
                .div_ceil(split.train.len().max(1)),
        )
        .max(1);
    let mut order: Vec<usize> = split
        .train
        .iter()
        .flat_map(|&r| std::iter::repeat_n(r, per_recording))
        .collect();
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let (train_loss, train_accuracy) = train_epoch(
            &net,
            &mut optimiser,
            &anchor,
            prepared,
            &order,
            config,
            &mut rng,
        )?;
        let (val_loss, val_accuracy) = match &validation {
            None => (None, None),
            Some(batch) => {
                let (l, a) = evaluate(&net, batch)?;
                (Some(l), Some(a))
            }
        };
        let log = EpochLog {
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
        };
        on_epoch(&log);
        history.push(log);
        if let Some(loss) = val_loss {
            let improved = best.as_ref().is_none_or(|(b, _, _)| loss < *b);
            if improved {
                best = Some((loss, epoch, net.snapshot()?));
            } else if best
                .as_ref()
                .is_some_and(|(_, e, _)| epoch - e >= config.patience)
            {
                break;
            }
        }
    }
    let best_epoch = match &best {
        Some((_, epoch, weights)) => {
            net.restore(weights)?;
            *epoch
        }
        None => history.len(),
    };
    Ok(TrainOutcome {
        net,
        history,
        best_epoch,
    })
}

fn train_epoch(
    net: &SignNet,
    optimiser: &mut AdamW,
    anchor: &Anchor,
    prepared: &Prepared,
    order: &[usize],
    config: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> candle_core::Result<(f32, f32)> {
    let (mut loss_sum, mut correct) = (0.0f32, 0usize);
    for rows in order.chunks(config.batch_size.max(1)) {
        let batch = prepared.drawn(rows, &config.augment, rng)?;
        let logits = net.forward(&batch.x, Some(rng))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.y)?;
        optimiser.backward_step(&loss)?;
        anchor.pull()?;
        loss_sum += loss.to_scalar::<f32>()? * rows.len() as f32;
        correct += count_correct(&logits, &batch.y)?;
    }
    let n = order.len().max(1) as f32;
    Ok((loss_sum / n, correct as f32 / n))
}

/// The variables to train (name, variable): all of them, or all but those
/// under a `frozen` prefix.
fn trained_vars(net: &SignNet, frozen: &[String]) -> candle_core::Result<Vec<(String, Var)>> {
    let data = net
        .varmap()
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    let is_frozen = |name: &str| {
        frozen.iter().any(|p| {
            name.strip_prefix(p.as_str())
                .is_some_and(|r| r.starts_with('.'))
        })
    };
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(name, _)| !is_frozen(name))
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// Decoupled weight decay towards the starting weights: after each step
/// `w -= rate * (w - w0)`. A rate of 0 does nothing.
struct Anchor {
    rate: f64,
    start: Vec<(Var, Tensor)>,
}

impl Anchor {
    fn new(vars: &[(String, Var)], rate: f64) -> candle_core::Result<Anchor> {
        let start = if rate > 0.0 {
            vars.iter()
                .map(|(_, v)| Ok((v.clone(), v.as_tensor().copy()?)))
                .collect::<candle_core::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Anchor { rate, start })
    }

    fn pull(&self) -> candle_core::Result<()> {
        for (var, start) in &self.start {
            let w = var.as_tensor();
            var.set(&(w - ((w - start)? * self.rate)?)?)?;
        }
        Ok(())
    }
}

/// Mean loss and accuracy over a batch's windows, without dropout.
pub fn evaluate(net: &SignNet, batch: &Batch) -> candle_core::Result<(f32, f32)> {
    let windows = batch.rows.len();
    if windows == 0 {
        return Ok((0.0, 0.0));
    }
    let logits = net.forward(&batch.x, None)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &batch.y)?;
    let correct = count_correct(&logits, &batch.y)?;
    Ok((loss.to_scalar::<f32>()?, correct as f32 / windows as f32))
}

fn count_correct(logits: &Tensor, y: &Tensor) -> candle_core::Result<usize> {
    let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
    let truth = y.to_vec1::<u32>()?;
    Ok(predicted.iter().zip(&truth).filter(|(p, t)| p == t).count())
}

#[cfg(test)]
mod tests {
    use super::super::data::Recording;
    use super::*;

    /// Two classes told apart by the right hand's height; 6 recordings each.
    fn toy() -> Dataset {
        let layout = Layout::PoseHands;
        let recordings = (0..12)
            .map(|r| {
                let class = r % 2;
                let mut frames = Array2::<f32>::zeros((5, layout.features()));
                for mut frame in frames.outer_iter_mut() {
                    frame[11 * 4] = 0.6;
                    frame[12 * 4] = 0.4;
                    frame[11 * 4 + 1] = 0.5;
                    frame[12 * 4 + 1] = 0.5;
                    // A hand of 21 points around its wrist, high or low.
                    let rh: usize = layout.right_hand().start;
                    let (x, y) = (0.45 + 0.01 * r as f32, if class == 0 { 0.2 } else { 0.8 });
                    for p in 0..21 {
                        frame[rh + 3 * p] = x + 0.01 * (p % 3) as f32;
                        frame[rh + 3 * p + 1] = y - 0.005 * p as f32;
                    }
                }
                Recording {
                    frames,
                    label: class,
                    group: r,
                    source: 0,
                    name: format!("toy {r}"),
                    times: None,
                }
            })
            .collect();
        Dataset {
            labels: vec!["Up".into(), "Down".into()],
            layout,
            recordings,
            sources: vec!["toy".into()],
        }
    }

    #[test]
    fn splits_keep_recordings_whole_and_every_class_validated() {
        let data = toy();
        let split = split_by_recording(&data, 0.34, 1);
        assert_eq!(split.train.len() + split.val.len(), 12);
        assert!(split.val.iter().any(|&r| data.recordings[r].label == 0));
        assert!(split.val.iter().any(|&r| data.recordings[r].label == 1));
        let folds = kfold_by_recording(&data, 3, 1);
        let mut seen: Vec<usize> = folds.iter().flat_map(|f| f.val.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..12).collect::<Vec<_>>(), "each row validated once");
    }

    #[test]
    fn learns_a_separable_toy_problem_and_is_reproducible() {
        let data = toy();
        let small_nets = [
            NetConfig::Lstm {
                lstm: vec![8],
                dense: vec![8],
                dropout: 0.0,
            },
            NetConfig::Conv {
                embed: 16,
                conv: vec![16],
                kernel: 3,
                dense: vec![16],
                dropout: 0.0,
            },
        ];
        for net in small_nets {
            let config = TrainConfig {
                epochs: 40,
                batch_size: 4,
                learning_rate: 1e-2,
                frames: 5,
                span_seconds: 0.5,
                augment: AugmentConfig::none(),
                net,
                ..TrainConfig::default()
            };
            let prepared = Prepared::new(&data, &config);
            let split = Split {
                train: (0..12).collect(),
                val: vec![],
            };
            let a = train(&data, &prepared, &split, &config, |_| {}).unwrap();
            let b = train(&data, &prepared, &split, &config, |_| {}).unwrap();
            let last = a.history.last().unwrap();
            assert_eq!(a.history, b.history, "same seed, same run");
            let batch = prepared.every_window(&split.train).unwrap();
            let (_, accuracy) = evaluate(&a.net, &batch).unwrap();
            assert!(
                accuracy == 1.0,
                "{:?}: accuracy {accuracy}, last epoch {last:?}",
                config.net
            );
        }
    }

    /// How far each variable moved from `start` (summed absolute change).
    fn moved(net: &SignNet, start: &[(String, Tensor)]) -> Vec<(String, f32)> {
        start
            .iter()
            .map(|(name, before)| {
                let now = net.weight(name).unwrap();
                let change = (now - before).unwrap().abs().unwrap().sum_all().unwrap();
                (name.clone(), change.to_scalar::<f32>().unwrap())
            })
            .collect()
    }

    #[test]
    fn adapting_leaves_frozen_layers_alone_and_the_anchor_holds_weights_near_the_start() {
        let data = toy();
        let net_config = NetConfig::Conv {
            embed: 8,
            conv: vec![8],
            kernel: 3,
            dense: vec![8],
            dropout: 0.0,
        };
        let config = |adapt: AdaptConfig| TrainConfig {
            epochs: 3,
            batch_size: 4,
            learning_rate: 1e-2,
            frames: 5,
            span_seconds: 0.5,
            min_windows_per_epoch: 0,
            augment: AugmentConfig::none(),
            net: net_config.clone(),
            adapt,
            ..TrainConfig::default()
        };
        let prepared = Prepared::new(&data, &config(AdaptConfig::default()));
        let split = Split {
            train: (0..12).collect(),
            val: vec![],
        };
        let adapted = |adapt: AdaptConfig| {
            let net = SignNet::new(prepared.model_features(), 2, &net_config, 5).unwrap();
            let start = net.snapshot().unwrap();
            let outcome = train_from(net, &prepared, &split, &config(adapt), |_| {}).unwrap();
            moved(&outcome.net, &start)
        };
        let free = adapted(AdaptConfig::default());
        assert!(free.iter().all(|(_, m)| *m > 0.0), "{free:?}");
        let frozen = adapted(AdaptConfig {
            frozen: vec!["embed".into(), "conv0".into()],
            ..AdaptConfig::default()
        });
        for (name, m) in &frozen {
            let kept = name.starts_with("embed.") || name.starts_with("conv0.");
            assert_eq!(*m == 0.0, kept, "{name} moved {m}");
        }
        let anchored = adapted(AdaptConfig {
            anchor: 20.0,
            ..AdaptConfig::default()
        });
        let total = |m: &[(String, f32)]| m.iter().map(|(_, m)| m).sum::<f32>();
        assert!(
            total(&anchored) < 0.8 * total(&free),
            "anchored {anchored:?}, free {free:?}"
        );
    }
}
