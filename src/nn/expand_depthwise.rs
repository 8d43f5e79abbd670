//! A 1x1 expansion and the depthwise convolution that reads it, run a band
//! of rows at a time, as one tract op.
//!
//! The pose and hand models' first blocks widen a 112 x 112 (pose landmark:
//! 128 x 128) image to 64 channels, 3-4 MiB, and a depthwise convolution at
//! stride 2 reads it back: more than the cores' L2, so the expansion wrote
//! it to L3 and the depthwise read it from there, at 38-41 GFLOP/s in the
//! models against 100-120 for their other depthwise layers (the second
//! blocks, 56 x 56 x 144 at stride 1, likewise, less so). This op expands
//! only the input rows a band of output rows needs, into a buffer each
//! thread keeps, and convolves them while they are in L2. The rows two bands
//! share are expanded twice (one in 16 at stride 2). Each value is summed as
//! the two ops sum it, so their results to the bit (tested).

use std::cell::RefCell;
use std::ops::Range;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, FixedShapeOp};
use super::depthwise::ChannelsLastDepthwise;
use super::parallel;
use super::pointwise::{PointwiseConv, Stride};
use super::simd::Aligned;

/// Fused where the expanded tensor and the depthwise output together are
/// at least this big: half as much again as the two cores' L2 (1 MiB each
/// on the EPYC measured). Smaller ones stayed in L2 unfused, and fused they
/// only paid for the rows expanded twice: 1-24% slower at 2.2-2.8 MiB
/// (stride 2), 0.94-1.48x at 3.4-4.5 MiB (stride 1), 1.4-2.1x at the first
/// blocks' 3.8-5 MiB (stride 2).
const FUSED_FROM_BYTES: usize = 3 << 20;

/// The expanded rows a band may take: half an L2, beside its input and output.
const BAND_BYTES: usize = 512 << 10;

thread_local! {
    /// Each thread's expanded rows, kept from one run to the next (no
    /// allocation, no page faults, per frame).
    static EXPANDED: RefCell<Aligned> = RefCell::new(Aligned::new(64));
}

/// A [`PointwiseConv`] (channels last in and out, no skip) and the
/// [`ChannelsLastDepthwise`] that reads its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandDepthwise {
    expand: PointwiseConv,
    depthwise: ChannelsLastDepthwise,
    input_shape: TVec<usize>,
    /// The expanded rows a band may take ([`BAND_BYTES`] but in tests).
    band_bytes: usize,
}

impl ExpandDepthwise {
    /// The two fused, when `expand` (of an `input_shape` tensor) feeds
    /// `depthwise` channels last and what passes between them is big enough
    /// to be worth it ([`FUSED_FROM_BYTES`]); `None` otherwise.
    pub fn fused(
        expand: &PointwiseConv,
        depthwise: &ChannelsLastDepthwise,
        input_shape: &[usize],
    ) -> Option<Self> {
        let g = depthwise.geometry();
        let values = (g.input[0] * g.input[1] + g.output[0] * g.output[1]) * g.channels;
        let big = values * std::mem::size_of::<f32>() >= FUSED_FROM_BYTES;
        big.then(|| Self::new(expand, depthwise, input_shape, BAND_BYTES))
            .flatten()
    }

    /// The two fused whatever their size, `band_bytes` of expanded rows a
    /// band, or `None` when `expand` does not feed `depthwise` channels
    /// last.
    fn new(
        expand: &PointwiseConv,
        depthwise: &ChannelsLastDepthwise,
        input_shape: &[usize],
        band_bytes: usize,
    ) -> Option<Self> {
        let g = depthwise.geometry();
        let pixels = g.input[0] * g.input[1];
        let fits = expand.is_channels_last()
            && expand.skip_channels().is_none()
            && expand.output_channels() == g.channels
            && input_shape.iter().product::<usize>() == pixels * expand.input_channels();
        fits.then(|| ExpandDepthwise {
            expand: expand.clone(),
            depthwise: depthwise.clone(),
            input_shape: input_shape.into(),
            band_bytes,
        })
    }

    /// Output rows a band convolves: as many as `band_bytes` of their
    /// expanded input rows hold (at least one).
    fn rows_per_band(&self) -> usize {
        let g = self.depthwise.geometry();
        let row_bytes = g.input[1] * g.channels * std::mem::size_of::<f32>();
        let rows = self.band_bytes / row_bytes.max(1);
        (rows.saturating_sub(g.kernel[0]) / g.stride[0] + 1).max(1)
    }

    /// Convolves `input` (channels last) into `output`, in bands of output
    /// rows on the free threads of the current rayon pool.
    pub fn convolve(&self, input: &[f32], output: &mut [f32]) {
        let g = self.depthwise.geometry();
        let [oh, ow] = g.output;
        let row_len = ow * g.channels;
        assert!(input.len() >= g.input[0] * g.input[1] * self.expand.input_channels());
        assert!(output.len() >= oh * row_len);
        let expanded_rows = self.depthwise.input_rows(0..oh).len();
        let row_work = (expanded_rows * g.input[1] * self.expand.input_channels() * g.channels)
            .div_ceil(oh.max(1))
            + row_len * g.kernel[0] * g.kernel[1];
        parallel::for_each_band(
            &mut output[..oh * row_len],
            row_len,
            row_work,
            |rows, band| self.convolve_rows(input, rows, band),
        );
    }

    /// Output rows `rows` into `band` (those rows alone), on this thread.
    fn convolve_rows(&self, input: &[f32], rows: Range<usize>, band: &mut [f32]) {
        let g = self.depthwise.geometry();
        let row_len = g.output[1] * g.channels;
        let (k, width) = (self.expand.input_channels(), g.input[1]);
        EXPANDED.with_borrow_mut(|expanded| {
            let step = self.rows_per_band();
            for first in rows.clone().step_by(step) {
                let these = first..(first + step).min(rows.end);
                let needed = self.depthwise.input_rows(these.clone());
                let pixels = needed.len() * width;
                if expanded.len() < pixels * g.channels {
                    expanded.resize(pixels * g.channels, 0.0);
                }
                let x = &input[needed.start * width * k..needed.end * width * k];
                // SAFETY: `x` holds the `pixels` pixels of `k` channels read,
                // `expanded` their outputs, this thread's alone.
                unsafe {
                    self.expand
                        .convolve_windows(x, k, Stride(1), pixels, expanded.as_mut_ptr())
                };
                let out =
                    &mut band[(these.start - rows.start) * row_len..][..these.len() * row_len];
                self.depthwise.convolve_rows_from(
                    &expanded[..pixels * g.channels],
                    needed.start,
                    these,
                    out,
                );
            }
        });
    }
}

impl FixedShapeOp for ExpandDepthwise {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        FixedShapeOp::output_shape(&self.depthwise)
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        self.convolve(input, output)
    }
}

impl Op for ExpandDepthwise {
    fn name(&self) -> StaticName {
        "ExpandDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.expand.info()?;
        info.extend(self.depthwise.info()?);
        Ok(info)
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

conv_op::fixed_shape_tract_op!(ExpandDepthwise {
    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let depthwise_input = f32::fact(&*FixedShapeOp::input_shape(&self.depthwise));
        let mut cost = self.expand.cost(inputs)?;
        cost.extend(self.depthwise.cost(&[&depthwise_input])?);
        Ok(cost)
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv_op::{Clamped, test_values as values};
    use crate::nn::depthwise::Geometry;
    use crate::nn::pointwise::{InputOrder, OutputOrder};

    /// A ReLU6'd 1x1 convolution of `side` x `side` x `k` into `n`
    /// channels and a ReLU6'd 3x3 depthwise one at `stride` after it.
    fn block(side: usize, k: usize, n: usize, stride: usize, pad: [usize; 2]) -> ExpandDepthwise {
        let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
        let expand = PointwiseConv::new(
            &[side, side, k],
            &[side, side, n],
            [k, n],
            order,
            &values(k * n, 4),
            values(n, 5),
        )
        .unwrap()
        .with_floor(0.0)
        .with_ceiling(6.0);
        let g = Geometry::square(side, 3, stride, pad, n);
        let depthwise = ChannelsLastDepthwise::new(g, values(9 * n, 6), values(n, 7), 3)
            .unwrap()
            .with_floor(0.0)
            .with_ceiling(6.0);
        ExpandDepthwise::new(&expand, &depthwise, &[side, side, k], BAND_BYTES).unwrap()
    }

    /// The two ops one after the other, as the unfused plan runs them.
    fn unfused(op: &ExpandDepthwise, input: &[f32]) -> Vec<u32> {
        let g = op.depthwise.geometry();
        let mut expanded = vec![f32::NAN; g.input[0] * g.input[1] * g.channels];
        op.expand.convolve(input, &mut expanded);
        let mut out = vec![f32::NAN; g.output[0] * g.output[1] * g.channels];
        op.depthwise.convolve(&expanded, &mut out);
        out.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn gives_the_two_ops_results_to_the_bit_in_any_band() {
        let two_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // Stride 2 with the padding after (TensorFlow's "same" on an even
        // side), stride 1 padded both sides, an odd side; 3x3 windows.
        for (side, k, n, stride, pad) in [
            (24, 8, 32, 2, [0, 1]),
            (23, 16, 40, 1, [1, 1]),
            (17, 5, 24, 2, [1, 1]),
        ] {
            let op = block(side, k, n, stride, pad);
            let input: Vec<f32> = values(side * side * k, 8).iter().map(|v| v * 3.0).collect();
            let want = unfused(&op, &input);
            let row_bytes = side * n * std::mem::size_of::<f32>();
            // A band of one output row, of a few, and all of them in one.
            for band_rows in [1, 3, 4, 7, side + 2] {
                let op = ExpandDepthwise {
                    band_bytes: band_rows * row_bytes,
                    ..op.clone()
                };
                let g = *op.depthwise.geometry();
                let run = || {
                    let mut out = vec![f32::NAN; g.output[0] * g.output[1] * n];
                    op.convolve(&input, &mut out);
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let what = format!("{side}x{side}x{k}->{n} s{stride} {band_rows} rows a band");
                assert!(run() == want, "{what}");
                let on_two = two_threads.install(|| parallel::with_helper(run));
                assert!(on_two == want, "{what}, on two threads");
            }
        }
    }

    #[test]
    fn fuses_only_blocks_whose_tensors_outgrow_the_l2s() {
        let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
        let pair = |side: usize, n: usize, stride: usize, order| {
            let expand = PointwiseConv::new(
                &[side, side, 24],
                &[side, side, n],
                [24, n],
                order,
                &values(24 * n, 1),
                values(n, 2),
            )
            .unwrap();
            let g = Geometry::square(side, 3, stride, [0, 1], n);
            let depthwise =
                ChannelsLastDepthwise::new(g, values(9 * n, 3), values(n, 4), 3).unwrap();
            ExpandDepthwise::fused(&expand, &depthwise, &[side, side, 24]).is_some()
        };
        // The hand model's first two blocks (3.8 and 3.4 MiB), not its third
        // (2.2 MiB).
        assert!(pair(112, 64, 2, order));
        assert!(pair(56, 144, 1, order));
        assert!(!pair(56, 144, 2, order));
        // Nor an expansion written channels first.
        assert!(!pair(
            112,
            64,
            2,
            (InputOrder::PixelMajor, OutputOrder::ChannelMajor)
        ));
    }
}
