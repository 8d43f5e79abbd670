//! A convolution that keeps its channel order while the rest of its model
//! turns channels last, as a tract op.
//!
//! tract's optimiser moves a convolution's channels wherever the ops around
//! it go. For most convolutions signtop's ops then give the same bits in
//! either order, but where tract runs a channels-first convolution on its
//! direct kernel (the hand re-crop model's first: it starts each sum from
//! the bias, and ends some rows without fused multiply-adds), a move would
//! change its sums' order and its last bits. Wrapped in this op, the
//! convolution refuses axis changes, so a transpose stays after it instead,
//! and becomes tract's own kernel again when the model is optimised. (Where
//! signtop's [`super::direct_order::DirectOrderConv`] can give that kernel's
//! sums channels last, it takes the convolution's place instead.)

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Conv;

/// `Conv`, its channel order held as loaded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeepLayout(pub Conv);

impl Op for KeepLayout {
    fn name(&self) -> StaticName {
        "KeepLayout".into()
    }

    op_as_typed_op!();
}

impl EvalOp for KeepLayout {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(ctx, inputs)
    }
}

impl TypedOp for KeepLayout {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        self.0.cost(inputs)
    }

    /// The convolution's own lowering (to its direct kernel, say), which
    /// replaces this op.
    fn codegen(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        self.0.codegen(model, node)
    }

    as_op!();
}
