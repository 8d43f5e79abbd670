//! A small convolution (the models' first, 3x3 over the image's 3 channels)
//! as patches + signtop's 1x1 op, as a tract op.
//!
//! tract lowers it to a matrix product over image patches whose results it
//! stores one float at a time (a millisecond of the pose landmark model for
//! 27 multiply-adds an output), after a separate padding pass. This op copies
//! each output pixel's window into a row of patches, zeros where it falls in
//! the padding, in tract's order (input channel, then kernel row, then column),
//! and runs [`PointwiseConv`] on the rows: the same products summed in the
//! same order from zero, so tract's values to the bit (tested).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, Clamped, FixedConvolution};
use super::parallel;

use super::depthwise::Geometry;
use super::pointwise::{InputOrder, OutputOrder, PointwiseConv};

/// What copying one value into a patch row costs, in multiply-adds of the
/// 1x1 op (scalar and scattered against 16 lanes at once: about 30 measured).
const PATCH_WORK: usize = 16;

/// A convolution of a `[1, H, W, C]` or `[H, W, C]` f32 tensor into `N`
/// channels last, with constant weights and bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchConv {
    /// Where each output pixel's window sits (`channels`: the input's).
    geometry: Geometry,
    /// The 1x1 convolution of the patch rows.
    rows: PointwiseConv,
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

impl PatchConv {
    /// A convolution of `geometry` over `input_shape` into `outputs`
    /// channels, with `weights[((c * kh + ky) * kw + kx) * N + n]` and `bias`.
    pub fn new(
        geometry: Geometry,
        input_shape: &[usize],
        outputs: usize,
        weights: &[f32],
        bias: Vec<f32>,
    ) -> TractResult<Self> {
        let [oh, ow] = geometry.output;
        let patch = geometry.channels * geometry.kernel[0] * geometry.kernel[1];
        let output_shape: TVec<usize> = match *input_shape {
            [1, _, _, _] => tvec![1, oh, ow, outputs],
            [_, _, _] => tvec![oh, ow, outputs],
            _ => bail!("convolution of {input_shape:?}"),
        };
        ensure!(
            input_shape.iter().product::<usize>()
                == geometry.input[0] * geometry.input[1] * geometry.channels,
            "input shape"
        );
        let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
        let rows = PointwiseConv::new(
            &[oh * ow, patch],
            &[oh * ow, outputs],
            [patch, outputs],
            order,
            weights,
            bias,
        )?;
        Ok(PatchConv {
            geometry,
            rows,
            input_shape: input_shape.into(),
            output_shape,
        })
    }

    /// Each output pixel's window as one row, zeros in the padding (in bands
    /// of rows on the free threads of the current rayon pool).
    fn patches(&self, input: &[f32]) -> Vec<f32> {
        let g = &self.geometry;
        let row_len = g.channels * g.kernel[0] * g.kernel[1];
        let pixels = g.output[0] * g.output[1];
        let mut rows = vec![0.0f32; pixels * row_len];
        parallel::for_each_band(&mut rows, row_len, row_len * PATCH_WORK, |pixels, band| {
            self.fill_patches(input, pixels.start, band)
        });
        rows
    }

    /// The patch rows of output pixels `first..` into `band` (zeroed).
    fn fill_patches(&self, input: &[f32], first: usize, band: &mut [f32]) {
        let g = &self.geometry;
        let ([ih, iw], ow, [kh, kw], c) = (g.input, g.output[1], g.kernel, g.channels);
        let row_len = c * kh * kw;
        for (i, row) in band.chunks_exact_mut(row_len).enumerate() {
            let (oy, ox) = ((first + i) / ow, (first + i) % ow);
            for ky in 0..kh {
                let Some(y) = (oy * g.stride[0] + ky).checked_sub(g.pad_before[0]) else {
                    continue;
                };
                if y >= ih {
                    continue;
                }
                for kx in 0..kw {
                    let Some(x) = (ox * g.stride[1] + kx).checked_sub(g.pad_before[1]) else {
                        continue;
                    };
                    if x >= iw {
                        continue;
                    }
                    let pixel = &input[(y * iw + x) * c..][..c];
                    for (ch, &v) in pixel.iter().enumerate() {
                        row[(ch * kh + ky) * kw + kx] = v;
                    }
                }
            }
        }
    }

    /// Convolves `input` (channels last) into `output` (channels last).
    pub fn convolve(&self, input: &[f32], output: &mut [f32]) {
        self.rows.convolve(&self.patches(input), output);
    }
}

impl Clamped for PatchConv {
    fn clamp_mut(&mut self) -> &mut [f32; 2] {
        self.rows.clamp_mut()
    }
}

impl FixedConvolution for PatchConv {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn convolve(&self, input: &[f32], output: &mut [f32]) {
        PatchConv::convolve(self, input, output)
    }
}

impl Op for PatchConv {
    fn name(&self) -> StaticName {
        "PatchConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.geometry)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PatchConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        conv_op::eval(self, inputs)
    }
}

impl TypedOp for PatchConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        conv_op::output_facts(self, inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect()
    }

    #[test]
    fn gives_tracts_own_convolution_results_to_the_bit() {
        if !PointwiseConv::is_fast_here() {
            return;
        }
        let three_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // The models' first convolution (3x3, stride 2, padding after only)
        // and a padded stride-1 one.
        for (side, c, n, stride, before, after) in [(17, 3, 24, 2, 0, 1), (9, 4, 16, 1, 1, 1)] {
            let k = 3;
            let weights = values(c * k * k * n, 1);
            let bias = values(n, 2);
            let input = values(side * side * c, 3);
            let oihw = tract_ndarray::Array4::from_shape_fn((n, c, k, k), |(o, i, y, x)| {
                weights[((i * k + y) * k + x) * n + o]
            });
            let conv = Conv {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NHWC,
                    kernel_shape: tvec![k, k],
                    padding: PaddingSpec::Explicit(tvec![before, before], tvec![after, after]),
                    dilations: None,
                    strides: Some(tvec![stride, stride]),
                    input_channels: c,
                    output_channels: n,
                },
                kernel_fmt: KernelFormat::OIHW,
                group: 1,
                q_params: None,
            };
            let shape = [1, side, side, c];
            let (their_shape, theirs) =
                conv_op::tracts_convolution(conv, &shape, oihw.into_tensor(), &bias, &input);
            let geometry = Geometry::square(side, k, stride, [before, after], c);
            let out = geometry.output[0];
            let op = PatchConv::new(geometry, &[1, side, side, c], n, &weights, bias).unwrap();
            let mut ours = vec![f32::NAN; out * out * n];
            op.convolve(&input, &mut ours);
            assert_eq!(&*their_shape, &[1, out, out, n]);
            assert!(ours == theirs, "{side}x{side}x{c} s{stride}");
            // In parts (patch rows and products) on three threads: the same.
            let mut in_parts = vec![f32::NAN; out * out * n];
            three_threads.install(|| parallel::with_helper(|| op.convolve(&input, &mut in_parts)));
            assert!(in_parts == theirs, "{side}x{side}x{c} s{stride} in parts");
        }
    }
}
