//! 2 x 2 max pooling at stride 2, unpadded, as a tract op.
//!
//! Every max pool in the models is one: the shortcuts of the hand re-crop
//! model's blocks, the face models' and two of the pose landmark model's.
//! tract 0.23.9 pools a channels-last image a tap at a time, a loop as long
//! as a pixel's channels for each (65 us for the re-crop model's 128 x 128
//! x 8 into 64 x 64 x 8, twice a frame), and a channels-first one a value
//! at a time with bounds checks (38 us for pose's 8 x 8 x 288). This op
//! takes a pixel's four taps across its channels at once. A value is
//! picked, never computed, and picked as tract does (its comparisons, its
//! order of taps, from the same start), so the bits are the same.

use std::ops::Range;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, FixedShapeOp};
use super::parallel;
use super::simd::Simd;

/// Where the channels are in the pooled images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolLayout {
    /// Height, width, channels: each pixel's channels together.
    ChannelsLast,
    /// Channels, height, width: a plane per channel.
    ChannelsFirst,
}

/// A 2 x 2 max pool at stride 2, no padding (an odd last row or column is
/// left out, as ONNX's `VALID` does), of one f32 image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool2x2 {
    layout: PoolLayout,
    /// The input's height, width and channels.
    height: usize,
    width: usize,
    channels: usize,
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

impl MaxPool2x2 {
    /// The pool of images of `shape` (a batch of one: `[1, h, w, c]` or
    /// `[1, c, h, w]` by `layout`), or `None` for another shape or an image
    /// smaller than a window.
    pub fn new(shape: &[usize], layout: PoolLayout) -> Option<MaxPool2x2> {
        let &[1, a, b, c] = shape else {
            return None;
        };
        let (height, width, channels) = match layout {
            PoolLayout::ChannelsLast => (a, b, c),
            PoolLayout::ChannelsFirst => (b, c, a),
        };
        if height < 2 || width < 2 || channels == 0 {
            return None;
        }
        let (oh, ow) = (height / 2, width / 2);
        let output_shape = match layout {
            PoolLayout::ChannelsLast => tvec![1, oh, ow, channels],
            PoolLayout::ChannelsFirst => tvec![1, channels, oh, ow],
        };
        Some(MaxPool2x2 {
            layout,
            height,
            width,
            channels,
            input_shape: shape.into(),
            output_shape,
        })
    }

    /// Pools `input` into `output`, in bands of output rows on the free
    /// threads of the current pool when there are enough values.
    pub fn pool(&self, input: &[f32], output: &mut [f32]) {
        self.pool_with(Simd::chosen(), input, output)
    }

    /// [`MaxPool2x2::pool`] at SIMD level `simd`, one this CPU has.
    fn pool_with(&self, simd: Simd, input: &[f32], output: &mut [f32]) {
        assert!(simd <= Simd::of_this_cpu());
        let (oh, ow) = (self.height / 2, self.width / 2);
        let (rows, row_len) = match self.layout {
            PoolLayout::ChannelsLast => (oh, ow * self.channels),
            PoolLayout::ChannelsFirst => (self.channels * oh, ow),
        };
        assert!(input.len() >= self.height * self.width * self.channels);
        // A value's four comparisons are worth about one multiply-add.
        parallel::for_each_band(
            &mut output[..rows * row_len],
            row_len,
            row_len,
            |rows, band| match self.layout {
                PoolLayout::ChannelsLast => self.pool_pixel_rows(simd, input, rows, band),
                PoolLayout::ChannelsFirst => self.pool_plane_rows(input, rows, band),
            },
        );
    }

    /// Channels last: output rows `rows` into `band`, a pixel's channels
    /// at a time.
    fn pool_pixel_rows(&self, simd: Simd, input: &[f32], rows: Range<usize>, band: &mut [f32]) {
        let line = self.width * self.channels;
        let out_line = self.width / 2 * self.channels;
        for (oy, out) in rows.zip(band.chunks_exact_mut(out_line)) {
            let top = &input[2 * oy * line..][..line];
            let bottom = &input[(2 * oy + 1) * line..][..line];
            pool_pixel_row(simd, out, top, bottom, self.channels);
        }
    }

    /// Channels first: output rows `rows` (counted across the planes) into
    /// `band`, as tract's own 2 x 2 pool picks them: `f32::max` from
    /// `f32::MIN`, top row then bottom, left then right.
    fn pool_plane_rows(&self, input: &[f32], rows: Range<usize>, band: &mut [f32]) {
        let (h, w) = (self.height, self.width);
        let oh = h / 2;
        for (row, out) in rows.zip(band.chunks_exact_mut(w / 2)) {
            let (plane, oy) = (row / oh, row % oh);
            let top = &input[(plane * h + 2 * oy) * w..][..w];
            let bottom = &input[(plane * h + 2 * oy + 1) * w..][..w];
            for ((o, t), b) in out
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *o = f32::MIN.max(t[0]).max(t[1]).max(b[0]).max(b[1]);
            }
        }
    }
}

/// tract's pick of a channels-last pool: the tap where it is greater than
/// what was picked so far (so a NaN is never picked, and of equal values,
/// `0.0` and `-0.0` among them, the first stays).
#[inline(always)]
fn pick(so_far: f32, tap: f32) -> f32 {
    if so_far < tap { tap } else { so_far }
}

/// One output row of a channels-last pool from its two input rows, at SIMD
/// level `simd` (one this CPU has). Each value starts from `f32::MIN`, as
/// tract's does, and takes the taps top left, top right, bottom left,
/// bottom right.
fn pool_pixel_row(simd: Simd, out: &mut [f32], top: &[f32], bottom: &[f32], channels: usize) {
    assert!(top.len() >= 2 * out.len() && bottom.len() >= 2 * out.len());
    // SAFETY (each): the level is one the CPU has (asserted by the caller),
    // and the rows hold two input pixels for each output pixel (above).
    match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { pixel_row_avx512(out, top, bottom, channels) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { pixel_row_avx2(out, top, bottom, channels) },
        _ => pixel_row_portable(out, top, bottom, channels),
    }
}

/// [`pool_pixel_row`] a value at a time.
fn pixel_row_portable(out: &mut [f32], top: &[f32], bottom: &[f32], channels: usize) {
    let pairs = top
        .chunks_exact(2 * channels)
        .zip(bottom.chunks_exact(2 * channels));
    for (pixel, (t, b)) in out.chunks_exact_mut(channels).zip(pairs) {
        for (ch, o) in pixel.iter_mut().enumerate() {
            let taps = [t[ch], t[channels + ch], b[ch], b[channels + ch]];
            *o = taps.into_iter().fold(f32::MIN, pick);
        }
    }
}

/// [`pool_pixel_row`] 16 channels at a time. `_mm512_max_ps(tap, so_far)`
/// is [`pick`]: the first operand where it is greater, else the second.
///
/// # Safety
/// AVX-512F; `top` and `bottom` at least twice as long as `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pixel_row_avx512(out: &mut [f32], top: &[f32], bottom: &[f32], channels: usize) {
    use super::simd::{lane_mask, load16_masked, store16_masked};
    use std::arch::x86_64::*;
    let (t, b, o) = (top.as_ptr(), bottom.as_ptr(), out.as_mut_ptr());
    for pixel in 0..out.len() / channels {
        let (at, to) = (2 * pixel * channels, pixel * channels);
        for ch in (0..channels).step_by(16) {
            let mask = lane_mask(channels - ch);
            // SAFETY: the lanes of `mask` are within this pixel's channels,
            // in the output and in both input pixels (as this function's).
            unsafe {
                let taps = [
                    load16_masked(t.add(at + ch), mask),
                    load16_masked(t.add(at + channels + ch), mask),
                    load16_masked(b.add(at + ch), mask),
                    load16_masked(b.add(at + channels + ch), mask),
                ];
                let picked = taps
                    .into_iter()
                    .fold(_mm512_set1_ps(f32::MIN), |so_far, tap| {
                        _mm512_max_ps(tap, so_far)
                    });
                store16_masked(o.add(to + ch), mask, picked);
            }
        }
    }
}

/// [`pool_pixel_row`] 8 channels at a time (`_mm256_max_ps` as
/// [`pixel_row_avx512`]'s).
///
/// # Safety
/// AVX2; `top` and `bottom` at least twice as long as `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pixel_row_avx2(out: &mut [f32], top: &[f32], bottom: &[f32], channels: usize) {
    use super::simd::{half_mask, load8_masked, store8_masked};
    use std::arch::x86_64::*;
    let (t, b, o) = (top.as_ptr(), bottom.as_ptr(), out.as_mut_ptr());
    for pixel in 0..out.len() / channels {
        let (at, to) = (2 * pixel * channels, pixel * channels);
        for ch in (0..channels).step_by(8) {
            let mask = half_mask(channels - ch);
            // SAFETY: as in `pixel_row_avx512`.
            unsafe {
                let taps = [
                    load8_masked(t.add(at + ch), mask),
                    load8_masked(t.add(at + channels + ch), mask),
                    load8_masked(b.add(at + ch), mask),
                    load8_masked(b.add(at + channels + ch), mask),
                ];
                let picked = taps
                    .into_iter()
                    .fold(_mm256_set1_ps(f32::MIN), |so_far, tap| {
                        _mm256_max_ps(tap, so_far)
                    });
                store8_masked(o.add(to + ch), mask, picked);
            }
        }
    }
}

impl FixedShapeOp for MaxPool2x2 {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        self.pool(input, output)
    }
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?} -> {:?}, {:?}",
            self.input_shape, self.output_shape, self.layout
        )])
    }

    op_as_typed_op!();
}

conv_op::fixed_shape_tract_op!(MaxPool2x2 {});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv_op::test_values;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// Values with what a pick can get wrong: ties of `0.0` and `-0.0`,
    /// NaNs, infinities, `f32::MIN`, repeats.
    fn awkward_values(n: usize, seed: usize) -> Vec<f32> {
        let specials = [
            0.0,
            -0.0,
            f32::NAN,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::MIN,
            1.0,
        ];
        test_values(n, seed)
            .into_iter()
            .enumerate()
            .map(|(i, v)| match (i * 31 + seed) % 5 {
                0 | 1 => specials[(i / 3 + seed) % specials.len()],
                _ => v,
            })
            .collect()
    }

    /// What tract's own optimised 2 x 2 stride 2 `VALID` max pool gives.
    fn tracts(shape: &[usize], layout: PoolLayout, input: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let channels = match layout {
            PoolLayout::ChannelsLast => shape[3],
            PoolLayout::ChannelsFirst => shape[1],
        };
        let pool = MaxPool {
            pool_spec: PoolSpec {
                data_format: match layout {
                    PoolLayout::ChannelsLast => DataFormat::NHWC,
                    PoolLayout::ChannelsFirst => DataFormat::NCHW,
                },
                kernel_shape: tvec![2, 2],
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(tvec![2, 2]),
                input_channels: channels,
                output_channels: channels,
            },
            with_index_outputs: None,
        };
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let y = model.wire_node("pool", pool, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let out = plan
            .run(tvec!(Tensor::from_shape(shape, input).unwrap().into()))
            .unwrap();
        let values = out[0].to_plain_array_view::<f32>().unwrap();
        (values.shape().to_vec(), values.iter().copied().collect())
    }

    /// The first value whose bits differ, with both, or `None`.
    fn first_difference(ours: &[f32], theirs: &[f32]) -> Option<(usize, f32, f32)> {
        assert_eq!(ours.len(), theirs.len());
        let differ = |(_, (a, b)): &(usize, (&f32, &f32))| a.to_bits() != b.to_bits();
        let (i, (a, b)) = ours.iter().zip(theirs).enumerate().find(differ)?;
        Some((i, *a, *b))
    }

    #[test]
    fn picks_tracts_values_to_the_bit_in_either_layout() {
        // The models' shapes, odd sides (the last row and column left
        // out), channels that fill no register or several.
        for (shape, layout) in [
            ([1, 128, 128, 8], PoolLayout::ChannelsLast),
            ([1, 32, 32, 28], PoolLayout::ChannelsLast),
            ([1, 7, 9, 17], PoolLayout::ChannelsLast),
            ([1, 2, 2, 300], PoolLayout::ChannelsLast),
            ([1, 5, 4, 1], PoolLayout::ChannelsLast),
            ([1, 288, 8, 8], PoolLayout::ChannelsFirst),
            ([1, 3, 9, 7], PoolLayout::ChannelsFirst),
        ] {
            let input = awkward_values(shape.iter().product(), shape[3]);
            let op = MaxPool2x2::new(&shape, layout).unwrap();
            let (tracts_shape, theirs) = tracts(&shape, layout, &input);
            assert_eq!(&*op.output_shape(), &tracts_shape[..], "{shape:?}");
            for simd in Simd::available() {
                let mut ours = vec![f32::NAN; theirs.len()];
                op.pool_with(simd, &input, &mut ours);
                let differs = first_difference(&ours, &theirs);
                assert_eq!(differs, None, "{shape:?} {layout:?} {simd:?}");
            }
            // In bands of rows on two threads.
            let threads = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let mut in_bands = vec![f32::NAN; theirs.len()];
            threads.install(|| op.pool(&input, &mut in_bands));
            let differs = first_difference(&in_bands, &theirs);
            assert_eq!(differs, None, "{shape:?} {layout:?} in bands");
        }
    }

    #[test]
    fn refuses_what_is_not_one_image_of_a_window_or_more() {
        assert!(MaxPool2x2::new(&[2, 8, 8, 4], PoolLayout::ChannelsLast).is_none());
        assert!(MaxPool2x2::new(&[8, 8, 4], PoolLayout::ChannelsLast).is_none());
        assert!(MaxPool2x2::new(&[1, 1, 8, 4], PoolLayout::ChannelsLast).is_none());
        assert!(MaxPool2x2::new(&[1, 4, 8, 1], PoolLayout::ChannelsFirst).is_none());
        assert!(MaxPool2x2::new(&[1, 8, 8, 0], PoolLayout::ChannelsLast).is_none());
    }
}
