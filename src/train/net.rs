//! The sign network in candle: two architectures over a window of per-frame
//! features, both ending in dense layers and class logits.
//!
//! - `Lstm`: SignPose's stacked LSTMs, last hidden state. Standard LSTM
//!   activations (sigmoid/tanh) only: tract's ONNX LSTM op ignores
//!   `activations`, so anything else would export wrongly.
//! - `Conv`: a per-frame dense embedding, 1D convolutions over time, then the
//!   maximum and the mean over the window's frames: the pooling makes it
//!   indifferent to where in the window a sign falls and to much of its pace.
//!
//! candle cannot seed its CPU random generator, so every weight and every
//! dropout mask comes from our own seeded ChaCha generator: a seed gives the
//! same model every time.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::rnn::{LSTM, LSTMConfig, RNN};
use candle_nn::{Conv1d, Conv1dConfig, Linear, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which network, its layer sizes and dropout.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "architecture", rename_all = "snake_case")]
pub enum NetConfig {
    /// Stacked LSTMs, then dense ReLU layers.
    Lstm {
        /// Hidden sizes of the stacked LSTMs.
        lstm: Vec<usize>,
        /// Sizes of the dense ReLU layers after the last LSTM.
        dense: Vec<usize>,
        /// Dropout probability after the last LSTM and each dense layer (training only).
        dropout: f32,
    },
    /// Per-frame embedding, temporal convolutions, max and mean over time, dense layers.
    Conv {
        /// Width of the per-frame embedding (dense + ReLU).
        embed: usize,
        /// Output channels of each temporal convolution (+ ReLU).
        conv: Vec<usize>,
        /// Frames each convolution sees (odd; padded to keep the length).
        kernel: usize,
        /// Sizes of the dense ReLU layers after pooling.
        dense: Vec<usize>,
        /// Dropout probability after the embedding, the pooling and each dense layer.
        dropout: f32,
    },
}

impl NetConfig {
    /// SignPose's architecture: LSTM 64, 128, 64; dense 64, 32.
    pub fn signpose_lstm() -> NetConfig {
        NetConfig::Lstm {
            lstm: vec![64, 128, 64],
            dense: vec![64, 32],
            dropout: 0.2,
        }
    }

    /// signtop's default: embedding 96, two convolutions of 96 over 5 frames, dense 64.
    pub fn temporal_conv() -> NetConfig {
        NetConfig::Conv {
            embed: 96,
            conv: vec![96, 96],
            kernel: 5,
            dense: vec![64],
            dropout: 0.3,
        }
    }

    /// Sizes of the dense layers before the output.
    pub fn dense(&self) -> &[usize] {
        match self {
            NetConfig::Lstm { dense, .. } | NetConfig::Conv { dense, .. } => dense,
        }
    }

    /// Dropout probability (training only).
    pub fn dropout(&self) -> f32 {
        match self {
            NetConfig::Lstm { dropout, .. } | NetConfig::Conv { dropout, .. } => *dropout,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig::temporal_conv()
    }
}

/// Every variable's values by name, as [`SignNet::snapshot`] takes them.
pub type Snapshot = Vec<(String, Tensor)>;

/// The layers before the dense head.
enum Trunk {
    Lstm(Vec<LSTM>),
    Conv { embed: Linear, convs: Vec<Conv1d> },
}

/// The network and its trainable variables.
pub struct SignNet {
    config: NetConfig,
    features: usize,
    classes: usize,
    varmap: VarMap,
    trunk: Trunk,
    dense: Vec<Linear>,
    out: Linear,
}

impl SignNet {
    /// A freshly initialised network for `features` inputs and `classes` outputs.
    pub fn new(
        features: usize,
        classes: usize,
        config: &NetConfig,
        seed: u64,
    ) -> candle_core::Result<SignNet> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let (trunk, mut width) = match config {
            NetConfig::Lstm { lstm, .. } => {
                let mut lstms = Vec::new();
                let mut width = features;
                for (i, &hidden) in lstm.iter().enumerate() {
                    let layer =
                        candle_nn::lstm(width, hidden, LSTMConfig::default(), vb.pp(lstm_name(i)))?;
                    lstms.push(layer);
                    width = hidden;
                }
                (Trunk::Lstm(lstms), width)
            }
            NetConfig::Conv {
                embed,
                conv,
                kernel,
                ..
            } => {
                let embed_layer = candle_nn::linear(features, *embed, vb.pp(EMBED))?;
                let padding = kernel / 2;
                let mut convs = Vec::new();
                let mut width = *embed;
                for (i, &channels) in conv.iter().enumerate() {
                    let cfg = Conv1dConfig {
                        padding,
                        ..Default::default()
                    };
                    convs.push(candle_nn::conv1d(
                        width,
                        channels,
                        *kernel,
                        cfg,
                        vb.pp(conv_name(i)),
                    )?);
                    width = channels;
                }
                let trunk = Trunk::Conv {
                    embed: embed_layer,
                    convs,
                };
                // Max and mean over time, side by side.
                (trunk, 2 * width)
            }
        };
        let mut dense = Vec::new();
        for (i, &size) in config.dense().iter().enumerate() {
            dense.push(candle_nn::linear(width, size, vb.pp(dense_name(i)))?);
            width = size;
        }
        let out = candle_nn::linear(width, classes, vb.pp("out"))?;
        let mut net = SignNet {
            config: config.clone(),
            features,
            classes,
            varmap,
            trunk,
            dense,
            out,
        };
        net.seeded_init(seed)?;
        Ok(net)
    }

    /// The layer configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Input features per frame.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The trainable variables (for the optimiser).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// A variable's values by name (e.g. `lstm0.weight_ih_l0`, `dense1.bias`, `out.weight`).
    pub fn weight(&self, name: &str) -> candle_core::Result<Tensor> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))
    }

    /// Every variable's current values, sorted by name.
    pub fn snapshot(&self) -> candle_core::Result<Snapshot> {
        let names = self.sorted_names()?;
        names
            .into_iter()
            .map(|n| {
                let t = self.weight(&n)?.copy()?;
                Ok((n, t))
            })
            .collect()
    }

    /// Sets one variable's values (same shape as it has).
    pub fn set_weight(&mut self, name: &str, value: &Tensor) -> candle_core::Result<()> {
        self.varmap.set_one(name, value)
    }

    /// Puts back values taken by [`SignNet::snapshot`].
    pub fn restore(&mut self, snapshot: &[(String, Tensor)]) -> candle_core::Result<()> {
        for (name, tensor) in snapshot {
            self.varmap.set_one(name, tensor)?;
        }
        Ok(())
    }

    /// Logits (batch, classes) for input (batch, frames, features). With a
    /// generator, dropout is applied (training); without, it is not.
    pub fn forward(
        &self,
        x: &Tensor,
        mut dropout: Option<&mut ChaCha8Rng>,
    ) -> candle_core::Result<Tensor> {
        let mut h = match &self.trunk {
            Trunk::Lstm(lstms) => lstm_trunk(lstms, x)?,
            Trunk::Conv { embed, convs } => {
                let e = embed.forward(x)?.relu()?;
                let mut h = self.drop(e, dropout.as_deref_mut())?.transpose(1, 2)?;
                for conv in convs {
                    h = conv.forward(&h.contiguous()?)?.relu()?;
                }
                Tensor::cat(&[h.max(2)?, h.mean(2)?], 1)?
            }
        };
        h = self.drop(h, dropout.as_deref_mut())?;
        for layer in &self.dense {
            h = layer.forward(&h)?.relu()?;
            h = self.drop(h, dropout.as_deref_mut())?;
        }
        self.out.forward(&h)
    }

    /// Class probabilities (batch, classes), no dropout.
    pub fn probabilities(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax_last_dim(&self.forward(x, None)?)
    }

    fn drop(&self, h: Tensor, rng: Option<&mut ChaCha8Rng>) -> candle_core::Result<Tensor> {
        let p = self.config.dropout();
        let Some(rng) = rng else { return Ok(h) };
        if p <= 0.0 {
            return Ok(h);
        }
        let keep = 1.0 - p;
        let mask: Vec<f32> = (0..h.elem_count())
            .map(|_| {
                if rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        h.mul(&Tensor::from_vec(mask, h.shape(), h.device())?)
    }

    fn sorted_names(&self) -> candle_core::Result<Vec<String>> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
        let mut names: Vec<String> = data.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    /// Re-initialises every variable from `seed`: LSTM weights and biases
    /// uniform in ±1/sqrt(hidden) (as PyTorch does) with the forget-gate bias
    /// at +1 (remembers by default); dense weights Glorot-uniform, biases zero.
    fn seeded_init(&mut self, seed: u64) -> candle_core::Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for name in self.sorted_names()? {
            let current = self.weight(&name)?;
            let dims = current.dims().to_vec();
            let values = initial_values(&name, &dims, &mut rng);
            let tensor = Tensor::from_vec(values, dims, &Device::Cpu)?;
            self.varmap.set_one(&name, &tensor)?;
        }
        Ok(())
    }
}

fn initial_values(name: &str, dims: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let count: usize = dims.iter().product();
    let uniform = |rng: &mut ChaCha8Rng, bound: f32| -> Vec<f32> {
        (0..count)
            .map(|_| rng.random_range(-bound..=bound))
            .collect()
    };
    if name.starts_with("lstm") {
        let hidden = dims[0] / 4;
        let mut v = uniform(rng, 1.0 / (hidden as f32).sqrt());
        if name.contains("bias_ih") {
            // Gate order i, f, g, o: the second quarter is the forget gate.
            v[hidden..2 * hidden].fill(1.0);
        } else if name.contains("bias_hh") {
            v[hidden..2 * hidden].fill(0.0);
        }
        v
    } else if name.ends_with(".weight") {
        // Linear (out, in) or convolution (out, in, kernel).
        let kernel: usize = dims.iter().skip(2).product();
        let fan_out = dims[0] * kernel;
        let fan_in = dims.get(1).copied().unwrap_or(1) * kernel;
        uniform(rng, (6.0 / (fan_in + fan_out) as f32).sqrt())
    } else {
        vec![0.0; count]
    }
}

/// The last LSTM's final hidden state.
fn lstm_trunk(lstms: &[LSTM], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    let last = lstms.len().saturating_sub(1);
    for (i, lstm) in lstms.iter().enumerate() {
        let states = lstm.seq(&h)?;
        h = if i < last {
            lstm.states_to_tensor(&states)?
        } else {
            match states.last() {
                Some(state) => state.h().clone(),
                None => candle_core::bail!("empty sequence"),
            }
        };
    }
    Ok(h)
}

/// Variable prefix of the per-frame embedding.
pub const EMBED: &str = "embed";

/// Variable prefix of temporal convolution `i`.
pub fn conv_name(i: usize) -> String {
    format!("conv{i}")
}

/// Variable prefix of LSTM layer `i`.
pub fn lstm_name(i: usize) -> String {
    format!("lstm{i}")
}

/// Variable prefix of dense layer `i`.
pub fn dense_name(i: usize) -> String {
    format!("dense{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> NetConfig {
        NetConfig::Lstm {
            lstm: vec![8, 6],
            dense: vec![5],
            dropout: 0.5,
        }
    }

    fn small_conv() -> NetConfig {
        NetConfig::Conv {
            embed: 8,
            conv: vec![6, 6],
            kernel: 3,
            dense: vec![5],
            dropout: 0.5,
        }
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let a = SignNet::new(12, 3, &small(), 7).unwrap();
        let b = SignNet::new(12, 3, &small(), 7).unwrap();
        let c = SignNet::new(12, 3, &small(), 8).unwrap();
        let w = |n: &SignNet| {
            n.weight("lstm0.weight_ih_l0")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
    }

    #[test]
    fn forward_gives_probabilities_per_row_and_dropout_only_when_asked() {
        for config in [small(), small_conv()] {
            forward_checks(&config);
        }
    }

    fn forward_checks(config: &NetConfig) {
        let net = SignNet::new(12, 3, config, 1).unwrap();
        let x = Tensor::rand(0f32, 1f32, (4, 5, 12), &Device::Cpu).unwrap();
        let p = net.probabilities(&x).unwrap();
        assert_eq!(p.dims(), &[4, 3]);
        let sums = p.sum(1).unwrap().to_vec1::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
        let plain = net.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(
            plain,
            net.forward(&x, None).unwrap().to_vec2::<f32>().unwrap()
        );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let dropped = net
            .forward(&x, Some(&mut rng))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_ne!(plain, dropped);
    }
}
