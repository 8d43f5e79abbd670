//! PReLU in one pass, as a tract op.
//!
//! tract-onnx 0.23.9 expands ONNX's PRelu into three element-wise ops (a
//! comparison with zero into a boolean tensor, a product with the slopes,
//! a select), each a pass over memory with a tensor of its own: in the hand
//! re-crop and face models that was 25-30% of their time. This op computes
//! `if 0 > x { x * slope } else { x }` in one pass: the same product,
//! rounded once, so the same values to the bit.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// `x * slope` where `x < 0`, else `x`; one slope per channel.
#[derive(Debug, Clone)]
pub struct Prelu {
    /// One per channel (one in all for a single slope).
    slopes: Arc<Vec<f32>>,
    /// Values between one channel and the next (the product of the axes
    /// after the channel axis).
    inner: usize,
}

/// Equal when they compute the same thing (tract compares ops).
impl PartialEq for Prelu {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.inner == other.inner && bits(&self.slopes) == bits(&other.slopes)
    }
}

impl Eq for Prelu {}

impl Prelu {
    /// A PReLU over tensors of `shape` with `slopes` shaped to broadcast
    /// against it (one value, or one per channel along one axis); `None`
    /// when they are shaped otherwise.
    pub fn new(shape: &[usize], slopes_shape: &[usize], slopes: &[f32]) -> Option<Prelu> {
        if slopes_shape.len() > shape.len()
            || slopes.len() != slopes_shape.iter().product::<usize>()
        {
            return None;
        }
        let skip = shape.len() - slopes_shape.len();
        let axes: Vec<usize> = (0..slopes_shape.len())
            .filter(|&a| slopes_shape[a] != 1)
            .collect();
        let inner = match axes[..] {
            [] => 1,
            [axis] if slopes_shape[axis] == shape[skip + axis] => {
                shape[skip + axis + 1..].iter().product()
            }
            _ => return None,
        };
        Some(Prelu {
            slopes: Arc::new(slopes.to_vec()),
            inner,
        })
    }

    /// Applies the PReLU to `values` in place.
    pub fn apply(&self, values: &mut [f32]) {
        let channels = self.slopes.len();
        for (i, run) in values.chunks_mut(self.inner).enumerate() {
            let slope = self.slopes[i % channels];
            for v in run {
                // A select rather than a branch, so that it vectorises.
                *v = if 0.0 > *v { *v * slope } else { *v };
            }
        }
    }
}

impl Op for Prelu {
    fn name(&self) -> StaticName {
        "Prelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Prelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut output = input.into_tensor();
        let mut view = output.try_as_plain_ram_mut()?;
        self.apply(view.as_slice_mut::<f32>()?);
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Prelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let [input] = inputs else {
            bail!("{} takes one input", self.name());
        };
        ensure!(input.datum_type == f32::datum_type(), "f32 only");
        Ok(tvec!(input.without_value()))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_the_negative_values_of_each_channel_by_its_slope() {
        // NCHW, 2 channels of 2x2: slopes along axis 1.
        let prelu = Prelu::new(&[1, 2, 2, 2], &[1, 2, 1, 1], &[0.5, 0.25]).unwrap();
        let mut v = vec![-2.0, 2.0, -4.0, 0.0, -2.0, 2.0, -4.0, -0.0];
        prelu.apply(&mut v);
        assert_eq!(v, [-1.0, 2.0, -2.0, 0.0, -0.5, 2.0, -1.0, -0.0]);
        // Channels last: slopes along the last axis.
        let last = Prelu::new(&[2, 2], &[2], &[0.5, 0.25]).unwrap();
        let mut v = vec![-2.0, -2.0, -4.0, 4.0];
        last.apply(&mut v);
        assert_eq!(v, [-1.0, -0.5, -2.0, 4.0]);
        let nan = f32::NAN;
        let mut v = vec![nan];
        Prelu::new(&[1], &[1], &[0.5]).unwrap().apply(&mut v);
        assert!(v[0].is_nan());
    }

    #[test]
    fn rejects_slopes_that_are_not_per_channel() {
        assert!(Prelu::new(&[1, 2, 2, 2], &[1, 2, 2, 1], &[0.0; 4]).is_none());
        assert!(Prelu::new(&[1, 2, 2, 2], &[1, 3, 1, 1], &[0.0; 3]).is_none());
        assert!(Prelu::new(&[2, 2], &[1, 1, 2], &[0.0; 2]).is_none());
    }
}
