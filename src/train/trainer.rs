//! The training loop: splits by recording, mirror augmentation, mini-batch
//! AdamW, early stopping on validation loss, per-epoch history.

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::net::{NetConfig, SignNet};
use crate::classify::preprocess::Preprocessing;
use crate::landmarks::keypoints::mirror_features;

/// Everything that decides a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum passes over the training rows.
    pub epochs: usize,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed for initial weights, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Train on mirrored copies too (hands swapped), half the rows per epoch.
    pub mirror: bool,
    /// Per-frame preprocessing (stored in the sidecar).
    pub preprocessing: Preprocessing,
    /// Layer sizes and dropout.
    pub net: NetConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 150,
            batch_size: 16,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            seed: 42,
            patience: 25,
            mirror: true,
            preprocessing: Preprocessing::BodyRelative,
            net: NetConfig::default(),
        }
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
                .y
                .iter()
                .zip(&data.groups)
                .filter(|(y, _)| **y == class)
                .map(|(_, g)| *g)
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
        (0..data.len()).partition(|&i| is_val(data.groups[i]));
    Split { train, val }
}

/// The dataset's rows preprocessed once, plain and mirrored.
pub struct Prepared {
    frames: usize,
    features: usize,
    plain: Vec<Vec<f32>>,
    mirrored: Vec<Vec<f32>>,
}

impl Prepared {
    /// Preprocesses every row of `data` (and a mirrored copy when `mirror`).
    pub fn new(data: &Dataset, preprocessing: Preprocessing, mirror: bool) -> Prepared {
        let layout = data.layout;
        let prepare = |row: Vec<f32>| {
            let mut row = row;
            preprocessing.apply(layout, &mut row);
            row
        };
        let plain: Vec<Vec<f32>> = (0..data.len()).map(|i| prepare(data.row(i))).collect();
        let mirrored = if mirror {
            (0..data.len())
                .map(|i| {
                    let row = data.row(i);
                    let flipped: Vec<f32> = row
                        .chunks_exact(layout.features())
                        .flat_map(|f| mirror_features(layout, f).unwrap_or_else(|_| f.to_vec()))
                        .collect();
                    prepare(flipped)
                })
                .collect()
        } else {
            Vec::new()
        };
        Prepared {
            frames: data.frames(),
            features: layout.features(),
            plain,
            mirrored,
        }
    }

    /// A (rows, frames, features) tensor; `flip[i]` picks the mirrored copy.
    pub fn batch(&self, rows: &[usize], flip: &[bool]) -> candle_core::Result<Tensor> {
        let mut values = Vec::with_capacity(rows.len() * self.frames * self.features);
        for (i, &row) in rows.iter().enumerate() {
            let source = if flip.get(i).copied().unwrap_or(false) && !self.mirrored.is_empty() {
                &self.mirrored[row]
            } else {
                &self.plain[row]
            };
            values.extend_from_slice(source);
        }
        Tensor::from_vec(
            values,
            (rows.len(), self.frames, self.features),
            &Device::Cpu,
        )
    }
}

/// Trains a fresh network on `split.train`, validating on `split.val`;
/// `on_epoch` sees each epoch's figures (for the progress bar).
pub fn train(
    data: &Dataset,
    prepared: &Prepared,
    split: &Split,
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochLog),
) -> candle_core::Result<TrainOutcome> {
    let mut net = SignNet::new(
        data.layout.features(),
        data.labels.len(),
        &config.net,
        config.seed,
    )?;
    let mut optimiser = AdamW::new(
        net.varmap().all_vars(),
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
    let mut order = split.train.clone();
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let (train_loss, train_accuracy) = train_epoch(
            &net,
            &mut optimiser,
            data,
            prepared,
            &order,
            config,
            &mut rng,
        )?;
        let (val_loss, val_accuracy) = if split.val.is_empty() {
            (None, None)
        } else {
            let (l, a) = evaluate(&net, data, prepared, &split.val)?;
            (Some(l), Some(a))
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
    data: &Dataset,
    prepared: &Prepared,
    order: &[usize],
    config: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> candle_core::Result<(f32, f32)> {
    let (mut loss_sum, mut correct) = (0.0f32, 0usize);
    for rows in order.chunks(config.batch_size.max(1)) {
        let flip: Vec<bool> = rows
            .iter()
            .map(|_| config.mirror && rand::Rng::random_bool(rng, 0.5))
            .collect();
        let x = prepared.batch(rows, &flip)?;
        let y = labels_tensor(data, rows)?;
        let logits = net.forward(&x, Some(rng))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        optimiser.backward_step(&loss)?;
        loss_sum += loss.to_scalar::<f32>()? * rows.len() as f32;
        correct += count_correct(&logits, data, rows)?;
    }
    let n = order.len().max(1) as f32;
    Ok((loss_sum / n, correct as f32 / n))
}

/// Mean loss and accuracy on `rows`, without dropout or augmentation.
pub fn evaluate(
    net: &SignNet,
    data: &Dataset,
    prepared: &Prepared,
    rows: &[usize],
) -> candle_core::Result<(f32, f32)> {
    let x = prepared.batch(rows, &[])?;
    let logits = net.forward(&x, None)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &labels_tensor(data, rows)?)?;
    let correct = count_correct(&logits, data, rows)?;
    Ok((
        loss.to_scalar::<f32>()?,
        correct as f32 / rows.len().max(1) as f32,
    ))
}

fn labels_tensor(data: &Dataset, rows: &[usize]) -> candle_core::Result<Tensor> {
    let y: Vec<u32> = rows.iter().map(|&r| data.y[r] as u32).collect();
    Tensor::from_vec(y, rows.len(), &Device::Cpu)
}

fn count_correct(logits: &Tensor, data: &Dataset, rows: &[usize]) -> candle_core::Result<usize> {
    let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
    Ok(predicted
        .iter()
        .zip(rows)
        .filter(|(p, r)| **p as usize == data.y[**r])
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::keypoints::Layout;
    use ndarray::Array3;

    /// Two classes told apart by the right hand's height; 6 recordings each.
    fn toy() -> Dataset {
        let layout = Layout::PoseHands;
        let rows = 12;
        let mut x = Array3::<f32>::zeros((rows, 5, layout.features()));
        let mut y = Vec::new();
        for r in 0..rows {
            let class = r % 2;
            y.push(class);
            for f in 0..5 {
                let mut frame = x.slice_mut(ndarray::s![r, f, ..]);
                frame[11 * 4_usize] = 0.6;
                frame[12 * 4_usize] = 0.4;
                frame[11 * 4 + 1_usize] = 0.5;
                frame[12 * 4 + 1_usize] = 0.5;
                let rh: usize = layout.right_hand().start;
                frame[rh] = 0.45 + 0.01 * r as f32;
                frame[rh + 1] = if class == 0 { 0.2 } else { 0.8 };
            }
        }
        Dataset {
            labels: vec!["Up".into(), "Down".into()],
            layout,
            x,
            y,
            groups: (0..rows).collect(),
        }
    }

    #[test]
    fn splits_keep_recordings_whole_and_every_class_validated() {
        let data = toy();
        let split = split_by_recording(&data, 0.34, 1);
        assert_eq!(split.train.len() + split.val.len(), 12);
        assert!(split.val.iter().any(|&r| data.y[r] == 0));
        assert!(split.val.iter().any(|&r| data.y[r] == 1));
        let folds = kfold_by_recording(&data, 3, 1);
        let mut seen: Vec<usize> = folds.iter().flat_map(|f| f.val.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..12).collect::<Vec<_>>(), "each row validated once");
    }

    #[test]
    fn learns_a_separable_toy_problem_and_is_reproducible() {
        let data = toy();
        let config = TrainConfig {
            epochs: 40,
            batch_size: 4,
            learning_rate: 1e-2,
            net: NetConfig {
                lstm: vec![8],
                dense: vec![8],
                dropout: 0.0,
            },
            ..TrainConfig::default()
        };
        let prepared = Prepared::new(&data, config.preprocessing, config.mirror);
        let split = Split {
            train: (0..12).collect(),
            val: vec![],
        };
        let a = train(&data, &prepared, &split, &config, |_| {}).unwrap();
        let b = train(&data, &prepared, &split, &config, |_| {}).unwrap();
        let last = a.history.last().unwrap();
        assert_eq!(a.history, b.history, "same seed, same run");
        let (_, accuracy) = evaluate(&a.net, &data, &prepared, &split.train).unwrap();
        assert!(accuracy == 1.0, "accuracy {accuracy}, last epoch {last:?}");
    }
}
