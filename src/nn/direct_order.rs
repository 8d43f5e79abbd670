//! A small channels-first convolution that tract runs on its direct kernel
//! (the hand re-crop model's first: 3x3 over the image's 3 channels, stride
//! 2), computed channels last with that kernel's sums, as a tract op.
//!
//! tract's direct kernel (`DirectSpatialConv`, AVX2 and FMA) starts each sum
//! from the bias and adds the window's products in order (input channel,
//! kernel row, column; taps in the padding skipped), eight outputs along a
//! row at once with fused multiply-adds; a run's last few outputs, and runs
//! that do not go along a row, it sums one at a time with a multiply and
//! then an add. Kept channels first, the model paid for a transpose of the
//! image before it and of its output after it (0.27 ms of a 1.0-1.4 ms run);
//! this op takes the image channels last and gives its output channels last
//! with the same arithmetic for every output, so the same bits (tested
//! against tract's kernel), and the transposes fold away.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, FixedShapeOp, PreluFolded};
use super::depthwise::Geometry;
use super::parallel;
use super::simd::Simd;

/// Output channels a register holds (AVX2).
const LANES: usize = 8;
/// Outputs along a row tract's kernel sums at once.
const RUN_BLOCK: usize = 8;

/// A convolution of a `[1, H, W, C]` f32 tensor into `[1, OH, OW, N]`, with
/// tract's direct kernel's sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectOrderConv {
    geometry: Geometry,
    outputs: usize,
    /// `weights[((c * kh + ky) * kw + kx) * N + n]`, as bits (for `Eq`).
    weights: Vec<u32>,
    bias: Vec<u32>,
    /// The slopes of the PReLU folded in after the sums, one per output
    /// channel, as bits; none when there is none.
    slopes: Option<Vec<u32>>,
}

/// Which outputs of a run tract's kernel sums with fused multiply-adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sums {
    Fused,
    MultiplyThenAdd,
}

impl DirectOrderConv {
    /// The convolution of `geometry` into `outputs` channels, with
    /// `weights[((c * kh + ky) * kw + kx) * N + n]` and `bias`; `None` where
    /// this op cannot give tract's direct kernel's bits (no AVX2 or FMA here,
    /// output channels not a multiple of 8, padding before the first row or
    /// column: only padding after is tested).
    pub fn new(
        geometry: Geometry,
        outputs: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> Option<DirectOrderConv> {
        let g = &geometry;
        let taps = g.channels * g.kernel[0] * g.kernel[1];
        let supported = Simd::of_this_cpu() >= Simd::Avx2
            && outputs > 0
            && outputs.is_multiple_of(LANES)
            && g.pad_before == [0, 0]
            && g.output[0] > 0
            && g.output[1] > 0
            && weights.len() == taps * outputs
            && bias.len() == outputs;
        supported.then(|| DirectOrderConv {
            geometry,
            outputs,
            weights: weights.iter().map(|w| w.to_bits()).collect(),
            bias: bias.iter().map(|b| b.to_bits()).collect(),
            slopes: None,
        })
    }

    /// The output rows (or columns) along `axis` whose windows lie inside
    /// the input along it.
    fn inside(&self, axis: usize) -> std::ops::Range<usize> {
        let g = &self.geometry;
        let end = match g.input[axis].checked_sub(g.kernel[axis]) {
            Some(last_start) => (last_start / g.stride[axis] + 1).min(g.output[axis]),
            None => 0,
        };
        0..end
    }

    /// How many of a run of `len` outputs along a row tract's kernel sums
    /// fused, eight at a time (16 while they last), when a stride-2 block
    /// reads one input past its last output.
    fn fused_in_run(&self, len: usize) -> usize {
        let stride = self.geometry.stride[1];
        if !(1..=3).contains(&stride) {
            return 0;
        }
        let block = if stride == 2 {
            RUN_BLOCK + 1
        } else {
            RUN_BLOCK
        };
        let mut done = 0;
        while done + RUN_BLOCK + block <= len {
            done += 2 * RUN_BLOCK;
        }
        while done + block <= len {
            done += RUN_BLOCK;
        }
        done
    }

    /// Convolves `input` into `output`, both channels last, in bands of
    /// output rows on the free threads of the current rayon pool.
    pub fn convolve(&self, input: &[f32], output: &mut [f32]) {
        let g = &self.geometry;
        let [oh, ow] = g.output;
        let row_len = ow * self.outputs;
        assert!(input.len() >= g.input[0] * g.input[1] * g.channels);
        assert!(output.len() >= oh * row_len);
        let row_work = row_len * g.channels * g.kernel[0] * g.kernel[1];
        parallel::for_each_band(
            &mut output[..oh * row_len],
            row_len,
            row_work,
            |rows, band| {
                for (oy, out) in rows.zip(band.chunks_exact_mut(row_len)) {
                    self.convolve_row(input, oy, out);
                }
            },
        );
    }

    /// Output row `oy` into `out`, zone by zone as tract's kernel visits it:
    /// the columns whose windows lie inside the image in one run along the
    /// row; each column past them alone, and, in rows inside the image,
    /// summed one at a time (tract runs that zone down the column).
    fn convolve_row(&self, input: &[f32], oy: usize, out: &mut [f32]) {
        let inside = self.inside(1);
        let fused = inside.start + self.fused_in_run(inside.len());
        let mut x = inside.start;
        while x < fused {
            let count = (fused - x).min(RUN_BLOCK);
            self.outputs_at(input, oy, x..x + count, Sums::Fused, out);
            x += count;
        }
        if fused < inside.end {
            self.outputs_at(input, oy, fused..inside.end, Sums::MultiplyThenAdd, out);
        }
        for x in (0..inside.start).chain(inside.end..self.geometry.output[1]) {
            self.outputs_at(input, oy, x..x + 1, Sums::MultiplyThenAdd, out);
        }
    }

    /// Outputs of columns `cols` (at most [`RUN_BLOCK`], sharing their
    /// window's taps inside the image) of row `oy`, into `out` (the row).
    fn outputs_at(
        &self,
        input: &[f32],
        oy: usize,
        cols: std::ops::Range<usize>,
        sums: Sums,
        out: &mut [f32],
    ) {
        let g = &self.geometry;
        let (first_row, rows) = g.taps_inside(0, oy);
        let window = Window {
            first_row: first_row as usize,
            rows,
            columns: g.taps_inside(1, cols.start).1,
        };
        #[cfg(target_arch = "x86_64")]
        for group in 0..self.outputs / LANES {
            // SAFETY: AVX2 and FMA are here (checked in `new`); `cols` are
            // at most RUN_BLOCK columns of this row, whose taps `window`
            // keeps inside `input` (checked in `convolve`), and `out` holds
            // the row's outputs.
            unsafe { self.block(input, &window, cols.clone(), group, sums, out) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (input, window, cols, sums, out);
    }

    /// One group of 8 output channels of columns `cols`.
    ///
    /// # Safety
    /// AVX2 and FMA; `window`'s taps of every column lie inside `input`;
    /// `out` holds the row; at most [`RUN_BLOCK`] columns.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block(
        &self,
        input: &[f32],
        window: &Window,
        cols: std::ops::Range<usize>,
        group: usize,
        sums: Sums,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let g = &self.geometry;
        let (c_len, [kh, kw], n) = (g.channels, g.kernel, self.outputs);
        let count = cols.len().min(RUN_BLOCK);
        // SAFETY: as this function's; the weights and bias hold whole groups.
        unsafe {
            let bias = _mm256_loadu_ps(self.bias.as_ptr().add(group * LANES).cast());
            let mut acc = [bias; RUN_BLOCK];
            let weights = self.weights.as_ptr().cast::<f32>();
            for c in 0..c_len {
                for ky in window.rows.clone() {
                    let row = (window.first_row + ky) * g.input[1];
                    for kx in window.columns.clone() {
                        let tap = (c * kh + ky) * kw + kx;
                        let w = _mm256_loadu_ps(weights.add(tap * n + group * LANES));
                        for (i, a) in acc.iter_mut().take(count).enumerate() {
                            let x = (cols.start + i) * g.stride[1] + kx;
                            let v = _mm256_set1_ps(*input.get_unchecked((row + x) * c_len + c));
                            *a = match sums {
                                Sums::Fused => _mm256_fmadd_ps(v, w, *a),
                                Sums::MultiplyThenAdd => _mm256_add_ps(*a, _mm256_mul_ps(w, v)),
                            };
                        }
                    }
                }
            }
            let slopes = self.slopes.as_ref().map(|s| {
                let s = s.as_ptr().add(group * LANES).cast::<f32>();
                _mm256_loadu_ps(s)
            });
            for (i, a) in acc.iter().take(count).enumerate() {
                let to = out.as_mut_ptr().add((cols.start + i) * n + group * LANES);
                let mut v = *a;
                if let Some(slopes) = slopes {
                    // Only where 0 > v: not for a NaN, as the PReLU op.
                    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
                    v = _mm256_blendv_ps(v, _mm256_mul_ps(v, slopes), negative);
                }
                _mm256_storeu_ps(to, v);
            }
        }
    }
}

/// The taps of a window inside the image: its first input row, and the
/// kernel rows and columns that lie inside.
struct Window {
    first_row: usize,
    rows: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
}

impl FixedShapeOp for DirectOrderConv {
    fn input_shape(&self) -> TVec<usize> {
        let g = &self.geometry;
        tvec![1, g.input[0], g.input[1], g.channels]
    }

    fn output_shape(&self) -> TVec<usize> {
        let g = &self.geometry;
        tvec![1, g.output[0], g.output[1], self.outputs]
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        DirectOrderConv::convolve(self, input, output)
    }
}

impl std::hash::Hash for DirectOrderConv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.geometry.hash(state);
        self.outputs.hash(state);
        self.weights.hash(state);
        self.bias.hash(state);
        self.slopes.hash(state);
    }
}

impl PreluFolded for DirectOrderConv {
    fn prelu_channels(&self) -> Option<usize> {
        Some(self.outputs)
    }

    fn with_prelu(mut self, slopes: &[f32]) -> TractResult<Self> {
        ensure!(slopes.len() == self.outputs, "{} slopes", slopes.len());
        ensure!(self.slopes.is_none(), "a second PReLU");
        self.slopes = Some(slopes.iter().map(|s| s.to_bits()).collect());
        Ok(self)
    }
}

impl Op for DirectOrderConv {
    fn name(&self) -> StaticName {
        "DirectOrderConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.geometry)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

conv_op::fixed_shape_tract_op!(DirectOrderConv {
    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        let taps = g.channels * g.kernel[0] * g.kernel[1];
        let macs = g.output[0] * g.output[1] * self.outputs * taps;
        Ok(tvec!((Cost::FMA(f32::datum_type()), macs.into())))
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv_op::test_values as values;
    use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// tract's optimised channels-first convolution (its direct kernel on
    /// rows this wide) against this op on the same image channels last.
    fn compare(h: usize, w: usize, k: usize, c: usize, n: usize, stride: usize, after: usize) {
        let weights = values(c * k * k * n, 1);
        let bias = values(n, 2);
        let hwc = values(h * w * c, 3);
        let chw: Vec<f32> = (0..c * h * w)
            .map(|i| hwc[(i % (h * w)) * c + i / (h * w)])
            .collect();
        let oihw = tract_ndarray::Array4::from_shape_fn((n, c, k, k), |(o, i, y, x)| {
            weights[((i * k + y) * k + x) * n + o]
        });
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![k, k],
                padding: PaddingSpec::Explicit(tvec![0, 0], tvec![after, after]),
                dilations: None,
                strides: Some(tvec![stride, stride]),
                input_channels: c,
                output_channels: n,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let (shape, theirs) =
            conv_op::tracts_convolution(conv, &[1, c, h, w], oihw.into_tensor(), &bias, &chw);
        let (oh, ow) = (shape[2], shape[3]);
        let geometry = Geometry {
            input: [h, w],
            output: [oh, ow],
            kernel: [k, k],
            stride: [stride, stride],
            pad_before: [0, 0],
            channels: c,
        };
        let op = DirectOrderConv::new(geometry, n, &weights, &bias).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut ours = vec![f32::NAN; oh * ow * n];
        pool.install(|| parallel::with_helper(|| op.convolve(&hwc, &mut ours)));
        let mismatches = (0..oh * ow * n)
            .filter(|&i| {
                let (o, p) = (i / (oh * ow), i % (oh * ow));
                ours[p * n + o].to_bits() != theirs[i].to_bits()
            })
            .count();
        assert_eq!(mismatches, 0, "{h}x{w}x{c} k{k} s{stride} +{after} -> {n}");
    }

    #[test]
    fn gives_tracts_direct_kernels_results_to_the_bit() {
        if Simd::of_this_cpu() < Simd::Avx2 {
            return;
        }
        // The re-crop model's first convolution, then other run lengths
        // (tails of every length, 16-wide blocks or not), strides and
        // windows.
        compare(256, 256, 3, 3, 8, 2, 1);
        compare(20, 300, 3, 3, 16, 2, 1);
        compare(9, 262, 3, 2, 8, 2, 0);
        compare(12, 140, 3, 3, 8, 1, 2);
        compare(7, 401, 5, 1, 8, 3, 2);
        // Runs of 136 and 144: the stride-2 block's extra input decides
        // their last 8 outputs.
        compare(5, 273, 3, 2, 8, 2, 1);
        compare(4, 289, 3, 3, 8, 2, 1);
        compare(6, 410, 5, 1, 8, 3, 2);
    }

    #[test]
    fn applies_a_folded_prelu_as_the_prelu_op_would() {
        if Simd::of_this_cpu() < Simd::Avx2 {
            return;
        }
        let (h, w, c, n) = (9, 140, 3, 16);
        let geometry = Geometry::square(h, 3, 2, [0, 1], c);
        let geometry = Geometry {
            input: [h, w],
            output: [geometry.output[0], (w + 1 - 3) / 2 + 1],
            ..geometry
        };
        let (weights, bias) = (values(c * 9 * n, 1), values(n, 2));
        let plain = DirectOrderConv::new(geometry, n, &weights, &bias).unwrap();
        let slopes = values(n, 4);
        let with_prelu = plain.clone().with_prelu(&slopes).unwrap();
        let x = values(h * w * c, 3);
        let len = geometry.output[0] * geometry.output[1] * n;
        let (mut expected, mut ours) = (vec![f32::NAN; len], vec![f32::NAN; len]);
        plain.convolve(&x, &mut expected);
        assert!(expected.iter().any(|v| *v < 0.0) && expected.iter().any(|v| *v > 0.0));
        let prelu = super::super::prelu::Prelu::new(&[len / n, n], &[n], &slopes).unwrap();
        prelu.apply(&mut expected);
        with_prelu.convolve(&x, &mut ours);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&ours) == bits(&expected));
        assert!(with_prelu.with_prelu(&slopes).is_err(), "a second PReLU");
    }

    #[test]
    fn is_not_offered_where_its_bits_are_not_tested() {
        let geometry = |pad_before| Geometry {
            input: [16, 16],
            output: [8, 8],
            kernel: [3, 3],
            stride: [2, 2],
            pad_before,
            channels: 3,
        };
        let (w, b) = (vec![0.5; 27 * 8], vec![0.0; 8]);
        assert!(DirectOrderConv::new(geometry([1, 1]), 8, &w, &b).is_none());
        assert!(DirectOrderConv::new(geometry([0, 0]), 8, &w[..26 * 8], &b).is_none());
        let twelve = DirectOrderConv::new(geometry([0, 0]), 12, &vec![0.5; 27 * 12], &[0.0; 12]);
        assert!(twelve.is_none());
        assert_eq!(
            DirectOrderConv::new(geometry([0, 0]), 8, &w, &b).is_some(),
            Simd::of_this_cpu() >= Simd::Avx2
        );
    }
}
