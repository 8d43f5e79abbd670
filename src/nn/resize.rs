//! A channels-last image resized along its height and width, as a tract op.
//!
//! tract's resize (the pose models' upsampling) works out its plan for each
//! axis on every run, copies the tensor in and out of a vector per axis, and
//! runs on one thread. This op takes tract's own plans once, when the model
//! is loaded, and resamples each output row from its input rows, then along
//! the row, the rows in bands on both threads. The sums are tract's to the
//! bit: the same plans, the same order (height first, then width), each
//! value started from zero and each tap's product added in turn.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::resize::AxisPlan;

use super::conv_op::{self, FixedShapeOp};
use super::parallel;

/// An `[1,] H, W, C` f32 image resized to `[1,] H', W', C` by tract's plans
/// for its height and width.
#[derive(Debug, Clone)]
pub struct ChannelsLastResize {
    /// Input and output height, width and channels.
    input: [usize; 3],
    output: [usize; 3],
    /// tract's plans for the height and the width (`None`: the axis is
    /// kept as it is, as tract keeps an axis of the same length and scale 1).
    plans: Arc<[Option<AxisPlan>; 2]>,
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

/// Equal when they resize the same shapes (the plans follow from tract's op,
/// which the shapes and its settings fix; tract compares ops to merge them).
impl PartialEq for ChannelsLastResize {
    fn eq(&self, other: &Self) -> bool {
        let plan_bits = |p: &Option<AxisPlan>| {
            p.as_ref().map(|p| {
                let weights: Vec<u32> = p.weights.iter().map(|w| w.to_bits()).collect();
                (p.window, p.indices.clone(), weights, p.extrapolated.clone())
            })
        };
        self.input_shape == other.input_shape
            && self.output_shape == other.output_shape
            && self
                .plans
                .iter()
                .map(plan_bits)
                .eq(other.plans.iter().map(plan_bits))
    }
}

impl Eq for ChannelsLastResize {}

impl std::hash::Hash for ChannelsLastResize {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.input_shape.hash(state);
        self.output_shape.hash(state);
    }
}

impl ChannelsLastResize {
    /// The resize of `input_shape` into `output_shape` (`[1,] H, W, C`, the
    /// same channels) by `plans` (height's, width's: as long as the output's
    /// height and width, reading inside the input's; `None` for an axis kept
    /// as it is).
    pub fn new(
        input_shape: &[usize],
        output_shape: &[usize],
        plans: [Option<AxisPlan>; 2],
    ) -> TractResult<Self> {
        let hwc = |shape: &[usize]| -> TractResult<[usize; 3]> {
            match shape {
                [1, h, w, c] | [h, w, c] => Ok([*h, *w, *c]),
                _ => bail!("resize of shape {shape:?}"),
            }
        };
        let (input, output) = (hwc(input_shape)?, hwc(output_shape)?);
        ensure!(input[2] == output[2], "channels");
        ensure!(input_shape.len() == output_shape.len(), "rank");
        for (axis, plan) in plans.iter().enumerate() {
            let Some(plan) = plan else {
                ensure!(input[axis] == output[axis], "an axis kept changes length");
                continue;
            };
            ensure!(plan.window > 0, "empty window");
            ensure!(plan.extrapolated.len() == output[axis], "plan length");
            ensure!(
                plan.indices.len() == plan.window * output[axis],
                "plan taps"
            );
            ensure!(plan.weights.len() == plan.indices.len(), "plan weights");
            ensure!(
                plan.indices.iter().all(|&i| i < input[axis]),
                "plan reads outside"
            );
        }
        Ok(ChannelsLastResize {
            input,
            output,
            plans: Arc::new(plans),
            input_shape: input_shape.into(),
            output_shape: output_shape.into(),
        })
    }

    /// Resizes `input` into `output`, in bands of output rows on the free
    /// threads of the current pool.
    pub fn resize(&self, input: &[f32], output: &mut [f32]) {
        let [out_h, out_w, c] = self.output;
        let [in_h, in_w, _] = self.input;
        let input = &input[..in_h * in_w * c];
        let row_len = out_w * c;
        let window = |p: &Option<AxisPlan>| p.as_ref().map_or(1, |p| p.window);
        let row_work = row_len * (window(&self.plans[0]) + window(&self.plans[1]));
        parallel::for_each_band(
            &mut output[..out_h * row_len],
            row_len,
            row_work,
            |rows, band| {
                let mut column = vec![0.0f32; in_w * c];
                for (y, out_row) in rows.zip(band.chunks_exact_mut(row_len)) {
                    resample(&self.plans[0], y, input, in_w * c, &mut column);
                    for (x, out_pixel) in out_row.chunks_exact_mut(c).enumerate() {
                        resample(&self.plans[1], x, &column, c, out_pixel);
                    }
                }
            },
        );
    }
}

/// Output index `x` of `plan`'s axis into `to`: the taps' products of
/// `from`'s runs of `run` values, summed from zero in the plan's order
/// (tract's `resample_axis` on one index; zero where it extrapolates), or
/// run `x` as it is without a plan.
fn resample(plan: &Option<AxisPlan>, x: usize, from: &[f32], run: usize, to: &mut [f32]) {
    let Some(plan) = plan else {
        to.copy_from_slice(&from[x * run..][..run]);
        return;
    };
    to.fill(0.0);
    if plan.extrapolated[x] {
        return;
    }
    let taps = plan.window;
    let indices = &plan.indices[x * taps..][..taps];
    let weights = &plan.weights[x * taps..][..taps];
    for (&i, &w) in indices.iter().zip(weights) {
        if w == 0.0 {
            continue;
        }
        for (d, &s) in to.iter_mut().zip(&from[i * run..][..run]) {
            *d += w * s;
        }
    }
}

impl FixedShapeOp for ChannelsLastResize {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        self.resize(input, output)
    }
}

impl Op for ChannelsLastResize {
    fn name(&self) -> StaticName {
        "ChannelsLastResize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}", self.input, self.output)])
    }

    op_as_typed_op!();
}

conv_op::fixed_shape_tract_op!(ChannelsLastResize {});

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::Resize;
    use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator, Nearest};

    /// A tract resize of an NHWC image by `scales`.
    fn tracts_resize(interpolator: Interpolator) -> Resize {
        Resize {
            coord_transformer: CoordTransformer::HalfPixel,
            interpolator,
            nearest: Nearest::Floor,
            optional_scales_input: Some(1),
            optional_sizes_input: None,
        }
    }

    #[test]
    fn resizes_as_tract_does_to_the_bit() {
        // Up by two (the pose models'), up by a non-integer factor, down, and
        // a height kept as it is; bilinear, and cubic's four taps.
        for (input, output, interpolator) in [
            ([1, 8, 8, 5], [1, 16, 16, 5], Interpolator::Linear),
            ([1, 6, 7, 3], [1, 9, 10, 3], Interpolator::Linear),
            ([1, 9, 9, 4], [1, 4, 5, 4], Interpolator::Linear),
            ([1, 5, 6, 2], [1, 5, 12, 2], Interpolator::Linear),
            ([1, 6, 6, 3], [1, 12, 12, 3], Interpolator::Cubic),
        ] {
            let scales: Vec<f32> = input
                .iter()
                .zip(&output)
                .map(|(&i, &o)| o as f32 / i as f32)
                .collect();
            let resize = tracts_resize(interpolator);
            let volume: usize = input.iter().product();
            let values: Vec<f32> = (0..volume)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(input)).unwrap();
            let s = model.add_const("scales", tensor1(&scales)).unwrap();
            let y = model.wire_node("resize", resize.clone(), &[x, s]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let plan = model.into_runnable().unwrap();
            let theirs = plan
                .run(tvec!(Tensor::from_shape(&input, &values).unwrap().into()))
                .unwrap();
            let theirs: Vec<f32> = theirs[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect();
            let plan_of = |axis: usize| {
                (input[axis] != output[axis] || scales[axis] != 1.0)
                    .then(|| resize.plan_axis(scales[axis], input[axis], output[axis]))
            };
            let ours_op =
                ChannelsLastResize::new(&input, &output, [plan_of(1), plan_of(2)]).unwrap();
            let mut ours = vec![f32::NAN; theirs.len()];
            ours_op.compute(&values, &mut ours);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ours), bits(&theirs), "{input:?} -> {output:?}");
        }
    }

    #[test]
    fn rejects_plans_that_do_not_fit() {
        let resize = tracts_resize(Interpolator::Linear);
        let plan = |len_in, len_out| {
            Some(resize.plan_axis(len_out as f32 / len_in as f32, len_in, len_out))
        };
        // A height plan that reads 16 rows of an image of 4; other channels out.
        assert!(
            ChannelsLastResize::new(&[1, 4, 4, 2], &[1, 8, 8, 2], [plan(16, 8), plan(4, 8)])
                .is_err()
        );
        assert!(
            ChannelsLastResize::new(&[1, 4, 4, 2], &[1, 8, 8, 3], [plan(4, 8), plan(4, 8)])
                .is_err()
        );
        assert!(
            ChannelsLastResize::new(&[1, 4, 4, 2], &[1, 8, 8, 2], [plan(4, 8), plan(4, 8)]).is_ok()
        );
    }
}
