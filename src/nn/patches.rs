//! A small convolution (the models' first, 3x3 over the image's 3 channels)
//! on signtop's 1x1 op's register tiles, as a tract op.
//!
//! tract lowers it to a matrix product over image patches whose results it
//! stores one float at a time (a millisecond of the pose landmark model for
//! 27 multiply-adds an output), after a separate padding pass. This op runs
//! [`PointwiseConv`]'s tiles on each output pixel's window as if it were a
//! pixel of `C x kh x kw` channels, in tract's order (input channel, then
//! kernel row, then column): read in place from the image where the window
//! lies inside it, copied into a row of patches with zeros in the padding
//! where it does not (the last row and column). The same products summed in
//! the same order from zero, so tract's values to the bit (tested).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, Clamped, FixedShapeOp, PreluFolded};
use super::parallel;

use super::depthwise::Geometry;
use super::pointwise::{InputOrder, OutputOrder, PointwiseConv, Stride};

/// A convolution of a `[1, H, W, C]` or `[H, W, C]` f32 tensor into `N`
/// channels last, with constant weights and bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchConv {
    /// Where each output pixel's window sits (`channels`: the input's).
    geometry: Geometry,
    /// The 1x1 convolution of the windows (each a pixel of `C x kh x kw`
    /// channels).
    rows: PointwiseConv,
    /// Where each value of a window lies in the image, from its first:
    /// `((ky * W) + kx) * C + c` in the windows' order.
    in_place: Vec<usize>,
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
        let [kh, kw] = geometry.kernel;
        let (c, iw) = (geometry.channels, geometry.input[1]);
        let in_place = (0..patch)
            .map(|i| {
                let (ch, ky, kx) = (i / (kh * kw), i / kw % kh, i % kw);
                (ky * iw + kx) * c + ch
            })
            .collect();
        Ok(PatchConv {
            geometry,
            rows,
            in_place,
            input_shape: input_shape.into(),
            output_shape,
        })
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

    /// Convolves `input` (channels last) into `output` (channels last), in
    /// bands of output rows on the free threads of the current rayon pool.
    pub fn convolve(&self, input: &[f32], output: &mut [f32]) {
        let g = &self.geometry;
        let [oh, ow] = g.output;
        let row_len = ow * self.rows.output_channels();
        assert!(input.len() >= g.input[0] * g.input[1] * g.channels);
        assert!(output.len() >= oh * row_len);
        let row_work = row_len * self.in_place.len();
        parallel::for_each_band(
            &mut output[..oh * row_len],
            row_len,
            row_work,
            |rows, band| self.convolve_rows(input, rows, band),
        );
    }

    /// The output columns whose windows lie inside the image horizontally.
    fn inside_columns(&self) -> std::ops::Range<usize> {
        let g = &self.geometry;
        let (stride, pad, kw) = (g.stride[1], g.pad_before[1], g.kernel[1]);
        let first = pad.div_ceil(stride);
        let end = match (g.input[1] + pad).checked_sub(kw) {
            Some(last_start) => (last_start / stride + 1).min(g.output[1]),
            None => 0,
        };
        first.min(end)..end
    }

    /// Output rows `rows` into `band` (those rows alone).
    fn convolve_rows(&self, input: &[f32], rows: std::ops::Range<usize>, band: &mut [f32]) {
        let g = &self.geometry;
        let ow = g.output[1];
        let n = self.rows.output_channels();
        let inside = self.inside_columns();
        let mut patches = vec![0.0f32; ow * self.in_place.len()];
        for (oy, out) in rows.zip(band.chunks_exact_mut(ow * n)) {
            let y0 = (oy * g.stride[0]) as isize - g.pad_before[0] as isize;
            let rows_inside = y0 >= 0 && y0 as usize + g.kernel[0] <= g.input[0];
            let direct = if rows_inside { inside.clone() } else { 0..0 };
            if !direct.is_empty() {
                let x0 = direct.start * g.stride[1] - g.pad_before[1];
                let first = (y0 as usize * g.input[1] + x0) * g.channels;
                // SAFETY: the windows of these columns lie inside the image
                // (`inside_columns`, and the rows checked above), so every
                // value read is inside `input` (length checked by
                // `convolve`); the outputs are this row's, in `out`.
                unsafe {
                    self.rows.convolve_windows(
                        &input[first..],
                        g.stride[1] * g.channels,
                        &self.in_place[..],
                        direct.len(),
                        out[direct.start * n..].as_mut_ptr(),
                    )
                };
            }
            for cols in [0..direct.start, direct.end..ow] {
                self.through_patches(input, oy, cols, &mut patches, out);
            }
        }
    }

    /// Output columns `cols` of row `oy` into `out` (the row), through rows
    /// of patches (zeros in the padding) in `patches`.
    fn through_patches(
        &self,
        input: &[f32],
        oy: usize,
        cols: std::ops::Range<usize>,
        patches: &mut [f32],
        out: &mut [f32],
    ) {
        if cols.is_empty() {
            return;
        }
        let (len, n) = (self.in_place.len(), self.rows.output_channels());
        let patches = &mut patches[..cols.len() * len];
        patches.fill(0.0);
        self.fill_patches(input, oy * self.geometry.output[1] + cols.start, patches);
        // SAFETY: the patch rows hold `cols.len()` windows of `len` values,
        // and `out` those columns' outputs.
        unsafe {
            self.rows.convolve_windows(
                patches,
                len,
                Stride(1),
                cols.len(),
                out[cols.start * n..cols.end * n].as_mut_ptr(),
            )
        };
    }
}

/// The PReLU goes into the 1x1 convolution of the windows.
impl PreluFolded for PatchConv {
    fn prelu_channels(&self) -> Option<usize> {
        Some(self.rows.output_channels())
    }

    fn with_prelu(mut self, slopes: &[f32]) -> TractResult<Self> {
        self.rows = self.rows.with_prelu(slopes)?;
        Ok(self)
    }
}

impl Clamped for PatchConv {
    fn clamp_mut(&mut self) -> &mut [f32; 2] {
        self.rows.clamp_mut()
    }
}

impl FixedShapeOp for PatchConv {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
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

conv_op::fixed_shape_tract_op!(PatchConv {});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv_op::test_values as values;
    use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    #[test]
    fn gives_tracts_own_convolution_results_to_the_bit() {
        if !PointwiseConv::is_fast_here() {
            return;
        }
        let three_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // The models' first convolutions (3x3 or 5x5, stride 2, padding
        // after only or on both sides), a padded stride-1 one, and inputs
        // too small for any window to lie inside (all through patches).
        for (side, k, c, n, stride, before, after) in [
            (17, 3, 3, 24, 2, 0, 1),
            (9, 3, 4, 16, 1, 1, 1),
            (16, 5, 3, 24, 2, 1, 2),
            (2, 3, 3, 8, 1, 1, 1),
            (3, 5, 2, 20, 2, 2, 2),
        ] {
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
