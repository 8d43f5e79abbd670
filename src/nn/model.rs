//! Loading an ONNX model on tract, once, with a fixed float input: tract's
//! optimiser alone, or with signtop's own ops rewritten in where they are
//! faster; the plan is shared read-only by every thread that runs it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{AxisOp, SpecialOps, TypedModelPatch};
use tract_onnx::tract_core::ops::Cost;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::{DataFormat, Resize};
use tract_onnx::tract_core::plan::SimpleState;

use super::channel_move::ChannelMove;
use super::conv_op::{Clamped, PreluFolded};
use super::depthwise::{ChannelsLastDepthwise, Geometry};
use super::direct_order::DirectOrderConv;
use super::expand_depthwise::ExpandDepthwise;
use super::keep_layout::KeepLayout;
use super::max_pool::{MaxPool2x2, PoolLayout};
use super::patches::PatchConv;
use super::pointwise::{InputOrder, OutputOrder, PointwiseConv};
use super::prelu::Prelu;
use super::resize::ChannelsLastResize;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::logic::Iff;

/// The model at `path` could not be loaded with input f32 `shape`.
pub fn load_error(path: &Path, shape: &[usize], source: anyhow::Error) -> ModelError {
    ModelError::Load {
        path: path.to_path_buf(),
        shape: shape.to_vec(),
        source,
    }
}

/// A model file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// File missing, unreadable, or not runnable with the expected input.
    #[error("model {path}: expected an ONNX model with input f32 {shape:?}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// The input shape we fix it to.
        shape: Vec<usize>,
        /// What tract said.
        source: anyhow::Error,
    },
    /// Inference failed.
    #[error("running {name}")]
    Run {
        /// Model file name.
        name: String,
        /// What tract said.
        source: anyhow::Error,
    },
    /// The threads to run the models on could not be started.
    #[error("starting the landmark threads: {0}")]
    Threads(String),
}

impl ModelError {
    /// What tract (or the thread pool) said, without this error's own words:
    /// for callers that say in their own words which model failed.
    pub fn into_cause(self) -> anyhow::Error {
        match self {
            ModelError::Load { source, .. } | ModelError::Run { source, .. } => source,
            ModelError::Threads(message) => anyhow::anyhow!(message),
        }
    }
}

/// Where a model's depthwise convolutions and resizes keep their channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    /// As tract's optimiser leaves them: channels first for these models.
    AsLoaded,
    /// Channels last: depthwise convolutions on signtop's own op
    /// ([`super::depthwise`]) and resizes on whole channel vectors, then the
    /// residual stream between the blocks; the other ops follow where tract
    /// can move their axes (the pose and hand landmark models and the pose
    /// detector, whose max pools stay channels first: their heads'
    /// convolutions keep tract's kernels and bits).
    ChannelsLast,
    /// [`ChannelOrder::ChannelsLast`], and the max pools and pads too, so
    /// that models built of those (the face models' and the hand re-crop
    /// model's blocks pool and pad their shortcuts) run channels last from
    /// end to end instead of turning around every convolution; but for a
    /// convolution tract runs on its direct kernel channels first (the
    /// re-crop model's first), which keeps its order and its bits
    /// ([`super::keep_layout`]).
    ChannelsLastThroughout,
}

/// How a model's graph is readied to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewrites {
    /// tract's optimiser alone.
    TractOnly,
    /// signtop's own ops where they are faster, with the depthwise
    /// convolutions and resizes in the given channel order.
    SigntopOps(ChannelOrder),
}

/// An optimised, runnable model with its fixed input shape.
pub struct Model {
    name: String,
    shape: Vec<usize>,
    plan: Arc<TypedRunnableModel>,
}

impl Model {
    /// Loads the ONNX model in `bytes` (`path` names it in messages), its
    /// first input fixed to f32 `shape`, readied as `rewrites` says.
    pub fn load(
        path: &Path,
        bytes: &[u8],
        shape: &[usize],
        rewrites: Rewrites,
    ) -> Result<Model, ModelError> {
        let graph = Model::parse(path, bytes, shape)?;
        Model::from_graph(path, graph, shape, rewrites)
    }

    /// The ONNX model in `bytes` as tract reads it, before it is fixed to a
    /// shape: to check its declared input first.
    pub fn parse(path: &Path, bytes: &[u8], shape: &[usize]) -> Result<InferenceModel, ModelError> {
        tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|source| load_error(path, shape, source))
    }

    /// [`Model::load`] from a graph [`Model::parse`] gave.
    pub fn from_graph(
        path: &Path,
        graph: InferenceModel,
        shape: &[usize],
        rewrites: Rewrites,
    ) -> Result<Model, ModelError> {
        let typed = graph
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_typed());
        let optimised = match rewrites {
            Rewrites::TractOnly => typed.and_then(|m| m.into_optimized()),
            Rewrites::SigntopOps(layout) => typed.and_then(|m| optimise(m, layout)),
        };
        let plan = optimised
            .and_then(|m| m.into_runnable())
            .map_err(|source| load_error(path, shape, source))?;
        let name = path.file_name().unwrap_or(path.as_os_str());
        Ok(Model {
            name: name.to_string_lossy().into_owned(),
            shape: shape.to_vec(),
            plan,
        })
    }

    /// The shape of output `index`, where it is known (`None` past the
    /// last output too: tract's lookup would panic there).
    pub fn output_shape(&self, index: usize) -> Option<Vec<usize>> {
        let graph = self.plan.model();
        if index >= graph.output_outlets().ok()?.len() {
            return None;
        }
        let fact = graph.output_fact(index).ok()?;
        fact.shape.as_concrete().map(<[usize]>::to_vec)
    }

    /// Input shape this model was fixed to.
    pub fn input_shape(&self) -> &[usize] {
        &self.shape
    }

    /// Runs on `input` (NHWC, len = product of the shape); returns outputs as flat f32.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let run_err = |source| self.run_error(source);
        let tensor = self.input_tensor(input)?;
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(run_err);
        // Whatever follows the run, on this thread, must not pay for the
        // vector registers tract's kernels left dirty.
        super::simd::clear_upper_registers();
        outputs?
            .iter()
            .map(|o| {
                o.to_plain_array_view::<f32>()
                    // One copy of a contiguous output, not a walk over its
                    // indices (the pose heatmap is 160k values).
                    .map(|v| match v.as_slice() {
                        Some(values) => values.to_vec(),
                        None => v.iter().copied().collect(),
                    })
                    .map_err(run_err)
            })
            .collect()
    }

    /// `input` as the model's input tensor.
    fn input_tensor(&self, input: &[f32]) -> Result<Tensor, ModelError> {
        Tensor::from_shape(&self.shape, input).map_err(|source| self.run_error(source))
    }

    /// A failed run of this model, for `source`.
    fn run_error(&self, source: anyhow::Error) -> ModelError {
        ModelError::Run {
            name: self.name.clone(),
            source,
        }
    }
}

/// Time one op of a model took in a run, for `bench --models --ops`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// The op's kind (tract's name for it, or signtop's op's).
    pub kind: String,
    /// Its node's name in the graph.
    pub node: String,
    /// Its output shape, e.g. `1,64,64,48`.
    pub shape: String,
    /// How long it ran.
    pub time: Duration,
    /// Its multiply-adds (0 for an op without any, or that does not count
    /// them).
    pub macs: u64,
}

impl Model {
    /// Runs on `input` as [`Model::run`] does, timing each op of the plan.
    pub fn profile(&self, input: &[f32]) -> Result<Vec<OpTime>, ModelError> {
        let run_err = |source| self.run_error(source);
        let tensor = self.input_tensor(input)?;
        let mut state = SimpleState::new(&self.plan).map_err(run_err)?;
        let graph = self.plan.model();
        let mut times = Vec::new();
        state
            .run_plan_with_eval(tvec!(tensor.into()), |ctx, op_state, node, inputs| {
                let started = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                times.push(OpTime {
                    kind: node.op.name().to_string(),
                    node: node.name.clone(),
                    shape: node.outputs.first().map_or(String::new(), |o| {
                        let dims: Vec<String> =
                            o.fact.shape.iter().map(|d| d.to_string()).collect();
                        dims.join(",")
                    }),
                    time: started.elapsed(),
                    // An op that cannot count its work shows none.
                    macs: node_multiply_adds(graph, node).unwrap_or(0),
                });
                out
            })
            .map_err(run_err)?;
        Ok(times)
    }
}

/// Multiply-adds of one run of the ONNX model in `bytes` with input f32
/// `shape`, as tract counts them on its decluttered graph: convolutions and
/// matrix products (element-wise work left out). What signtop's ops compute
/// is the same work, so this holds for every way of running it.
pub fn multiply_adds(path: &Path, bytes: &[u8], shape: &[usize]) -> Result<u64, ModelError> {
    let err = |source: anyhow::Error| load_error(path, shape, source);
    let mut typed = Model::parse(path, bytes, shape)?
        .with_input_fact(0, f32::fact(shape).into())
        .and_then(|m| m.into_typed())
        .map_err(err)?;
    typed.declutter().map_err(err)?;
    let mut total = 0u64;
    for node in typed.nodes() {
        total += node_multiply_adds(&typed, node).map_err(err)?;
    }
    Ok(total)
}

/// The multiply-adds `node` of `graph` does a run, as its op counts them.
fn node_multiply_adds(graph: &TypedModel, node: &TypedNode) -> TractResult<u64> {
    let inputs = graph.node_input_facts(node.id)?;
    let mut total = 0u64;
    for (cost, count) in node.op.cost(&inputs)? {
        if matches!(cost, Cost::FMA(_)) {
            total += u64::try_from(count.to_i64()?).unwrap_or(0);
        }
    }
    Ok(total)
}

/// The ONNX model in `bytes` as tract's typed graph, its first input fixed
/// to f32 `shape`.
#[cfg(test)]
fn typed_model(bytes: &[u8], shape: &[usize]) -> TractResult<TypedModel> {
    tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_typed()
}

/// tract's declutter and optimise passes, with the depthwise convolutions
/// and resizes moved to `layout` in between, and signtop's own ops where
/// they are faster.
fn optimise(model: TypedModel, layout: ChannelOrder) -> TractResult<TypedModel> {
    optimise_with(model, layout, true)
}

/// [`optimise`], with signtop's pointwise and PReLU ops or not (the
/// pointwise one only where [`PointwiseConv::is_fast_here`]).
fn optimise_with(
    mut model: TypedModel,
    layout: ChannelOrder,
    our_ops: bool,
) -> TractResult<TypedModel> {
    model.declutter()?;
    if our_ops {
        // Before the transposes fold: signtop's PReLU follows axis moves,
        // tract-onnx's expansion (an `Iff`) stops them.
        prelu_in_one_pass(&mut model)?;
    }
    if layout != ChannelOrder::AsLoaded {
        depthwise_channels_last(&mut model)?;
        resize_channels_last(&mut model)?;
        if layout == ChannelOrder::ChannelsLastThroughout {
            keep_direct_convolutions(&mut model, our_ops)?;
            max_pool_channels_last(&mut model)?;
            pad_channels_last(&mut model)?;
        }
        // Folds each transpose pair the rewrites left between two ops.
        model.declutter()?;
        // Then the stream between the blocks: nothing in tract asks for it.
        residual_stream_channels_last(&mut model)?;
    }
    if our_ops && PointwiseConv::is_fast_here() {
        pointwise_on_our_op(&mut model)?;
        patches_on_our_op(&mut model)?;
        // Before the activations fold: the skip is added before them, and
        // the PReLU follows the skip.
        skips_into_pointwise(&mut model)?;
        fold_prelus::<PointwiseConv>(&mut model)?;
        fold_prelus::<PatchConv>(&mut model)?;
        fold_prelus::<DirectOrderConv>(&mut model)?;
    }
    if our_ops {
        moves_on_our_op(&mut model)?;
        resizes_on_our_op(&mut model)?;
        max_pools_on_our_op(&mut model)?;
    }
    fuse_activations(&mut model)?;
    if our_ops && PointwiseConv::is_fast_here() {
        expansions_into_depthwise(&mut model)?;
    }
    model.optimize()?;
    Ok(model)
}

/// Fuses each of signtop's 1x1 convolutions whose only reader is one of its
/// depthwise convolutions, where the tensor between them outgrows a core's
/// L2 ([`ExpandDepthwise::fused`]). Returns how many were fused.
fn expansions_into_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, depthwise: &ChannelsLastDepthwise| {
        let between = node.inputs[0];
        let expansion = model.node(between.node);
        let Some(expand) = expansion.op_as::<PointwiseConv>() else {
            return Ok(None);
        };
        let read_here_alone = only_reader(model, expansion.id)?.is_some_and(|r| r.id == node.id);
        let input = model.outlet_fact(expansion.inputs[0])?;
        let (true, Some(shape)) = (read_here_alone, input.shape.as_concrete()) else {
            return Ok(None);
        };
        let Some(op) = ExpandDepthwise::fused(expand, depthwise, shape) else {
            return Ok(None);
        };
        Ok(Some(in_place_of(
            model,
            expansion,
            node.id,
            op,
            &expansion.inputs[..1],
        )?))
    })
}

/// Rewrites every depthwise convolution to run channels last: signtop's own
/// op where it applies ([`our_depthwise`]), tract's depthwise op otherwise,
/// with a transpose on either side of a channels-first one. Returns how many
/// were rewritten.
fn depthwise_channels_last(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, conv: &Conv| {
        let depthwise = conv.q_params.is_none()
            && node.inputs.len() == 3
            && conv.group > 1
            && conv.group == conv.input_channels()
            && conv.group == conv.output_channels();
        if !depthwise {
            return Ok(None);
        }
        Ok(match conv.pool_spec.data_format {
            DataFormat::NCHW => Some(transposed_to_channels_last(model, node, conv, 1, 3)?),
            DataFormat::CHW => Some(transposed_to_channels_last(model, node, conv, 0, 2)?),
            DataFormat::NHWC | DataFormat::HWC => {
                on_its_input(model, node, our_depthwise(model, node, conv)?)?
            }
        })
    })
}

/// Applies `rewrite` to every node whose op is an `O`, in evaluation order
/// (a node a patch replaces is left unreachable, then compacted away).
/// Returns how many patches were applied.
fn rewrite_each<O: tract_onnx::tract_core::ops::Op>(
    model: &mut TypedModel,
    rewrite: impl Fn(&TypedModel, &TypedNode, &O) -> TractResult<Option<TypedModelPatch>>,
) -> TractResult<usize> {
    let mut applied = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<O>() else {
            continue;
        };
        if let Some(patch) = rewrite(model, node, op)? {
            patch.apply(model)?;
            applied += 1;
        }
    }
    model.compact()?;
    Ok(applied)
}

/// Rewrites every 1x1 convolution (tract's declutter has made them matrix
/// products, `EinSum`s) as signtop's own op ([`our_pointwise`]), with the
/// bias added after it folded in. Returns how many were rewritten.
fn pointwise_on_our_op(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, einsum: &EinSum| {
        let Some((op, channel_axis)) = our_pointwise(model, node, einsum)? else {
            return Ok(None);
        };
        let channels = op.output_channels();
        let (op, last) = match bias_after(model, node.id, channels, channel_axis)? {
            Some((add, bias)) => (op.with_bias(bias)?, add),
            None => (op, node.id),
        };
        Ok(Some(in_place_of(model, node, last, op, &node.inputs[..1])?))
    })
}

/// Folds each skip connection's add after one of signtop's 1x1
/// convolutions into it ([`PointwiseConv::with_residual`]), through the
/// channel pad of zeros that widens the skip where a block adds channels.
/// Returns how many were folded.
fn skips_into_pointwise(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, conv: &PointwiseConv| {
        let Some((add, skip)) = skip_added_after(model, node.id)? else {
            return Ok(None);
        };
        let (skip, channels) = unpadded_skip(model, skip)?;
        let Ok(op) = conv.clone().with_residual(channels) else {
            return Ok(None);
        };
        Ok(Some(in_place_of(
            model,
            node,
            add,
            op,
            &[node.inputs[0], skip],
        )?))
    })
}

/// Folds each PReLU after one of signtop's convolutions `O` (its only
/// reader) into it ([`PreluFolded`]), channels last. Returns how many were
/// folded.
fn fold_prelus<O: PreluFolded + TypedOp + Clone>(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, conv: &O| {
        let Some(next) = only_reader(model, node.id)? else {
            return Ok(None);
        };
        let slopes = next
            .op_as::<Prelu>()
            .and_then(|prelu| prelu.slopes_along_last(conv.prelu_channels()?));
        let Some(Ok(op)) = slopes.map(|slopes| conv.clone().with_prelu(&slopes)) else {
            return Ok(None);
        };
        Ok(Some(in_place_of(model, node, next.id, op, &node.inputs)?))
    })
}

/// The node that reads node `id`'s one output, when it is the only one
/// that does and the output is not one of the model's.
fn only_reader(model: &TypedModel, id: usize) -> TractResult<Option<&TypedNode>> {
    let node = model.node(id);
    let outlet = OutletId::new(id, 0);
    if node.outputs.len() != 1
        || model.output_outlets()?.contains(&outlet)
        || node.outputs[0].successors.len() != 1
    {
        return Ok(None);
    }
    Ok(Some(model.node(node.outputs[0].successors[0].node)))
}

/// The node after `id` when it is `id`'s only reader and adds to `id`'s
/// output another tensor of the same shape, not a constant (a skip
/// connection): (that node, the other tensor).
fn skip_added_after(model: &TypedModel, id: usize) -> TractResult<Option<(usize, OutletId)>> {
    let (node, outlet) = (model.node(id), OutletId::new(id, 0));
    let Some(next) = only_reader(model, id)? else {
        return Ok(None);
    };
    let is_add = next
        .op_as::<TypedBinOp>()
        .is_some_and(|b| b.0.name() == "Add");
    let [a, b] = next.inputs[..] else {
        return Ok(None);
    };
    let skip = if a == outlet { b } else { a };
    let (shape, skip_fact) = (&node.outputs[0].fact.shape, model.outlet_fact(skip)?);
    let same_shapes =
        skip_fact.shape == *shape && model.outlet_fact(next.id.into())?.shape == *shape;
    if !is_add || a == b || !same_shapes || skip_fact.konst.is_some() {
        return Ok(None);
    }
    Ok(Some((next.id, skip)))
}

/// The skip `outlet` before the pad that widens its last axis (channels)
/// with zeros, when it comes from one, with its channels then: (the tensor
/// to add, its channels).
fn unpadded_skip(model: &TypedModel, outlet: OutletId) -> TractResult<(OutletId, usize)> {
    let node = model.node(outlet.node);
    let skip = match node.op_as::<Pad>() {
        Some(pad) if node.inputs.len() == 1 && widens_channels_with_zeros(pad)? => node.inputs[0],
        _ => outlet,
    };
    let shape = model.outlet_fact(skip)?.shape.as_concrete();
    let channels = shape.and_then(|s| s.last().copied()).unwrap_or(0);
    Ok((skip, channels))
}

/// Whether `pad` adds `+0.0`s after the last axis (channels) alone.
fn widens_channels_with_zeros(pad: &Pad) -> TractResult<bool> {
    let zeros = match &pad.mode {
        PadMode::Constant(value) => {
            value.datum_type() == f32::datum_type()
                && value.len() == 1
                && value.cast_to_scalar::<f32>()?.to_bits() == 0.0f32.to_bits()
        }
        _ => false,
    };
    let Some((&(before, after), others)) = pad.pads.split_last() else {
        return Ok(false);
    };
    Ok(zeros && before == 0 && after > 0 && others.iter().all(|&p| p == (0, 0)))
}

/// A patch that wires `op` (named as `node`) on `inputs`, outlets of
/// `model`, in place of `node` and the nodes it folds in up to `last`:
/// `last`'s readers read `op`'s output instead.
fn in_place_of(
    model: &TypedModel,
    node: &TypedNode,
    last: usize,
    op: impl TypedOp,
    inputs: &[OutletId],
) -> TractResult<TypedModelPatch> {
    let mut patch = TypedModelPatch::default();
    let inputs = patch.taps(model, inputs)?;
    let y = patch.wire_node(&node.name, op, &inputs)?;
    patch.shunt_outside(model, last.into(), y[0])?;
    Ok(patch)
}

/// Rewrites every axis move that is a transpose of a matrix (channels
/// between first and last, a batch of one) as signtop's own op
/// ([`ChannelMove`]), after the rewrites that fold moves away. Returns how
/// many were rewritten.
fn moves_on_our_op(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, op: &AxisOp| {
        let &AxisOp::Move(from, to) = op else {
            return Ok(None);
        };
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = fact.shape.as_concrete() else {
            return Ok(None);
        };
        if fact.datum_type != f32::datum_type() {
            return Ok(None);
        }
        let Some(ours) = ChannelMove::for_move(shape, from, to) else {
            return Ok(None);
        };
        on_its_input(model, node, Some(ours))
    })
}

/// Rewrites every 2 x 2 max pool at stride 2, unpadded, of one f32 image
/// (every pool of the models) as signtop's own op ([`MaxPool2x2`]), in
/// either order of channels. Returns how many were rewritten.
fn max_pools_on_our_op(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, pool: &MaxPool| {
        let spec = &pool.pool_spec;
        let layout = match spec.data_format {
            DataFormat::NHWC => PoolLayout::ChannelsLast,
            DataFormat::NCHW => PoolLayout::ChannelsFirst,
            DataFormat::HWC | DataFormat::CHW => return Ok(None),
        };
        let unpadded = match &spec.padding {
            PaddingSpec::Valid => true,
            PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|&p| p == 0),
            _ => false,
        };
        let ones = |d: &Option<TVec<usize>>| d.as_ref().is_none_or(|d| d.iter().all(|&v| v == 1));
        let is_2x2_at_2 = spec.kernel_shape[..] == [2, 2]
            && spec.strides.as_ref().is_some_and(|s| s[..] == [2, 2])
            && ones(&spec.dilations);
        let fact = model.outlet_fact(node.inputs[0])?;
        let (Some(shape), true) = (
            fact.shape.as_concrete(),
            fact.datum_type == f32::datum_type(),
        ) else {
            return Ok(None);
        };
        if pool.with_index_outputs.is_some() || !unpadded || !is_2x2_at_2 {
            return Ok(None);
        }
        on_its_input(model, node, MaxPool2x2::new(shape, layout))
    })
}

/// Rewrites every resize of a channels-last f32 image along its height and
/// width (the pose models', once moved channels last) as signtop's own op
/// ([`ChannelsLastResize`]) on tract's own plans. Returns how many were
/// rewritten.
fn resizes_on_our_op(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, resize: &Resize| {
        let x = model.outlet_fact(node.inputs[0])?;
        let y = model.outlet_fact(node.id.into())?;
        let (Some(x_shape), Some(y_shape)) = (x.shape.as_concrete(), y.shape.as_concrete()) else {
            return Ok(None);
        };
        if x.datum_type != f32::datum_type() || x_shape.len() != 4 || x_shape[0] != 1 {
            return Ok(None);
        }
        // The scales tract's run would take: the constant input's, or the
        // output's length over the input's.
        let given = resize
            .optional_scales_input
            .and_then(|i| node.inputs.get(i))
            .map(|&outlet| model.outlet_fact(outlet))
            .transpose()?
            .and_then(|fact| fact.konst.clone());
        let scales: Vec<f32> = match given {
            Some(t) if t.len() == 4 => t
                .cast_to::<f32>()?
                .try_as_plain_ram()?
                .as_slice::<f32>()?
                .to_vec(),
            _ => x_shape
                .iter()
                .zip(y_shape)
                .map(|(&i, &o)| o as f32 / i as f32)
                .collect(),
        };
        let kept = |axis: usize| x_shape[axis] == y_shape[axis] && scales[axis] == 1.0;
        if !kept(0) || !kept(3) {
            return Ok(None);
        }
        let plan = |axis: usize| {
            (!kept(axis)).then(|| resize.plan_axis(scales[axis], x_shape[axis], y_shape[axis]))
        };
        let ours = ChannelsLastResize::new(x_shape, y_shape, [plan(1), plan(2)]).ok();
        on_its_input(model, node, ours)
    })
}

/// signtop's pointwise op for a matrix product `einsum` that is a 1x1
/// convolution: f32 pixels x channels (either order, batch of one) times a
/// constant weight matrix, into pixels x channels (either order), with the
/// output's channel axis; `None` otherwise.
fn our_pointwise(
    model: &TypedModel,
    node: &TypedNode,
    einsum: &EinSum,
) -> TractResult<Option<(PointwiseConv, usize)>> {
    if einsum.q_params.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let w = model.outlet_fact(node.inputs[1])?;
    let y = model.outlet_fact(node.id.into())?;
    let (Some(x_shape), Some(weights), Some(y_shape)) = (
        x.shape.as_concrete(),
        w.konst.clone(),
        y.shape.as_concrete(),
    ) else {
        return Ok(None);
    };
    if x.datum_type != f32::datum_type() || weights.rank() != 2 {
        return Ok(None);
    }
    // tract names the axes after the convolution's: N(batch), H, W, I(nput
    // channels), O(utput channels).
    let axes = einsum.axes.to_string();
    let Some((operands, output)) = axes.split_once("->") else {
        return Ok(None);
    };
    let Some((x_axes, w_axes)) = operands.split_once(',') else {
        return Ok(None);
    };
    let batch_of_one = |axes: &str, shape: &[usize]| {
        axes.len() == shape.len() && axes.chars().zip(shape).all(|(a, &d)| a != 'N' || d == 1)
    };
    if !batch_of_one(x_axes, x_shape) || !batch_of_one(output, y_shape) {
        return Ok(None);
    }
    let input_order = match x_axes.trim_start_matches('N') {
        "HWI" => InputOrder::PixelMajor,
        "IHW" => InputOrder::ChannelMajor,
        _ => return Ok(None),
    };
    let output_order = match output.trim_start_matches('N') {
        "HWO" => OutputOrder::PixelMajor,
        "OHW" => OutputOrder::ChannelMajor,
        _ => return Ok(None),
    };
    let weights = weights.cast_to::<f32>()?;
    let weights = weights.to_plain_array_view::<f32>()?;
    let weights = match w_axes {
        "OI" => weights.t().to_owned(),
        "IO" => weights.to_owned(),
        _ => return Ok(None),
    };
    let channels = [weights.shape()[0], weights.shape()[1]];
    let weights: Vec<f32> = weights.iter().copied().collect();
    let no_bias = vec![-0.0; channels[1]];
    let order = (input_order, output_order);
    let op = PointwiseConv::new(x_shape, y_shape, channels, order, &weights, no_bias).ok();
    Ok(op.zip(output.find('O')))
}

/// The node after `id` when it is `id`'s only reader and adds a constant
/// per channel (`channels` values along the output's `channel_axis`, 1s on
/// the other axes) to it: the convolution's bias.
fn bias_after(
    model: &TypedModel,
    id: usize,
    channels: usize,
    channel_axis: usize,
) -> TractResult<Option<(usize, Vec<f32>)>> {
    let Some((next, operation, bias)) = constant_operation_after(model, id)? else {
        return Ok(None);
    };
    // One value per channel, along the channel axis of the output.
    let output = model
        .outlet_fact(id.into())?
        .shape
        .as_concrete()
        .unwrap_or(&[]);
    let skip = output.len().saturating_sub(bias.rank());
    let per_channel = bias.len() == channels
        && bias.rank() <= output.len()
        && bias
            .shape()
            .iter()
            .enumerate()
            .all(|(axis, &d)| d == 1 || (skip + axis == channel_axis && d == channels));
    if operation != "Add" || !per_channel || bias.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let bias = bias.try_as_plain_ram()?;
    Ok(Some((next, bias.as_slice::<f32>()?.to_vec())))
}

/// The node after `id` when it is `id`'s only reader and a binary operation
/// of `id`'s output and a constant, giving the same shape: (that node, the
/// operation's name, the constant).
fn constant_operation_after(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(usize, &'static str, Arc<Tensor>)>> {
    let (node, outlet) = (model.node(id), OutletId::new(id, 0));
    let Some(next) = only_reader(model, id)? else {
        return Ok(None);
    };
    let Some(bin) = next.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    let [a, b] = next.inputs[..] else {
        return Ok(None);
    };
    let other = if a == outlet { b } else { a };
    let Some(constant) = model.outlet_fact(other)?.konst.clone() else {
        return Ok(None);
    };
    if model.outlet_fact(next.id.into())?.shape != node.outputs[0].fact.shape {
        return Ok(None);
    }
    Ok(Some((next.id, bin.0.name(), constant)))
}

/// Rewrites every other ungrouped convolution of channels-last data (the
/// models' first, 3x3 over the image) as signtop's patches + 1x1 op
/// ([`our_patch_conv`]). Returns how many were rewritten.
fn patches_on_our_op(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, conv: &Conv| {
        on_its_input(model, node, our_patch_conv(model, node, conv)?)
    })
}

/// A patch replacing `node` by `op` on the node's first input alone (its
/// constant weights are inside `op`); `None` when there is no `op`.
fn on_its_input(
    model: &TypedModel,
    node: &TypedNode,
    op: Option<impl TypedOp>,
) -> TractResult<Option<TypedModelPatch>> {
    op.map(|op| TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op))
        .transpose()
}

/// signtop's patch convolution for `conv` (2-D, ungrouped, channels last,
/// batch of one, constant f32 weights and bias, no dilation), or `None`.
fn our_patch_conv(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
) -> TractResult<Option<PatchConv>> {
    if conv.group != 1 {
        return Ok(None);
    }
    let Some((shape, kernel, bias)) = plain_conv_parts(model, node, conv)? else {
        return Ok(None);
    };
    let spatial = match (conv.pool_spec.data_format, &*shape) {
        (DataFormat::NHWC, &[1, h, w, _]) | (DataFormat::HWC, &[h, w, _]) => [h, w],
        _ => return Ok(None),
    };
    let (c, n) = (conv.input_channels(), conv.output_channels());
    let Some((weights, bias)) = patch_order_parts(conv, &kernel, &bias)? else {
        return Ok(None);
    };
    let geometry = window_geometry(conv, spatial, c);
    if geometry.output == [1, 1] {
        // One output pixel: tract takes a matrix-vector kernel, which sums
        // in another order (seen in the hand re-crop model's last
        // convolution and the pose landmark model's presence score).
        return Ok(None);
    }
    Ok(PatchConv::new(geometry, &shape, n, &weights, bias).ok())
}

/// `conv`'s weights and per-channel bias, or `None` when either is not of
/// the convolution's shape.
fn patch_order_parts(
    conv: &Conv,
    kernel: &Tensor,
    bias: &Tensor,
) -> TractResult<Option<(Vec<f32>, Vec<f32>)>> {
    let (Some(weights), Some(bias)) = (
        patch_order_weights(conv, kernel)?,
        per_channel(bias, conv.output_channels())?,
    ) else {
        return Ok(None);
    };
    Ok(Some((weights, bias)))
}

/// `conv`'s weights as `weights[((c * kh + ky) * kw + kx) * N + n]` (input
/// channel, kernel row, kernel column: tract's patch order), or `None` when
/// the kernel is not of the convolution's shape.
fn patch_order_weights(conv: &Conv, kernel: &Tensor) -> TractResult<Option<Vec<f32>>> {
    let (c, n) = (conv.input_channels(), conv.output_channels());
    let [kh, kw] = [
        conv.pool_spec.kernel_shape[0],
        conv.pool_spec.kernel_shape[1],
    ];
    let kernel = kernel.cast_to::<f32>()?;
    let kernel = kernel.to_plain_array_view::<f32>()?;
    let mut weights = vec![0.0f32; c * kh * kw * n];
    for (i, weight) in weights.iter_mut().enumerate() {
        let (patch, o) = (i / n, i % n);
        let (ch, ky, kx) = (patch / (kh * kw), patch / kw % kh, patch % kw);
        let index = match conv.kernel_fmt {
            KernelFormat::OIHW => [o, ch, ky, kx],
            KernelFormat::HWIO => [ky, kx, ch, o],
            KernelFormat::OHWI => [o, ky, kx, ch],
        };
        let Some(&w) = kernel.get(&index[..]) else {
            return Ok(None);
        };
        *weight = w;
    }
    Ok(Some(weights))
}

/// Rewrites each PReLU as tract-onnx expands it, `iff(0 > x, x * slope,
/// x)`, as signtop's one-pass op. Returns how many were rewritten.
fn prelu_in_one_pass(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, _: &Iff| {
        let [test, product, x] = node.inputs[..] else {
            return Ok(None);
        };
        let binary = |outlet: OutletId, name: &str| {
            let node = model.node(outlet.node);
            let is = node
                .op_as::<TypedBinOp>()
                .is_some_and(|b| b.0.name() == name);
            (is && node.inputs.len() == 2).then(|| (node.inputs[0], node.inputs[1]))
        };
        let konst = |outlet: OutletId| model.outlet_fact(outlet).ok()?.konst.clone();
        let (Some((zero, tested)), Some((p, q))) = (binary(test, "GT"), binary(product, "Mul"))
        else {
            return Ok(None);
        };
        let zero_is_zero = konst(zero).and_then(|z| {
            let z = z.cast_to::<f32>().ok()?;
            let z = z.to_plain_array_view::<f32>().ok()?;
            Some(z.iter().all(|&v| v == 0.0))
        });
        let slope = match (p == x, q == x) {
            (true, _) => konst(q),
            (_, true) => konst(p),
            _ => None,
        };
        let fact = model.outlet_fact(x)?;
        let (Some(true), true, Some(slope), Some(shape)) =
            (zero_is_zero, tested == x, slope, fact.shape.as_concrete())
        else {
            return Ok(None);
        };
        if fact.datum_type != f32::datum_type() || slope.datum_type() != f32::datum_type() {
            return Ok(None);
        }
        let Some(op) = Prelu::new(
            shape,
            slope.shape(),
            slope.try_as_plain_ram()?.as_slice::<f32>()?,
        ) else {
            return Ok(None);
        };
        Ok(Some(in_place_of(model, node, node.id, op, &[x])?))
    })
}

/// Folds the ReLU or ReLU6 after each of signtop's convolutions into it
/// (`max(x, 0)`, then `min(x, 6)`: both exact, so the values are the same),
/// saving a pass over its output. Returns how many were folded.
fn fuse_activations(model: &mut TypedModel) -> TractResult<usize> {
    Ok(fuse_clamps::<ChannelsLastDepthwise>(model)?
        + fuse_clamps::<PointwiseConv>(model)?
        + fuse_clamps::<PatchConv>(model)?)
}

/// [`fuse_activations`] for one of signtop's ops.
fn fuse_clamps<O: Clamped + TypedOp + Clone>(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, conv: &O| {
        let mut op = conv.clone();
        let mut last = node.id;
        while let Some((next, bound)) = clamp_after(model, last)? {
            op = match bound {
                Bound::Floor(lo) => op.with_floor(lo),
                Bound::Ceiling(hi) => op.with_ceiling(hi),
            };
            last = next;
        }
        if last == node.id {
            return Ok(None);
        }
        Ok(Some(in_place_of(model, node, last, op, &node.inputs)?))
    })
}

/// One side of a clamp.
enum Bound {
    /// `max(x, lo)`.
    Floor(f32),
    /// `min(x, hi)`.
    Ceiling(f32),
}

/// The node after `id`, if it is `id`'s only reader and takes the max or
/// min of `id`'s output and one constant (of one value, not widening the
/// shape), with that bound.
fn clamp_after(model: &TypedModel, id: usize) -> TractResult<Option<(usize, Bound)>> {
    let Some((next, operation, bound)) = constant_operation_after(model, id)? else {
        return Ok(None);
    };
    if bound.len() != 1 || bound.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let value = bound.cast_to_scalar::<f32>()?;
    let bound = match operation {
        "Max" => Bound::Floor(value),
        "Min" => Bound::Ceiling(value),
        _ => return Ok(None),
    };
    Ok(Some((next, bound)))
}

/// Rewrites every resize of the two axes after the channels of a rank-4
/// tensor (channels first) as: channels moved last, the resize, channels
/// moved back. tract resizes one axis at a time, looping over the axes after
/// it: channels first, the width pass moves one float at a time (2.4 of the
/// pose landmark model's 25 ms); channels last, whole channel vectors.
/// Returns how many were rewritten.
fn resize_channels_last(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, resize: &Resize| {
        let (Some(scales_input), None) =
            (resize.optional_scales_input, resize.optional_sizes_input)
        else {
            return Ok(None);
        };
        let Some(scales) = model.outlet_fact(node.inputs[scales_input])?.konst.clone() else {
            return Ok(None);
        };
        let scales = scales.cast_to::<f32>()?;
        let scales = scales.try_as_plain_ram()?;
        let &[n, c, h, w] = scales.as_slice::<f32>()? else {
            return Ok(None);
        };
        if n != 1.0 || c != 1.0 || model.outlet_fact(node.inputs[0])?.rank() != 4 {
            return Ok(None);
        }
        let patch = with_channels_last(model, node, 1, 3, |patch, mut inputs| {
            let scales = tensor1(&[n, h, w, c]);
            let name = format!("{}.scales_channels_last", node.name);
            inputs[scales_input] = patch.add_const(name, scales)?;
            Ok(patch.wire_node(&node.name, resize.clone(), &inputs)?[0])
        })?;
        Ok(Some(patch))
    })
}

/// Wraps each convolution that tract may run channels first on its direct
/// kernel (ungrouped, a window of at most 576 values, rows of at least 128
/// outputs: tract's own test) in [`KeepLayout`], so that it stays as loaded
/// while the rest of the model turns channels last: moved, it would sum in
/// another order. With `our_ops`, where signtop's [`DirectOrderConv`] gives
/// that kernel's sums channels last, it is rewritten to that op instead
/// (between two moves, which fold away). Returns how many were rewritten.
fn keep_direct_convolutions(model: &mut TypedModel, our_ops: bool) -> TractResult<usize> {
    rewrite_each(model, |model, node, conv: &Conv| {
        let spec = &conv.pool_spec;
        let window: usize = spec.kernel_shape.iter().product();
        let Some(shape) = model.outlet_fact(node.inputs[0])?.shape.as_concrete() else {
            return Ok(None);
        };
        let wide = |w: usize| w >= 128;
        let direct = spec.data_format == DataFormat::NCHW
            && conv.group == 1
            && spec.rank() == 2
            && window >= 2
            && conv.input_channels() * window <= 576
            && shape.len() == 4
            && wide(shape[3])
            && spec
                .output_shape(shape)
                .is_ok_and(|o| o.hw_dims().last().is_some_and(|&w| wide(w)));
        if !direct {
            return Ok(None);
        }
        if our_ops && let Some(op) = direct_order_conv(model, node, conv)? {
            let patch = with_channels_last(model, node, 1, 3, |patch, inputs| {
                Ok(patch.wire_node(&node.name, op, &inputs[..1])?[0])
            })?;
            return Ok(Some(patch));
        }
        let op = KeepLayout(conv.clone());
        Ok(Some(TypedModelPatch::replace_single_op(
            model,
            node,
            &node.inputs,
            op,
        )?))
    })
}

/// signtop's channels-last op with the sums of tract's direct kernel for the
/// channels-first `conv` (batch of one, constant f32 weights and bias, no
/// dilation), or `None`.
fn direct_order_conv(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
) -> TractResult<Option<DirectOrderConv>> {
    let Some((shape, kernel, bias)) = plain_conv_parts(model, node, conv)? else {
        return Ok(None);
    };
    let (&[1, c, h, w], n) = (&*shape, conv.output_channels()) else {
        return Ok(None);
    };
    let Some((weights, bias)) = patch_order_parts(conv, &kernel, &bias)? else {
        return Ok(None);
    };
    let geometry = window_geometry(conv, [h, w], c);
    Ok(DirectOrderConv::new(geometry, n, &weights, &bias))
}

/// Rewrites every channels-first 2-D max pool as: channels moved last, the
/// pool channels last, channels moved back, so that the models' pools sit
/// between channels-last convolutions without a transpose on either side
/// (the face models' blocks pool their shortcut). Returns how many were
/// rewritten.
fn max_pool_channels_last(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, pool: &MaxPool| {
        if pool.with_index_outputs.is_some()
            || pool.pool_spec.data_format != DataFormat::NCHW
            || model.outlet_fact(node.inputs[0])?.rank() != 4
        {
            return Ok(None);
        }
        let patch = with_channels_last(model, node, 1, 3, |patch, inputs| {
            let mut op = pool.clone();
            op.pool_spec.data_format = DataFormat::NHWC;
            Ok(patch.wire_node(&node.name, op, &inputs)?[0])
        })?;
        Ok(Some(patch))
    })
}

/// Moves the channels of each channels-first 1x1 convolution's output last
/// (a matrix product, `EinSum`, by now), and with them everything its
/// output reaches where tract can carry the move: the residual adds between
/// blocks, into the next blocks' matrix products, which take either order.
/// tract's own axis pass leaves these alone (no op there asks for a move),
/// and signtop's 1x1 op is a third faster storing channels last
/// ([`PointwiseConv`]'s channels-first tiles are narrower). A move that
/// meets an op that cannot follow (a model output, a head's reshape) is not
/// made. Returns how many moves were made.
fn residual_stream_channels_last(model: &mut TypedModel) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::change_axes::AxisChange;
    use tract_onnx::tract_core::optim::change_axes::change_axes;
    let mut moved = 0;
    // Each move turns at least one product's output channels last: a bound
    // of one move per product stops any that turned one back from looping.
    let products = model.nodes().iter().filter(|n| n.op_is::<EinSum>()).count();
    while moved < products {
        let mut locked = model.output_outlets()?.to_vec();
        locked.extend(model.input_outlets()?.iter());
        let mut found = None;
        for node in model.nodes() {
            let Some((from, to)) = node.op_as::<EinSum>().and_then(channels_first_output) else {
                continue;
            };
            let change = AxisChange {
                outlet: node.id.into(),
                op: AxisOp::Move(from, to),
            };
            let mut explored = Default::default();
            if let Some((patch, _)) = change_axes(model, &change, &locked, &[], &mut explored)? {
                found = Some(patch);
                break;
            }
        }
        let Some(patch) = found else {
            break;
        };
        patch.apply(model)?;
        // Folds the transposes the move met.
        model.declutter()?;
        moved += 1;
    }
    Ok(moved)
}

/// Where a 1x1 convolution's output channels are and where they would go
/// last, when the product `einsum` writes them before the pixels (`OHW`,
/// after a batch axis or not; the axes are named after the convolution's).
fn channels_first_output(einsum: &EinSum) -> Option<(usize, usize)> {
    let axes = einsum.axes.to_string();
    let (_, output) = axes.split_once("->")?;
    if output.trim_start_matches('N') != "OHW" {
        return None;
    }
    Some((output.find('O')?, output.len() - 1))
}

/// Rewrites every pad of a rank-4 tensor as: channels moved last, the same
/// pad channels last, channels moved back. tract's pad follows an axis added
/// or removed but not one moved, so it would keep a transpose on either side
/// of the face models' shortcuts (which pad their channels).
fn pad_channels_last(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each(model, |model, node, pad: &Pad| {
        if model.outlet_fact(node.inputs[0])?.rank() != 4 {
            return Ok(None);
        }
        let patch = with_channels_last(model, node, 1, 3, |patch, inputs| {
            let mut op = pad.clone();
            let channels = op.pads.remove(1);
            op.pads.push(channels);
            Ok(patch.wire_node(&node.name, op, &inputs)?[0])
        })?;
        Ok(Some(patch))
    })
}

/// A channels-first depthwise `conv` as: channels moved from `c_axis` to
/// `last_axis`, the convolution channels last, channels moved back.
fn transposed_to_channels_last(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    c_axis: usize,
    last_axis: usize,
) -> TractResult<TypedModelPatch> {
    with_channels_last(model, node, c_axis, last_axis, |patch, inputs| {
        Ok(match our_depthwise(model, node, conv)? {
            Some(op) => patch.wire_node(&node.name, op, &inputs[..1])?[0],
            None => {
                let mut op = conv.clone();
                op.pool_spec.data_format = match conv.pool_spec.data_format {
                    DataFormat::CHW => DataFormat::HWC,
                    _ => DataFormat::NHWC,
                };
                op.wire_as_depth_wise(patch, &node.name, &inputs)?
            }
        })
    })
}

/// A patch replacing `node` by: its first input's channels moved from
/// `c_axis` to `last_axis`, what `channels_last` wires on the node's inputs
/// (the first one moved), and its output's channels moved back.
fn with_channels_last(
    model: &TypedModel,
    node: &TypedNode,
    c_axis: usize,
    last_axis: usize,
    channels_last: impl FnOnce(&mut TypedModelPatch, TVec<OutletId>) -> TractResult<OutletId>,
) -> TractResult<TypedModelPatch> {
    let mut patch = TypedModelPatch::default();
    let mut inputs = patch.taps(model, &node.inputs)?;
    let name = |what: &str| format!("{}.{what}", node.name);
    let to_last = AxisOp::Move(c_axis, last_axis);
    inputs[0] = patch.wire_node(name("to_channels_last"), to_last, &[inputs[0]])?[0];
    let y = channels_last(&mut patch, inputs)?;
    let to_first = AxisOp::Move(last_axis, c_axis);
    let y = patch.wire_node(name("to_channels_first"), to_first, &[y])?;
    patch.shunt_outside(model, node.id.into(), y[0])?;
    Ok(patch)
}

/// signtop's channels-last depthwise op for `conv` (2-D, batch of one,
/// constant f32 weights and bias, no dilation), or `None` when the
/// convolution is not of that kind and stays with tract's own op.
fn our_depthwise(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
) -> TractResult<Option<ChannelsLastDepthwise>> {
    let Some((shape, kernel, bias)) = plain_conv_parts(model, node, conv)? else {
        return Ok(None);
    };
    let spatial = match (conv.pool_spec.data_format, &*shape) {
        (DataFormat::NCHW, &[1, _, h, w])
        | (DataFormat::CHW, &[_, h, w])
        | (DataFormat::NHWC, &[1, h, w, _])
        | (DataFormat::HWC, &[h, w, _]) => [h, w],
        _ => return Ok(None),
    };
    let channels = conv.group;
    let [kh, kw] = [
        conv.pool_spec.kernel_shape[0],
        conv.pool_spec.kernel_shape[1],
    ];
    let kernel = kernel.cast_to::<f32>()?;
    let kernel = kernel.to_plain_array_view::<f32>()?;
    // Tap-major: one run of channels per kernel position.
    let mut taps = vec![0.0f32; kh * kw * channels];
    for (i, tap) in taps.iter_mut().enumerate() {
        let (ky, kx, c) = (i / (kw * channels), i / channels % kw, i % channels);
        let index = match conv.kernel_fmt {
            KernelFormat::OIHW => [c, 0, ky, kx],
            KernelFormat::HWIO => [ky, kx, 0, c],
            KernelFormat::OHWI => [c, ky, kx, 0],
        };
        let Some(&w) = kernel.get(&index[..]) else {
            return Ok(None);
        };
        *tap = w;
    }
    let Some(bias) = per_channel(&bias, channels)? else {
        return Ok(None);
    };
    let geometry = window_geometry(conv, spatial, channels);
    ChannelsLastDepthwise::new(geometry, taps, bias, shape.len()).map(Some)
}

/// A convolution's input shape, constant kernel and constant bias.
type ConvParts = (TVec<usize>, Arc<Tensor>, Arc<Tensor>);

/// The input shape, constant kernel and constant bias of `conv` when it is a
/// 2-D f32 convolution without dilation or quantisation whose input shape is
/// known; `None` otherwise.
fn plain_conv_parts(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
) -> TractResult<Option<ConvParts>> {
    let [x, kernel, bias] = node.inputs[..] else {
        return Ok(None);
    };
    let input = model.outlet_fact(x)?;
    if conv.q_params.is_some()
        || input.datum_type != f32::datum_type()
        || conv.pool_spec.kernel_shape.len() != 2
        || conv.pool_spec.dilations().iter().any(|&d| d != 1)
    {
        return Ok(None);
    }
    let (kernel, bias) = (
        model.outlet_fact(kernel)?.konst.clone(),
        model.outlet_fact(bias)?.konst.clone(),
    );
    let (Some(shape), Some(kernel), Some(bias)) = (input.shape.as_concrete(), kernel, bias) else {
        return Ok(None);
    };
    Ok(Some((shape.into(), kernel, bias)))
}

/// A convolution's bias as one value per channel (`n`), or `None` when it
/// holds neither one value nor `n`.
fn per_channel(bias: &Tensor, n: usize) -> TractResult<Option<Vec<f32>>> {
    let bias = bias.cast_to::<f32>()?;
    let bias = bias.try_as_plain_ram()?;
    let bias = bias.as_slice::<f32>()?;
    Ok(match bias.len() {
        1 => Some(vec![bias[0]; n]),
        len if len == n => Some(bias.to_vec()),
        _ => None,
    })
}

/// Where the 2-D `conv`'s windows sit on an input of `spatial` size with
/// `channels` channels.
fn window_geometry(conv: &Conv, spatial: [usize; 2], channels: usize) -> Geometry {
    let kernel = [
        conv.pool_spec.kernel_shape[0],
        conv.pool_spec.kernel_shape[1],
    ];
    let strides = conv.pool_spec.strides();
    let padded = conv
        .pool_spec
        .padding
        .compute(&spatial, &kernel, &[1, 1], &strides);
    Geometry {
        input: spatial,
        output: [padded[0].convoluted, padded[1].convoluted],
        kernel,
        stride: [strides[0], strides[1]],
        pad_before: [padded[0].pad_before, padded[1].pad_before],
        channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This checkout's `models/` folder.
    const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

    /// One of `models/`, input `side` x `side`, on signtop's ops in `order`.
    fn load(file: &str, side: usize, order: ChannelOrder) -> Model {
        let path = Path::new(MODELS).join(file);
        let bytes = std::fs::read(&path).unwrap();
        let shape = [1, side, side, 3];
        Model::load(&path, &bytes, &shape, Rewrites::SigntopOps(order)).unwrap()
    }

    /// The names of the ops in `model`'s plan, in its order.
    fn op_names(model: &Model) -> Vec<String> {
        let nodes = model.plan.model().nodes();
        nodes.iter().map(|n| n.op.name().to_string()).collect()
    }

    /// A smooth, varied image in [0, 1], NHWC.
    fn test_input(side: usize) -> Vec<f32> {
        (0..side * side * 3)
            .map(|i| {
                let (y, x, c) = (i / (side * 3), i / 3 % side, i % 3);
                ((y as f32 * 0.05).sin() * (x as f32 * 0.07 + c as f32).cos() + 1.0) / 2.0
            })
            .collect()
    }

    /// Which parts of the register state are in use (XINUSE, `xgetbv` with
    /// ECX = 1), where the CPU says; bit 2 is the upper halves of ymm0-15.
    #[cfg(target_arch = "x86_64")]
    fn registers_in_use() -> Option<u64> {
        use std::arch::x86_64::{__cpuid_count, _xgetbv};
        /// # Safety
        /// The CPU must have XSAVE and take ECX = 1.
        #[target_feature(enable = "xsave")]
        unsafe fn xinuse() -> u64 {
            // SAFETY: the caller's.
            unsafe { _xgetbv(1) }
        }
        // SAFETY: CPUID leaf 0xD is there on every CPU with XSAVE, checked
        // first; its sub-leaf 1, EAX bit 2, says XGETBV takes ECX = 1.
        unsafe {
            let ok = std::arch::is_x86_feature_detected!("xsave")
                && __cpuid_count(0xD, 1).eax & 0b100 != 0;
            ok.then(|| xinuse())
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_run_leaves_the_upper_vector_registers_clear() {
        // Some of tract's kernels return with the upper halves dirty, and
        // the plain x86-64 code after them would pay on every SSE
        // instruction (see `simd::clear_upper_registers`).
        let Some(_) = registers_in_use() else {
            return;
        };
        for (file, side) in [
            ("pose_landmark_full.onnx", 256),
            ("hand_recrop.onnx", 256),
            ("hand_landmark_full.onnx", 224),
        ] {
            let model = load(file, side, ChannelOrder::ChannelsLast);
            model.run(&test_input(side)).unwrap();
            let in_use = registers_in_use().unwrap();
            assert_eq!(in_use & 0b100, 0, "{file}: XINUSE {in_use:#b}");
        }
    }

    #[test]
    fn channels_last_computes_what_the_loaded_order_does() {
        for (file, side) in [
            ("pose_detection.onnx", 224),
            ("pose_landmark_full.onnx", 256),
            ("hand_landmark_full.onnx", 224),
        ] {
            let loaded = load(file, side, ChannelOrder::AsLoaded);
            let last = load(file, side, ChannelOrder::ChannelsLast);
            let input = test_input(side);
            let (a, b) = (loaded.run(&input).unwrap(), last.run(&input).unwrap());
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                let scale = x.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let worst = x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0, f32::max);
                // The matrix products around the depthwise convolutions see
                // another layout, so the last bits may differ, no more.
                assert!(worst <= 1e-4 * scale, "{file}: {worst} (scale {scale})");
            }
        }
    }

    #[test]
    fn signtops_pointwise_and_prelu_ops_change_no_output_bit() {
        let dir = Path::new(MODELS);
        let two_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let fast = PointwiseConv::is_fast_here();
        if !fast {
            eprintln!("no AVX2 here: signtop's pointwise op is not used");
        }
        let last = ChannelOrder::ChannelsLast;
        let throughout = ChannelOrder::ChannelsLastThroughout;
        // The skip connections' adds folded into the 1x1 convolutions: all
        // but those after another op (a resize, a pool) or channels first;
        // the PReLUs into the convolutions before them, but after an op
        // with other readers; the first two expansions of the pose and hand
        // models fused with the depthwise convolutions after them.
        for (file, order, side, convs, prelus, patches, skips, fused) in [
            ("pose_detection.onnx", last, 224, 44, [0, 0], 1, 9, 2),
            ("pose_landmark_full.onnx", last, 256, 47, [0, 0], 1, 9, 2),
            ("hand_recrop.onnx", throughout, 256, 6, [13, 6], 6, 6, 0),
            ("hand_landmark_full.onnx", last, 224, 30, [0, 0], 1, 9, 2),
            (
                "face_detection_short_range.onnx",
                throughout,
                128,
                20,
                [0, 0],
                1,
                16,
                0,
            ),
            ("face_landmark.onnx", throughout, 192, 22, [23, 2], 1, 19, 0),
        ] {
            let shape = [1, side, side, 3];
            let plan = |ours: bool| {
                let bytes = std::fs::read(dir.join(file)).unwrap();
                let model = typed_model(&bytes, &shape).unwrap();
                let model = optimise_with(model, order, ours).unwrap();
                let count = |n: &&TypedNode| n.op_as::<PointwiseConv>().is_some();
                let rewritten = model.nodes().iter().filter(count).count();
                let count = |n: &&TypedNode| n.op_as::<Prelu>().is_some();
                let one_pass = model.nodes().iter().filter(count).count();
                let count = |n: &&TypedNode| n.op_as::<PatchConv>().is_some();
                let patches = model.nodes().iter().filter(count).count();
                let with_skip = |n: &&TypedNode| {
                    n.op_as::<PointwiseConv>()
                        .is_some_and(|c| c.skip_channels().is_some())
                };
                let skips = model.nodes().iter().filter(with_skip).count();
                let count = |n: &&TypedNode| n.op_as::<ExpandDepthwise>().is_some();
                let fused = model.nodes().iter().filter(count).count();
                (
                    model.into_runnable().unwrap(),
                    [rewritten + fused, one_pass, patches, skips, fused],
                )
            };
            let ((theirs, none), (ours, rewritten)) = (plan(false), plan(true));
            // PReLUs: [all, those left after the convolutions took theirs].
            let (convs, patches, skips, prelus, fused) = if fast {
                (convs, patches, skips, prelus[1], fused)
            } else {
                (0, 0, 0, prelus[0], 0)
            };
            assert_eq!(none, [0, 0, 0, 0, 0], "{file}");
            assert_eq!(
                rewritten,
                [convs, prelus, patches, skips, fused],
                "{file}: 1x1 convolutions, PReLUs, other convolutions, skips folded, \
                 1x1 convolutions fused with a depthwise one"
            );
            let input = Tensor::from_shape(&shape, &test_input(side)).unwrap();
            let run = |plan: &Arc<TypedRunnableModel>| {
                let out = plan.run(tvec!(input.clone().into())).unwrap();
                out.iter()
                    .map(|t| {
                        t.to_plain_array_view::<f32>()
                            .unwrap()
                            .iter()
                            .map(|v| v.to_bits())
                            .collect()
                    })
                    .collect::<Vec<Vec<u32>>>()
            };
            let expected = run(&theirs);
            assert!(run(&ours) == expected, "{file}: outputs differ");
            // Cut into parts on two threads, as on the landmark threads: the
            // same bits again.
            let on_threads =
                two_threads.install(|| super::super::parallel::with_helper(|| run(&ours)));
            assert!(
                on_threads == expected,
                "{file}: outputs differ on two threads"
            );
        }
    }

    /// One of `models/` as tract's decluttered graph, before any rewrite.
    fn decluttered(file: &str, side: usize) -> TypedModel {
        let path = Path::new(MODELS).join(file);
        let bytes = std::fs::read(path).unwrap();
        let mut model = typed_model(&bytes, &[1, side, side, 3]).unwrap();
        model.declutter().unwrap();
        model
    }

    #[test]
    fn channels_last_rewrites_every_depthwise_convolution() {
        let mut model = decluttered("hand_landmark_full.onnx", 224);
        let tracts = |m: &TypedModel| {
            let depthwise = |n: &&TypedNode| n.op_as::<Conv>().is_some_and(|c| c.group > 1);
            m.nodes().iter().filter(depthwise).count()
        };
        let ours = |m: &TypedModel| {
            let ours = |n: &&TypedNode| n.op_as::<ChannelsLastDepthwise>().is_some();
            m.nodes().iter().filter(ours).count()
        };
        let before = tracts(&model);
        assert_eq!(before, 16, "the hand model's depthwise convolutions");
        assert_eq!(depthwise_channels_last(&mut model).unwrap(), before);
        assert_eq!(tracts(&model), 0);
        assert_eq!(ours(&model), before, "all of them run by signtop's op");
        let again = depthwise_channels_last(&mut model).unwrap();
        assert_eq!(again, 0, "nothing left to rewrite");
    }

    #[test]
    fn the_pose_models_resizes_run_on_signtops_op() {
        for (file, side, resizes) in [
            ("pose_landmark_full.onnx", 256, 3),
            ("pose_detection.onnx", 224, 2),
        ] {
            let names = op_names(&load(file, side, ChannelOrder::ChannelsLast));
            let count = |name: &str| names.iter().filter(|n| *n == name).count();
            assert_eq!(count("ChannelsLastResize"), resizes, "{file}: {names:?}");
            assert_eq!(count("Resize"), 0, "{file}: {names:?}");
        }
    }

    #[test]
    fn output_shapes_are_known_and_none_past_the_last() {
        let pose = load("pose_landmark_full.onnx", 256, ChannelOrder::ChannelsLast);
        assert_eq!(pose.output_shape(0), Some(vec![1, 195]));
        assert_eq!(
            pose.output_shape(2),
            Some(vec![1, 64, 64, 39]),
            "the heatmap"
        );
        assert_eq!(pose.output_shape(4), None, "four outputs");
    }

    #[test]
    fn the_residual_stream_moves_channels_last_where_tract_can_carry_it() {
        let channels_first = |m: &TypedModel| {
            let first = |n: &&TypedNode| {
                n.op_as::<EinSum>()
                    .and_then(channels_first_output)
                    .is_some()
            };
            m.nodes().iter().filter(first).count()
        };
        // (file, side, 1x1 outputs channels first left: the pose landmark
        // model's heads from 8 x 8 pixels on, which reach its outputs).
        for (file, side, left) in [
            ("hand_landmark_full.onnx", 224, 0),
            ("pose_landmark_full.onnx", 256, 12),
        ] {
            let mut model = decluttered(file, side);
            depthwise_channels_last(&mut model).unwrap();
            resize_channels_last(&mut model).unwrap();
            model.declutter().unwrap();
            let before = channels_first(&model);
            assert!(before >= 15, "{file}: {before}");
            let moves = residual_stream_channels_last(&mut model).unwrap();
            assert!(moves > 0, "{file}");
            assert_eq!(channels_first(&model), left, "{file}");
            assert_eq!(
                residual_stream_channels_last(&mut model).unwrap(),
                0,
                "{file}"
            );
        }
    }

    #[test]
    fn the_face_models_run_channels_last_from_end_to_end() {
        for (file, side) in [
            ("face_detection_short_range.onnx", 128),
            ("face_landmark.onnx", 192),
        ] {
            // Moves of more than a head's few values (a 1x1 output's).
            let moves = |order| {
                let plan = load(file, side, order);
                let model = plan.plan.model();
                let moved = |n: &&TypedNode| {
                    let big = model.outlet_fact(n.id.into()).is_ok_and(|f| {
                        f.shape
                            .as_concrete()
                            .is_some_and(|s| s.iter().product::<usize>() > 2000)
                    });
                    let tracts = n
                        .op_as::<AxisOp>()
                        .is_some_and(|op| matches!(op, AxisOp::Move(..)));
                    big && (tracts || n.op_is::<ChannelMove>())
                };
                model.nodes().iter().filter(moved).count()
            };
            assert_eq!(moves(ChannelOrder::ChannelsLastThroughout), 0, "{file}");
            assert!(moves(ChannelOrder::ChannelsLast) > 10, "{file}");
        }
    }

    #[test]
    fn the_re_crop_models_first_convolution_runs_channels_last_with_tracts_direct_sums() {
        let names = op_names(&load(
            "hand_recrop.onnx",
            256,
            ChannelOrder::ChannelsLastThroughout,
        ));
        let count = |name: &str| names.iter().filter(|n| *n == name).count();
        let fma = super::super::Simd::of_this_cpu() >= super::super::Simd::Avx2;
        // Channels last where tract's direct kernel's sums can be had there
        // (signtop's op), else kept channels first on tract's own op.
        assert_eq!(count("DirectOrderConv"), usize::from(fma), "{names:?}");
        assert_eq!(count("KeepLayout"), 0, "{names:?}");
        assert_eq!(count("ChannelsLastDepthwise"), 19, "{names:?}");
        // With it channels last, no move is left: not the input's, not its
        // output's.
        let moves = count("ChannelMove") + count("MoveAxis");
        assert_eq!(moves, if fma { 0 } else { 2 }, "{names:?}");
    }

    #[test]
    fn every_max_pool_of_the_models_runs_on_signtops_op() {
        // The re-crop and face models pool channels last, pose landmark
        // channels first; none is left on tract's pool.
        for (file, side, pools) in [
            ("hand_recrop.onnx", 256, 6),
            ("face_detection_short_range.onnx", 128, 3),
            ("face_landmark.onnx", 192, 5),
            ("pose_landmark_full.onnx", 256, 2),
        ] {
            let order = crate::landmarks::models::channel_order(file);
            let names = op_names(&load(file, side, order));
            let ours = names.iter().filter(|n| *n == "MaxPool2x2").count();
            assert_eq!(ours, pools, "{file}");
            assert!(
                !names
                    .iter()
                    .any(|n| n.contains("MaxPool") && n != "MaxPool2x2"),
                "{file}"
            );
        }
    }

    #[test]
    fn the_relu6_after_each_depthwise_convolution_is_folded_into_it() {
        let mut model = decluttered("hand_landmark_full.onnx", 224);
        depthwise_channels_last(&mut model).unwrap();
        model.declutter().unwrap();
        let clamps = |m: &TypedModel| {
            let bins = m.nodes().iter().filter_map(|n| n.op_as::<TypedBinOp>());
            bins.filter(|b| matches!(b.0.name(), "Max" | "Min")).count()
        };
        let before = clamps(&model);
        let folded = fuse_activations(&mut model).unwrap();
        assert_eq!(
            folded, 16,
            "every depthwise convolution is followed by a ReLU6"
        );
        assert_eq!(clamps(&model), before - 2 * folded, "a max and a min each");
        assert_eq!(
            fuse_activations(&mut model).unwrap(),
            0,
            "nothing left to fold"
        );
    }

    #[test]
    fn channels_last_rewrites_the_pose_models_resizes() {
        let mut model = decluttered("pose_landmark_full.onnx", 256);
        assert_eq!(
            resize_channels_last(&mut model).unwrap(),
            3,
            "its 3 upsamplings"
        );
        assert_eq!(
            resize_channels_last(&mut model).unwrap(),
            0,
            "all channels last now"
        );
    }

    #[test]
    fn multiply_adds_are_counted_per_model() {
        let count = |file: &str, side: usize| {
            let path = Path::new(MODELS).join(file);
            let bytes = std::fs::read(&path).unwrap();
            multiply_adds(&path, &bytes, &[1, side, side, 3]).unwrap()
        };
        let hand = count("hand_landmark_full.onnx", 224);
        // MediaPipe's model card: about 0.4 GFLOPs... of multiply-adds, the
        // hand model's order of magnitude; the pose model is bigger.
        assert!((100_000_000..2_000_000_000).contains(&hand), "{hand}");
        assert!(count("pose_landmark_full.onnx", 256) > hand);
        assert!(count("face_detection_short_range.onnx", 128) < hand);
    }
}
