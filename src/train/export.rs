//! ONNX export of a trained [`SignNet`], written with tract's own ONNX protobuf types.
//!
//! Graph: keypoints (batch, frames, features) -> the trunk -> Gemm + Relu per
//! dense layer -> Gemm -> Softmax = probabilities (batch, classes). The trunk
//! is either a Transpose to (frames, batch, features) and one ONNX `LSTM` per
//! layer (default sigmoid/tanh activations, the only ones tract honours) up to
//! the last hidden state, or a per-frame MatMul embedding, 1D `Conv`s over
//! time and ReduceMax / ReduceMean over the frames. Preprocessing is not in
//! the graph: the sidecar names it and `SignModel` applies it.

use std::path::Path;

use candle_core::Tensor;
use prost::Message;
use tract_onnx::pb;

use super::net::{EMBED, NetConfig, SignNet, conv_name, dense_name, lstm_name};

/// Name of the exported model's input.
pub const INPUT_NAME: &str = "keypoints";
/// Name of the exported model's output.
pub const OUTPUT_NAME: &str = "probabilities";
/// ONNX operator set used.
const OPSET: i64 = 13;
/// ONNX IR version matching opset 13.
const IR_VERSION: i64 = 7;

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the network's weights failed.
    #[error("reading the network's weights")]
    Weights(#[from] candle_core::Error),
    /// Writing the file failed.
    #[error("writing {path}")]
    Write {
        /// The model file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes `net` as ONNX to `path` for windows of `frames` frames.
pub fn write_onnx(net: &SignNet, frames: usize, path: &Path) -> Result<(), ExportError> {
    let bytes = onnx_bytes(net, frames)?;
    std::fs::write(path, bytes).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The ONNX model of `net` as protobuf bytes.
pub fn onnx_bytes(net: &SignNet, frames: usize) -> Result<Vec<u8>, ExportError> {
    let mut graph = GraphBuilder::default();
    let mut x = match net.config() {
        NetConfig::Lstm { lstm, .. } => lstm_trunk(&mut graph, net, lstm)?,
        NetConfig::Conv { conv, kernel, .. } => conv_trunk(&mut graph, net, conv.len(), *kernel)?,
    };
    for i in 0..net.config().dense().len() {
        let name = dense_name(i);
        x = dense(&mut graph, net, &name, &x, true)?;
    }
    let logits = dense(&mut graph, net, "out", &x, false)?;
    graph.node_owned(
        "Softmax",
        &[logits.as_str()],
        &[OUTPUT_NAME],
        vec![int("axis", -1)],
    );
    let input = value_info(
        INPUT_NAME,
        &[
            Dim::Param("batch"),
            Dim::Value(frames),
            Dim::Value(net.features()),
        ],
    );
    let output = value_info(
        OUTPUT_NAME,
        &[Dim::Param("batch"), Dim::Value(net.classes())],
    );
    let model = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "signtop".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(pb::GraphProto {
            name: "signtop_sign_model".into(),
            node: graph.nodes,
            initializer: graph.initializers,
            input: vec![input],
            output: vec![output],
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

/// Stacked ONNX `LSTM`s over (frames, batch, features); returns the name of
/// the last one's final hidden state (batch, hidden).
fn lstm_trunk(
    graph: &mut GraphBuilder,
    net: &SignNet,
    sizes: &[usize],
) -> Result<String, candle_core::Error> {
    graph.node(
        "Transpose",
        &[INPUT_NAME],
        &["x_tbf"],
        vec![ints("perm", &[1, 0, 2])],
    );
    graph.int64_initializer("axis0", &[0]);
    graph.int64_initializer("axis1", &[1]);
    let mut x = "x_tbf".to_string();
    for (i, &hidden) in sizes.iter().enumerate() {
        let name = lstm_name(i);
        let (w, r, b) = lstm_weights(net, &name, hidden)?;
        graph.initializer(&format!("{name}.W"), &w);
        graph.initializer(&format!("{name}.R"), &r);
        graph.initializer(&format!("{name}.B"), &b);
        let inputs = [
            x.as_str(),
            &format!("{name}.W"),
            &format!("{name}.R"),
            &format!("{name}.B"),
        ];
        let attrs = vec![int("hidden_size", hidden as i64)];
        let out = format!("{name}.out");
        if i + 1 < sizes.len() {
            // Y is (frames, 1, batch, hidden): drop the direction axis.
            let y = format!("{name}.Y");
            graph.node_owned("LSTM", &inputs, &[y.as_str()], attrs);
            graph.node_owned("Squeeze", &[y.as_str(), "axis1"], &[out.as_str()], vec![]);
        } else {
            // Y_h is (1, batch, hidden): the last step's hidden state.
            let y_h = format!("{name}.Y_h");
            graph.node_owned("LSTM", &inputs, &["", y_h.as_str()], attrs);
            graph.node_owned("Squeeze", &[y_h.as_str(), "axis0"], &[out.as_str()], vec![]);
        }
        x = out;
    }
    Ok(x)
}

/// Per-frame embedding (MatMul + Add + Relu on (batch, frames, features)),
/// then (batch, channels, frames) through `convs` 1D Conv + Relu, then
/// ReduceMax and ReduceMean over frames, concatenated: (batch, 2 x channels).
fn conv_trunk(
    graph: &mut GraphBuilder,
    net: &SignNet,
    convs: usize,
    kernel: usize,
) -> Result<String, candle_core::Error> {
    let weight = net.weight(&format!("{EMBED}.weight"))?;
    let (out, inp) = weight.dims2()?;
    // candle keeps (out, in); MatMul wants (in, out).
    let transposed = values(&weight.t()?.contiguous()?)?;
    graph.initializer("embed.W", &TensorData::new(vec![inp, out], transposed));
    let bias = net.weight(&format!("{EMBED}.bias"))?;
    graph.initializer("embed.B", &TensorData::new(vec![out], values(&bias)?));
    graph.node("MatMul", &[INPUT_NAME, "embed.W"], &["embed.mm"], vec![]);
    graph.node("Add", &["embed.mm", "embed.B"], &["embed.add"], vec![]);
    graph.node("Relu", &["embed.add"], &["embed.out"], vec![]);
    graph.node(
        "Transpose",
        &["embed.out"],
        &["x_bct"],
        vec![ints("perm", &[0, 2, 1])],
    );
    let mut x = "x_bct".to_string();
    let pad = (kernel / 2) as i64;
    for i in 0..convs {
        let name = conv_name(i);
        let w = net.weight(&format!("{name}.weight"))?;
        let b = net.weight(&format!("{name}.bias"))?;
        graph.initializer(
            &format!("{name}.W"),
            &TensorData::new(w.dims().to_vec(), values(&w)?),
        );
        graph.initializer(
            &format!("{name}.B"),
            &TensorData::new(b.dims().to_vec(), values(&b)?),
        );
        let conv = format!("{name}.conv");
        graph.node_owned(
            "Conv",
            &[x.as_str(), &format!("{name}.W"), &format!("{name}.B")],
            &[conv.as_str()],
            vec![
                ints("kernel_shape", &[kernel as i64]),
                ints("pads", &[pad, pad]),
            ],
        );
        x = format!("{name}.out");
        graph.node_owned("Relu", &[conv.as_str()], &[x.as_str()], vec![]);
    }
    let reduce = vec![ints("axes", &[2]), int("keepdims", 0)];
    graph.node_owned("ReduceMax", &[x.as_str()], &["pool.max"], reduce.clone());
    graph.node_owned("ReduceMean", &[x.as_str()], &["pool.mean"], reduce);
    graph.node(
        "Concat",
        &["pool.max", "pool.mean"],
        &["pool.out"],
        vec![int("axis", 1)],
    );
    Ok("pool.out".to_string())
}

/// candle's LSTM gates are ordered i, f, g, o; ONNX wants i, o, f, c(=g).
const ONNX_GATE_ORDER: [usize; 4] = [0, 3, 1, 2];

/// W (1, 4H, in), R (1, 4H, H) and B (1, 8H) of one LSTM layer in ONNX order.
fn lstm_weights(
    net: &SignNet,
    name: &str,
    hidden: usize,
) -> Result<(TensorData, TensorData, TensorData), candle_core::Error> {
    let w_ih = net.weight(&format!("{name}.weight_ih_l0"))?;
    let w_hh = net.weight(&format!("{name}.weight_hh_l0"))?;
    let b_ih = net.weight(&format!("{name}.bias_ih_l0"))?;
    let b_hh = net.weight(&format!("{name}.bias_hh_l0"))?;
    let input = w_ih.dim(1)?;
    let w = reorder_gates(&values(&w_ih)?, hidden, input);
    let r = reorder_gates(&values(&w_hh)?, hidden, hidden);
    let mut b = reorder_gates(&values(&b_ih)?, hidden, 1);
    b.extend(reorder_gates(&values(&b_hh)?, hidden, 1));
    Ok((
        TensorData::new(vec![1, 4 * hidden, input], w),
        TensorData::new(vec![1, 4 * hidden, hidden], r),
        TensorData::new(vec![1, 8 * hidden], b),
    ))
}

/// Reorders the four gate blocks (each `hidden` rows of `width`) into ONNX order.
fn reorder_gates(values: &[f32], hidden: usize, width: usize) -> Vec<f32> {
    let block = hidden * width;
    ONNX_GATE_ORDER
        .iter()
        .flat_map(|&g| values[g * block..(g + 1) * block].iter().copied())
        .collect()
}

/// Adds Gemm (+ Relu) for the linear layer `name`; returns the output name.
fn dense(
    graph: &mut GraphBuilder,
    net: &SignNet,
    name: &str,
    x: &str,
    relu: bool,
) -> Result<String, candle_core::Error> {
    let weight = net.weight(&format!("{name}.weight"))?;
    let bias = net.weight(&format!("{name}.bias"))?;
    let dims = weight.dims().to_vec();
    graph.initializer(
        &format!("{name}.weight"),
        &TensorData::new(dims, values(&weight)?),
    );
    graph.initializer(
        &format!("{name}.bias"),
        &TensorData::new(bias.dims().to_vec(), values(&bias)?),
    );
    let gemm = format!("{name}.gemm");
    graph.node_owned(
        "Gemm",
        &[x, &format!("{name}.weight"), &format!("{name}.bias")],
        &[gemm.as_str()],
        vec![int("transB", 1)],
    );
    if !relu {
        return Ok(gemm);
    }
    let out = format!("{name}.relu");
    graph.node_owned("Relu", &[gemm.as_str()], &[out.as_str()], vec![]);
    Ok(out)
}

fn values(t: &Tensor) -> Result<Vec<f32>, candle_core::Error> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// A float tensor's shape and values.
struct TensorData {
    dims: Vec<usize>,
    values: Vec<f32>,
}

impl TensorData {
    fn new(dims: Vec<usize>, values: Vec<f32>) -> TensorData {
        TensorData { dims, values }
    }
}

#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl GraphBuilder {
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
    ) {
        self.node_owned(op, inputs, outputs, attrs);
    }

    fn node_owned(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<pb::AttributeProto>,
    ) {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(pb::NodeProto {
            name,
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }

    fn initializer(&mut self, name: &str, data: &TensorData) {
        self.initializers.push(pb::TensorProto {
            name: name.into(),
            dims: data.dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: data.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }

    fn int64_initializer(&mut self, name: &str, values: &[i64]) {
        self.initializers.push(pb::TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: values.to_vec(),
            ..Default::default()
        });
    }
}

fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

enum Dim<'a> {
    Param(&'a str),
    Value(usize),
}

fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Param(p) => Value::DimParam((*p).into()),
                Dim::Value(v) => Value::DimValue(*v as i64),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_move_from_ifgo_to_iofc() {
        // Four gates of hidden 1, width 2: rows i, f, g, o.
        let v = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5];
        assert_eq!(
            reorder_gates(&v, 1, 2),
            vec![1.0, 1.5, 4.0, 4.5, 2.0, 2.5, 3.0, 3.5]
        );
    }
}
