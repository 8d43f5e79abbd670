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

use super::simd::Simd;

/// `x * slope` where `x < 0`, else `x`; one slope per channel.
#[derive(Debug, Clone)]
pub struct Prelu {
    /// One per channel (one in all for a single slope).
    slopes: Arc<Vec<f32>>,
    /// The shape of the tensors it applies to.
    shape: TVec<usize>,
    /// The channel axis the slopes run along; `None` for a single slope.
    axis: Option<usize>,
}

/// Equal when they compute the same thing (tract compares ops).
impl PartialEq for Prelu {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.shape == other.shape
            && self.axis == other.axis
            && bits(&self.slopes) == bits(&other.slopes)
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
        let axis = match axes[..] {
            [] => None,
            [axis] if slopes_shape[axis] == shape[skip + axis] => Some(skip + axis),
            _ => return None,
        };
        Some(Prelu {
            slopes: Arc::new(slopes.to_vec()),
            shape: shape.into(),
            axis,
        })
    }

    /// One slope for each of the `channels` channels of a channels-last
    /// tensor of this PReLU's shape; `None` when its slopes run along
    /// another axis.
    pub fn slopes_along_last(&self, channels: usize) -> Option<Vec<f32>> {
        match self.axis {
            None => Some(vec![*self.slopes.first()?; channels]),
            Some(axis) if axis + 1 == self.shape.len() && self.slopes.len() == channels => {
                Some(self.slopes.to_vec())
            }
            Some(_) => None,
        }
    }

    /// Values between one channel and the next (the product of the axes
    /// after the channel axis; all of them for a single slope).
    fn inner(&self) -> usize {
        let after = self.axis.map_or(0, |axis| axis + 1);
        self.shape[after..].iter().product::<usize>().max(1)
    }

    /// Applies the PReLU to `values` in place.
    pub fn apply(&self, values: &mut [f32]) {
        let channels = self.slopes.len();
        let inner = self.inner();
        if inner == 1 && channels > 1 {
            // Channels last: the slopes repeated along a row of whole pixels
            // long enough to vectorise over.
            let pixels = 256usize.div_ceil(channels);
            let row: Vec<f32> = self
                .slopes
                .iter()
                .copied()
                .cycle()
                .take(pixels * channels)
                .collect();
            for run in values.chunks_mut(row.len()) {
                with_slopes(run, &row);
            }
            return;
        }
        for (i, run) in values.chunks_mut(inner).enumerate() {
            with_slope(run, self.slopes[i % channels]);
        }
    }

    /// This PReLU on tensors whose axes were changed by `change`; `None`
    /// when the change removes the channel axis.
    fn with_axes_changed(&self, change: &AxisOp) -> Option<Prelu> {
        let mut shape = self.shape.clone();
        change.change_shape_array(&mut shape, false).ok()?;
        let axis = match self.axis {
            Some(axis) => Some(change.transform_axis(axis)?),
            None => None,
        };
        Some(Prelu {
            slopes: self.slopes.clone(),
            shape,
            axis,
        })
    }
}

/// `v * slope` where `v < 0`, a slope for each value. The same product and
/// select at every SIMD level; the wider ones only do more at once.
fn with_slopes(values: &mut [f32], slopes: &[f32]) {
    #[inline(always)]
    fn each(values: &mut [f32], slopes: &[f32]) {
        for (v, &slope) in values.iter_mut().zip(slopes) {
            // A select rather than a branch, so that it vectorises.
            *v = if 0.0 > *v { *v * slope } else { *v };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(values: &mut [f32], slopes: &[f32]) {
            each(values, slopes)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(values: &mut [f32], slopes: &[f32]) {
            each(values, slopes)
        }
        // SAFETY: the chosen level is one this CPU has.
        match Simd::chosen() {
            Simd::Avx512 => return unsafe { avx512(values, slopes) },
            Simd::Avx2 => return unsafe { avx2(values, slopes) },
            Simd::Portable => {}
        }
    }
    each(values, slopes)
}

/// [`with_slopes`] with one slope for all.
fn with_slope(values: &mut [f32], slope: f32) {
    let slopes = [slope; 256];
    for chunk in values.chunks_mut(slopes.len()) {
        with_slopes(chunk, &slopes);
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
        ensure!(
            input.shape.as_concrete() == Some(&*self.shape),
            "input {:?}",
            input.shape
        );
        Ok(tvec!(input.without_value()))
    }

    /// The PReLU follows the axes of its tensor moving (so a model can turn
    /// channels last around it), as an element-wise op does.
    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        Ok(self
            .with_axes_changed(change)
            .map(|op| AxisChangeConsequence::new(model, node, Some(Box::new(op)), change)))
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
    fn follows_its_channel_axis_when_the_axes_move() {
        let first = Prelu::new(&[1, 2, 3, 2], &[1, 2, 1, 1], &[0.5, 0.25]).unwrap();
        let last = first.with_axes_changed(&AxisOp::Move(1, 3)).unwrap();
        assert_eq!((&*last.shape, last.axis), (&[1, 3, 2, 2][..], Some(3)));
        let values: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
        let mut by_first = values.clone();
        first.apply(&mut by_first);
        // The same values channels last, then moved back.
        let mut by_last: Vec<f32> = (0..12).map(|i| values[(i % 2) * 6 + i / 2]).collect();
        last.apply(&mut by_last);
        let back: Vec<f32> = (0..12).map(|i| by_last[(i % 6) * 2 + i / 6]).collect();
        assert_eq!(back, by_first);
        assert!(first.with_axes_changed(&AxisOp::Rm(1)).is_none());
    }

    #[test]
    fn rejects_slopes_that_are_not_per_channel() {
        assert!(Prelu::new(&[1, 2, 2, 2], &[1, 2, 2, 1], &[0.0; 4]).is_none());
        assert!(Prelu::new(&[1, 2, 2, 2], &[1, 3, 1, 1], &[0.0; 3]).is_none());
        assert!(Prelu::new(&[2, 2], &[1, 1, 2], &[0.0; 2]).is_none());
    }
}
