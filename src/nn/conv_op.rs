//! What signtop's own ops (the depthwise, pointwise and patch convolutions,
//! the channel moves) share as tract ops: one f32 input of a fixed shape,
//! one output of a fixed shape, every output value written by the op's own
//! `compute`.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// An op with fixed shapes that writes every value of its output.
pub trait FixedShapeOp: Op {
    /// The input shape it takes.
    fn input_shape(&self) -> TVec<usize>;
    /// The output shape it gives.
    fn output_shape(&self) -> TVec<usize>;
    /// Computes `output` from `input`, writing every value of `output`.
    fn compute(&self, input: &[f32], output: &mut [f32]);
}

/// A convolution whose outputs are clamped to `[lo, hi]`: the ReLU or ReLU6
/// after it folded in.
pub trait Clamped: Sized {
    /// The `[lo, hi]` bounds (`[-inf, inf]` for none).
    fn clamp_mut(&mut self) -> &mut [f32; 2];

    /// This convolution followed by `max(x, lo)`: a ReLU folded in.
    fn with_floor(mut self, lo: f32) -> Self {
        let clamp = self.clamp_mut();
        clamp[0] = clamp[0].max(lo);
        self
    }

    /// This convolution followed by `min(x, hi)`: ReLU6's upper bound.
    fn with_ceiling(mut self, hi: f32) -> Self {
        let clamp = self.clamp_mut();
        clamp[1] = clamp[1].min(hi);
        self
    }
}

/// A convolution that can take the PReLU after it: `v * slope` where `0 >
/// v`, one slope per output channel, after its sums and before any clamp.
pub trait PreluFolded: Sized {
    /// The output channels of a channels-last output (a slope each), or
    /// `None` when the PReLU cannot be folded in.
    fn prelu_channels(&self) -> Option<usize>;

    /// This convolution with the PReLU of `slopes` folded in.
    fn with_prelu(self, slopes: &[f32]) -> TractResult<Self>;
}

/// The `EvalOp` and `TypedOp` of a [`FixedShapeOp`] type: [`eval`] and
/// [`output_facts`] on its one input, and the other `TypedOp` items given
/// in the braces (its `cost`, for one).
macro_rules! fixed_shape_tract_op {
    ($op:ty { $($typed_op_items:tt)* }) => {
        impl EvalOp for $op {
            op_out_of_plan!();

            fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
                $crate::nn::conv_op::eval(self, inputs)
            }
        }

        impl TypedOp for $op {
            fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
                $crate::nn::conv_op::output_facts(self, inputs)
            }

            $($typed_op_items)*

            as_op!();
        }
    };
}
pub(crate) use fixed_shape_tract_op;

/// `EvalOp::eval` of a [`FixedShapeOp`].
pub fn eval(op: &impl FixedShapeOp, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
    let input = args_1!(inputs);
    let expected = op.input_shape();
    ensure!(
        input.shape() == &*expected,
        "{} expects input {expected:?}, got {:?}",
        op.name(),
        input.shape()
    );
    let input = input.try_as_plain_ram()?;
    // SAFETY: `compute` writes every output value (each op's tests hand it
    // a buffer of NaNs and compare every value).
    let mut output = unsafe { Tensor::uninitialized::<f32>(&op.output_shape())? };
    let mut view = output.try_as_plain_ram_mut()?;
    op.compute(input.as_slice::<f32>()?, view.as_slice_mut::<f32>()?);
    Ok(tvec!(output.into_tvalue()))
}

/// `TypedOp::output_facts` of a [`FixedShapeOp`].
pub fn output_facts(op: &impl FixedShapeOp, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
    let [input] = inputs else {
        bail!("{} takes one input", op.name());
    };
    ensure!(input.datum_type == f32::datum_type(), "f32 only");
    ensure!(
        input.shape.as_concrete() == Some(&*op.input_shape()),
        "input shape"
    );
    Ok(tvec!(f32::fact(&*op.output_shape())))
}

/// Deterministic values in [-1, 1) for the ops' tests, varied by `seed`.
#[cfg(test)]
pub fn test_values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

/// What tract's own optimised `conv` computes on `input` (output shape and
/// values): the reference the ops' tests hold signtop's ops to, bit for bit.
#[cfg(test)]
pub fn tracts_convolution(
    conv: tract_onnx::tract_core::ops::cnn::conv::Conv,
    input_shape: &[usize],
    kernel: Tensor,
    bias: &[f32],
    input: &[f32],
) -> (TVec<usize>, Vec<f32>) {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(input_shape)).unwrap();
    let w = model.add_const("w", kernel).unwrap();
    let b = model.add_const("b", tensor1(bias)).unwrap();
    let y = model.wire_node("conv", conv, &[x, w, b]).unwrap();
    model.select_output_outlets(&y).unwrap();
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let x = Tensor::from_shape(input_shape, input).unwrap();
    let out = plan.run(tvec!(x.into())).unwrap();
    let values = out[0].to_plain_array_view::<f32>().unwrap();
    (values.shape().into(), values.iter().copied().collect())
}
