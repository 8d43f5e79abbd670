//! What signtop's convolution ops (depthwise, pointwise, patches) share as
//! tract ops: one f32 input of a fixed shape, one output of a fixed shape,
//! every output value written by the op's own `convolve`.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// A convolution with fixed shapes that writes every value of its output.
pub trait FixedConvolution: Op {
    /// The input shape it takes.
    fn input_shape(&self) -> TVec<usize>;
    /// The output shape it gives.
    fn output_shape(&self) -> TVec<usize>;
    /// Convolves `input` into `output`, writing every value of `output`.
    fn convolve(&self, input: &[f32], output: &mut [f32]);
}

/// `EvalOp::eval` of a [`FixedConvolution`].
pub fn eval(op: &impl FixedConvolution, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
    let input = args_1!(inputs);
    let expected = op.input_shape();
    ensure!(
        input.shape() == &*expected,
        "{} expects input {expected:?}, got {:?}",
        op.name(),
        input.shape()
    );
    let input = input.try_as_plain_ram()?;
    // SAFETY: `convolve` writes every output value (each op's tests hand it
    // a buffer of NaNs and compare every value).
    let mut output = unsafe { Tensor::uninitialized::<f32>(&op.output_shape())? };
    let mut view = output.try_as_plain_ram_mut()?;
    op.convolve(input.as_slice::<f32>()?, view.as_slice_mut::<f32>()?);
    Ok(tvec!(output.into_tvalue()))
}

/// `TypedOp::output_facts` of a [`FixedConvolution`].
pub fn output_facts(
    op: &impl FixedConvolution,
    inputs: &[&TypedFact],
) -> TractResult<TVec<TypedFact>> {
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
