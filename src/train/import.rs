//! Reading a trained network back from the ONNX file `signtop train` wrote,
//! so training can start from its weights (`signtop train --from`).
//!
//! The layer sizes come from the initializers' shapes; the names are the ones
//! [`super::export`] gives. Classes the new data adds get fresh output rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use prost::Message;
use tract_onnx::pb;

use super::net::{EMBED, NetConfig, SignNet, conv_name, dense_name, lstm_name};

/// Errors reading a model back.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not an ONNX model signtop wrote.
    #[error("{path}: not a sign model written by signtop train ({message})")]
    Foreign {
        /// The model file.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// candle refused a weight.
    #[error("{path}: loading its weights")]
    Weights {
        /// The model file.
        path: PathBuf,
        /// candle's error.
        source: candle_core::Error,
    },
}

/// A float initializer: shape and values.
struct Weight {
    dims: Vec<usize>,
    values: Vec<f32>,
}

/// The network stored in `path`, for `features` inputs and `classes` outputs
/// whose first `old_classes` are the stored model's (in its order); further
/// output rows start from `seed`'s initialisation. Dropout is `dropout`.
pub fn net_from_onnx(
    path: &Path,
    features: usize,
    classes: usize,
    dropout: f32,
    seed: u64,
) -> Result<SignNet, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    net_from_onnx_bytes(path, &bytes, features, classes, dropout, seed)
}

/// [`net_from_onnx`] from the ONNX file's bytes; `path` names it in messages.
pub fn net_from_onnx_bytes(
    path: &Path,
    bytes: &[u8],
    features: usize,
    classes: usize,
    dropout: f32,
    seed: u64,
) -> Result<SignNet, ImportError> {
    let foreign = |message: String| ImportError::Foreign {
        path: path.to_path_buf(),
        message,
    };
    let model = pb::ModelProto::decode(bytes).map_err(|e| foreign(e.to_string()))?;
    let weights = initializers(&model);
    let config = config_of(&weights, dropout).map_err(&foreign)?;
    let mut net =
        SignNet::new(features, classes, &config, seed).map_err(|source| ImportError::Weights {
            path: path.to_path_buf(),
            source,
        })?;
    load_weights(&mut net, &weights, &config).map_err(|e| match e {
        LoadError::Shape(message) => foreign(message),
        LoadError::Candle(source) => ImportError::Weights {
            path: path.to_path_buf(),
            source,
        },
    })?;
    Ok(net)
}

fn initializers(model: &pb::ModelProto) -> HashMap<String, Weight> {
    let Some(graph) = &model.graph else {
        return HashMap::new();
    };
    graph
        .initializer
        .iter()
        .filter(|t| t.data_type == pb::tensor_proto::DataType::Float as i32)
        .map(|t| {
            let values = if t.raw_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            let dims = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            (t.name.clone(), Weight { dims, values })
        })
        .collect()
}

/// The architecture and sizes the initializers describe.
fn config_of(weights: &HashMap<String, Weight>, dropout: f32) -> Result<NetConfig, String> {
    let dense: Vec<usize> = (0..)
        .map_while(|i| weights.get(&format!("{}.weight", dense_name(i))))
        .map(|w| w.dims[0])
        .collect();
    if let Some(embed) = weights.get("embed.W") {
        let conv: Vec<&Weight> = (0..)
            .map_while(|i| weights.get(&format!("{}.W", conv_name(i))))
            .collect();
        let kernel = conv
            .first()
            .and_then(|w| w.dims.get(2).copied())
            .unwrap_or(1);
        return Ok(NetConfig::Conv {
            embed: embed.dims.get(1).copied().unwrap_or(0),
            conv: conv.iter().map(|w| w.dims[0]).collect(),
            kernel,
            dense,
            dropout,
        });
    }
    let lstm: Vec<usize> = (0..)
        .map_while(|i| weights.get(&format!("{}.R", lstm_name(i))))
        .map(|w| w.dims.get(2).copied().unwrap_or(0))
        .collect();
    if lstm.is_empty() {
        return Err("no embed.W or lstm0.R weights".into());
    }
    Ok(NetConfig::Lstm {
        lstm,
        dense,
        dropout,
    })
}

enum LoadError {
    Shape(String),
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for LoadError {
    fn from(e: candle_core::Error) -> Self {
        LoadError::Candle(e)
    }
}

/// Puts every stored weight into `net` under candle's names and layouts.
fn load_weights(
    net: &mut SignNet,
    weights: &HashMap<String, Weight>,
    config: &NetConfig,
) -> Result<(), LoadError> {
    let get = |name: &str| {
        weights
            .get(name)
            .ok_or_else(|| LoadError::Shape(format!("no weight {name}")))
    };
    match config {
        NetConfig::Conv { conv, .. } => {
            let w = get("embed.W")?;
            let (inputs, width) = (w.dims[0], w.dims[1]);
            // MatMul keeps (in, out); candle's Linear keeps (out, in).
            let t = tensor(w)?.reshape((inputs, width))?.t()?.contiguous()?;
            set(net, &format!("{EMBED}.weight"), &t)?;
            set(net, &format!("{EMBED}.bias"), &tensor(get("embed.B")?)?)?;
            for i in 0..conv.len() {
                let name = conv_name(i);
                set(
                    net,
                    &format!("{name}.weight"),
                    &tensor(get(&format!("{name}.W"))?)?,
                )?;
                set(
                    net,
                    &format!("{name}.bias"),
                    &tensor(get(&format!("{name}.B"))?)?,
                )?;
            }
        }
        NetConfig::Lstm { lstm, .. } => {
            for (i, &hidden) in lstm.iter().enumerate() {
                let name = lstm_name(i);
                let w = get(&format!("{name}.W"))?;
                let r = get(&format!("{name}.R"))?;
                let b = get(&format!("{name}.B"))?;
                let input = w.dims.get(2).copied().unwrap_or(0);
                let w_ih = candle_gates(&w.values, hidden, input);
                let w_hh = candle_gates(&r.values, hidden, hidden);
                let (b_ih, b_hh) = b.values.split_at(b.values.len() / 2);
                let dev = &Device::Cpu;
                set(
                    net,
                    &format!("{name}.weight_ih_l0"),
                    &Tensor::from_vec(w_ih, (4 * hidden, input), dev)?,
                )?;
                set(
                    net,
                    &format!("{name}.weight_hh_l0"),
                    &Tensor::from_vec(w_hh, (4 * hidden, hidden), dev)?,
                )?;
                set(
                    net,
                    &format!("{name}.bias_ih_l0"),
                    &Tensor::from_vec(candle_gates(b_ih, hidden, 1), 4 * hidden, dev)?,
                )?;
                set(
                    net,
                    &format!("{name}.bias_hh_l0"),
                    &Tensor::from_vec(candle_gates(b_hh, hidden, 1), 4 * hidden, dev)?,
                )?;
            }
        }
    }
    for i in 0..config.dense().len() {
        let name = dense_name(i);
        for part in ["weight", "bias"] {
            let key = format!("{name}.{part}");
            set(net, &key, &tensor(get(&key)?)?)?;
        }
    }
    load_output_rows(net, get("out.weight")?, get("out.bias")?)
}

/// The stored output rows go first; rows for added classes keep their fresh values.
fn load_output_rows(net: &mut SignNet, weight: &Weight, bias: &Weight) -> Result<(), LoadError> {
    let fresh_w = net.weight("out.weight")?;
    let fresh_b = net.weight("out.bias")?;
    let (classes, width) = fresh_w.dims2()?;
    let stored = weight.dims[0];
    if stored > classes || weight.dims.get(1) != Some(&width) {
        return Err(LoadError::Shape(format!(
            "output weights {:?} do not fit {classes} classes of width {width}",
            weight.dims
        )));
    }
    let mut w = weight.values.clone();
    w.extend(fresh_w.flatten_all()?.to_vec1::<f32>()?[stored * width..].iter());
    let mut b = bias.values.clone();
    b.extend(fresh_b.to_vec1::<f32>()?[stored..].iter());
    set(
        net,
        "out.weight",
        &Tensor::from_vec(w, (classes, width), &Device::Cpu)?,
    )?;
    set(
        net,
        "out.bias",
        &Tensor::from_vec(b, classes, &Device::Cpu)?,
    )
}

/// ONNX gate order i, o, f, c back to candle's i, f, g(=c), o.
fn candle_gates(values: &[f32], hidden: usize, width: usize) -> Vec<f32> {
    let block = hidden * width;
    // Position of candle's gate g within ONNX's order.
    [0usize, 2, 3, 1]
        .iter()
        .flat_map(|&g| values[g * block..(g + 1) * block].iter().copied())
        .collect()
}

fn tensor(w: &Weight) -> candle_core::Result<Tensor> {
    Tensor::from_vec(w.values.clone(), w.dims.clone(), &Device::Cpu)
}

fn set(net: &mut SignNet, name: &str, value: &Tensor) -> Result<(), LoadError> {
    let current = net.weight(name)?;
    if current.dims() != value.dims() {
        return Err(LoadError::Shape(format!(
            "{name} is {:?}, the network needs {:?}",
            value.dims(),
            current.dims()
        )));
    }
    net.set_weight(name, value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::export::onnx_bytes;
    use super::*;

    fn round_trip(config: &NetConfig) {
        let net = SignNet::new(10, 3, config, 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, onnx_bytes(&net, 6).unwrap()).unwrap();
        let back = net_from_onnx(&path, 10, 4, 0.3, 9).unwrap();
        assert_eq!(back.config().dense(), config.dense());
        let x = Tensor::rand(0f32, 1f32, (2, 6, 10), &Device::Cpu).unwrap();
        let a = net.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();
        let b = back.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();
        for (ra, rb) in a.iter().zip(&b) {
            assert_eq!(rb.len(), 4, "one class added");
            for (va, vb) in ra.iter().zip(rb) {
                assert!((va - vb).abs() < 1e-5, "{ra:?} vs {rb:?}");
            }
        }
    }

    #[test]
    fn a_written_model_reads_back_to_the_same_outputs_with_a_class_added() {
        round_trip(&NetConfig::Conv {
            embed: 8,
            conv: vec![6, 5],
            kernel: 3,
            dense: vec![4],
            dropout: 0.3,
        });
        round_trip(&NetConfig::Lstm {
            lstm: vec![5, 7],
            dense: vec![4],
            dropout: 0.3,
        });
    }

    #[test]
    fn a_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.onnx");
        std::fs::write(&path, b"garbage").unwrap();
        let Err(err) = net_from_onnx(&path, 10, 3, 0.3, 1) else {
            panic!("garbage read as a model");
        };
        let err = err.to_string();
        assert!(
            err.contains("x.onnx") && err.contains("not a sign model"),
            "{err}"
        );
    }
}
