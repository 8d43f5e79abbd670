//! 1x1 ("pointwise") convolution as a tract op.
//!
//! These are most of the landmark models' multiply-adds. tract 0.23.9 runs
//! them as matrix products: it first copies one operand into its packed panel
//! layout (up to 13% of a model's time), and its AVX-512 kernels store each
//! result tile one float at a time (192 scalar stores for a 16x12 tile),
//! which dominates when a layer has few input channels. This op reads the
//! input in place, channels first or last: a block of pixels times up to 64
//! output channels is held in AVX-512 registers, each input value broadcast
//! against 16 weights at a time. Channels-last results are stored 16
//! channels at once; channels-first ones go through a 16 x 16 scratch tile
//! and are stored 16 pixels at once.
//!
//! It rounds exactly as tract's kernels do: one fused multiply-add per input
//! channel in order, starting from zero, then the bias added, then the
//! clamp; its outputs are tract's to the bit (tested, on single convolutions
//! and on whole models). Without AVX-512 (or with it switched off, see
//! [`super::simd`]) an AVX2 path does the same sums 8 lanes at a time, to the
//! same bits; without AVX2 the models keep tract's op
//! ([`PointwiseConv::is_fast_here`]).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, Clamped, FixedShapeOp, PreluFolded};
use super::parallel;
use super::simd::{Aligned, Simd};
#[cfg(target_arch = "x86_64")]
use super::simd::{half_mask, lane_mask};

/// Output channels per AVX-512 register.
const LANES: usize = 16;
/// Pixels per register tile.
const PIXELS: usize = 6;
/// 16-channel slabs per register tile (PIXELS x SLABS accumulators).
const SLABS: usize = 4;

/// How the input holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOrder {
    /// Channels last: `x[pixel * K + k]`.
    PixelMajor,
    /// Channels first: `x[k * pixels + pixel]`.
    ChannelMajor,
}

/// How the output holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputOrder {
    /// Channels last: `y[pixel * N + n]`.
    PixelMajor,
    /// Channels first: `y[n * pixels + pixel]`.
    ChannelMajor,
}

/// A 1x1 convolution of an f32 tensor of H x W pixels and `K` channels into
/// `N` channels (each in either order), with constant weights and bias.
#[derive(Debug, Clone)]
pub struct PointwiseConv {
    /// Pixels (H x W).
    pixels: usize,
    /// The order of the input's values.
    order: InputOrder,
    /// The order of the output's values.
    output_order: OutputOrder,
    /// Input channels (K).
    inputs: usize,
    /// Output channels (N).
    outputs: usize,
    /// Weights slab-major: `packed[(slab * K + k) * 16 + lane]` is the weight
    /// of input channel `k` for output channel `slab * 16 + lane` (zero past
    /// the last channel).
    packed: Arc<Aligned>,
    /// One per output channel.
    bias: Arc<Vec<f32>>,
    /// The input and output shapes.
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
    /// Outputs are clamped to `[lo, hi]` (a fused ReLU or ReLU6).
    clamp: [f32; 2],
    /// The channels of the skip connection added to the outputs, when one
    /// is folded in ([`PointwiseConv::with_residual`]).
    residual: Option<usize>,
    /// The slopes of the PReLU after it, when one is folded in
    /// ([`PointwiseConv::with_prelu`]): one per output channel, padded with
    /// zeros to whole slabs.
    slopes: Option<Arc<Vec<f32>>>,
}

/// Equal when they compute the same thing (tract compares ops, e.g. to merge
/// duplicates).
impl PartialEq for PointwiseConv {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.input_shape == other.input_shape
            && self.order == other.order
            && self.output_order == other.output_order
            && self.output_shape == other.output_shape
            && bits(&self.packed) == bits(&other.packed)
            && bits(&self.bias) == bits(&other.bias)
            && bits(&self.clamp) == bits(&other.clamp)
            && self.residual == other.residual
            && self.slopes.as_deref().map(|s| bits(s)) == other.slopes.as_deref().map(|s| bits(s))
    }
}

impl Eq for PointwiseConv {}

impl PointwiseConv {
    /// True when this op has a SIMD path at the chosen level
    /// ([`Simd::chosen`]): AVX-512 or AVX2. Plain Rust is no match for
    /// tract's kernels.
    pub fn is_fast_here() -> bool {
        Simd::chosen() >= Simd::Avx2
    }

    /// A convolution of `input_shape` into `output_shape`, the same pixels,
    /// with `channels` = [K, N] input and output channels held in `order` =
    /// [input's, output's], weights `weights[k * N + n]` (input-major) and
    /// `bias` (`-0.0`s for none: adding `-0.0` leaves every value as it is,
    /// `-0.0` included).
    pub fn new(
        input_shape: &[usize],
        output_shape: &[usize],
        channels: [usize; 2],
        order: (InputOrder, OutputOrder),
        weights: &[f32],
        bias: Vec<f32>,
    ) -> TractResult<Self> {
        let [inputs, outputs] = channels;
        ensure!(inputs > 0 && outputs > 0, "no channels");
        let pixels = input_shape.iter().product::<usize>() / inputs;
        ensure!(
            pixels * inputs == input_shape.iter().product::<usize>()
                && pixels * outputs == output_shape.iter().product::<usize>(),
            "{input_shape:?} and {output_shape:?} are not {channels:?} channels of the same pixels"
        );
        ensure!(weights.len() == inputs * outputs, "weights size");
        ensure!(bias.len() == outputs, "bias size");
        let slabs = outputs.div_ceil(LANES);
        let mut packed = Aligned::new(64);
        packed.resize(slabs * inputs * LANES, 0.0);
        for k in 0..inputs {
            for n in 0..outputs {
                let (slab, lane) = (n / LANES, n % LANES);
                packed[(slab * inputs + k) * LANES + lane] = weights[k * outputs + n];
            }
        }
        Ok(PointwiseConv {
            pixels,
            order: order.0,
            output_order: order.1,
            inputs,
            outputs,
            packed: Arc::new(packed),
            bias: Arc::new(bias),
            input_shape: input_shape.into(),
            output_shape: output_shape.into(),
            clamp: [f32::NEG_INFINITY, f32::INFINITY],
            residual: None,
            slopes: None,
        })
    }

    /// Output channels (N).
    pub fn output_channels(&self) -> usize {
        self.outputs
    }

    /// Input channels (K).
    pub fn input_channels(&self) -> usize {
        self.inputs
    }

    /// Whether it reads and writes channels last.
    pub fn is_channels_last(&self) -> bool {
        self.order == InputOrder::PixelMajor && self.output_order == OutputOrder::PixelMajor
    }

    /// This convolution with `bias` added (one per output channel), as a
    /// bias add after it would: only to a convolution without one yet.
    pub fn with_bias(mut self, bias: Vec<f32>) -> TractResult<Self> {
        ensure!(bias.len() == self.outputs, "bias size");
        ensure!(
            self.bias.iter().all(|b| b.to_bits() == (-0.0f32).to_bits()),
            "a second bias"
        );
        self.bias = Arc::new(bias);
        Ok(self)
    }

    /// This convolution with a skip connection's add after it folded in: a
    /// second input, channels last with `channels` (at most N) values a
    /// pixel, added to each output after the bias and before any clamp, and
    /// `+0.0` added past its channels, as the zeros of a channel pad before
    /// the add would be. The same sums, each rounded as the add rounds it:
    /// the same values to the bit. It saves the add's pass over memory and
    /// its tensor (and the pad's). Only for channels-last outputs not yet
    /// clamped.
    pub fn with_residual(mut self, channels: usize) -> TractResult<Self> {
        ensure!(
            (1..=self.outputs).contains(&channels),
            "{channels} skip channels for {} outputs",
            self.outputs
        );
        ensure!(
            self.output_order == OutputOrder::PixelMajor,
            "a skip added to channels-first outputs"
        );
        ensure!(
            self.clamp == [f32::NEG_INFINITY, f32::INFINITY] && self.residual.is_none(),
            "a skip added after a clamp or a second skip"
        );
        self.residual = Some(channels);
        Ok(self)
    }

    /// This convolution with the PReLU after it folded in, `slopes` one per
    /// output channel: `v * slope` where `0 > v`, else `v`, after the bias
    /// and any skip, before any clamp. The same product: the same values to
    /// the bit, without the PReLU's pass over memory.
    pub fn with_prelu(mut self, slopes: &[f32]) -> TractResult<Self> {
        ensure!(slopes.len() == self.outputs, "{} slopes", slopes.len());
        ensure!(
            self.clamp == [f32::NEG_INFINITY, f32::INFINITY] && self.slopes.is_none(),
            "a PReLU after a clamp or a second PReLU"
        );
        let mut padded = vec![0.0; self.outputs.div_ceil(LANES) * LANES];
        padded[..slopes.len()].copy_from_slice(slopes);
        self.slopes = Some(Arc::new(padded));
        Ok(self)
    }

    /// The channels of the skip connection folded in, if any.
    pub fn skip_channels(&self) -> Option<usize> {
        self.residual
    }

    /// The shape of the skip connection's input, when there is one.
    fn skip_shape(&self) -> Option<TVec<usize>> {
        let mut shape = self.output_shape.clone();
        *shape.last_mut()? = self.residual?;
        Some(shape)
    }

    /// Output pixels `0..pixels`, channels last at `output + p * N`, whose
    /// input values are read in place from `x`: value (pixel `p`, channel
    /// `k`) at `x[p * pixel_step + channels.at(k)]`. The same sums as
    /// [`PointwiseConv::convolve`]'s, on this thread.
    ///
    /// # Safety
    /// Every value read must lie in `x`, and `output` must hold `pixels`
    /// pixels of `N` values that no other thread writes meanwhile. The op
    /// must store channels last.
    pub(crate) unsafe fn convolve_windows<O: ChannelOffsets>(
        &self,
        x: &[f32],
        pixel_step: usize,
        channels: O,
        pixels: usize,
        output: *mut f32,
    ) {
        assert!(channels.fits(self.inputs) && self.output_order == OutputOrder::PixelMajor);
        assert!(self.residual.is_none(), "windows take no skip connection");
        let part = Part {
            pixels: 0..pixels,
            slabs: 0..self.outputs.div_ceil(LANES),
        };
        // SAFETY: the caller's.
        unsafe { self.convolve_from(Simd::chosen(), x, pixel_step, channels, None, output, &part) };
    }

    /// Where input value (pixel, channel) is: (pixel stride, channel stride).
    fn input_strides(&self) -> (usize, usize) {
        match self.order {
            InputOrder::PixelMajor => (self.inputs, 1),
            InputOrder::ChannelMajor => (1, self.pixels),
        }
    }

    /// Convolves `input` into `output`, each in its order, in parts on the
    /// free threads of the current rayon pool when it is big enough.
    pub fn convolve(&self, input: &[f32], output: &mut [f32]) {
        self.convolve_adding(input, None, output)
    }

    /// [`PointwiseConv::convolve`] with the skip connection's values `skip`
    /// added, for a convolution [`PointwiseConv::with_residual`] (and only
    /// then).
    pub fn convolve_adding(&self, input: &[f32], skip: Option<&[f32]>, output: &mut [f32]) {
        assert!(input.len() >= self.pixels * self.inputs);
        assert!(output.len() >= self.pixels * self.outputs);
        self.assert_skip_fits(skip);
        let output = SharedOutput(output.as_mut_ptr());
        let simd = Simd::chosen();
        // SAFETY: the lengths were checked above; the parts are disjoint.
        parallel::for_each_part(self.parts(), |part| unsafe {
            self.convolve_part(simd, input, skip, output, &part)
        });
    }

    /// Panics unless `skip` is there exactly when a skip connection is
    /// folded in, holding the op's pixels of its channels.
    fn assert_skip_fits(&self, skip: Option<&[f32]>) {
        assert_eq!(skip.is_some(), self.residual.is_some(), "skip connection");
        if let (Some(skip), Some(channels)) = (skip, self.residual) {
            assert!(skip.len() >= self.pixels * channels);
        }
    }

    /// Where the register tiles read the skip connection, if any.
    fn skip_at(&self, skip: Option<&[f32]>) -> Option<Skip> {
        Some(Skip {
            base: skip?.as_ptr(),
            channels: self.residual?,
        })
    }

    /// The op cut into parts for the threads of the current pool: by pixels
    /// when there are more pixels than output channels, by output channels
    /// otherwise (so each thread reads the smaller of input and weights in
    /// full, and only its share of the larger).
    fn parts(&self) -> Vec<Part> {
        let slabs = self.outputs.div_ceil(LANES);
        let count = parallel::part_count(self.pixels * self.inputs * self.outputs);
        // Parts of whole register tiles, the AVX-512 paths' tile shapes; by
        // single slabs, which split evenly (12 as 6 + 6, not 4 + 8: each part
        // groups its own, see `slab_groups`).
        let pixel_tile = match self.output_order {
            OutputOrder::PixelMajor => PIXELS,
            OutputOrder::ChannelMajor => LANES,
        };
        if self.pixels >= self.outputs {
            parallel::split(self.pixels, pixel_tile, count)
                .into_iter()
                .map(|pixels| Part {
                    pixels,
                    slabs: 0..slabs,
                })
                .collect()
        } else {
            parallel::split(slabs, 1, count)
                .into_iter()
                .map(|slabs| Part {
                    pixels: 0..self.pixels,
                    slabs,
                })
                .collect()
        }
    }

    /// Convolves one part of the output at SIMD level `simd`.
    ///
    /// # Safety
    /// The CPU must have `simd`; `input` and `output` must hold the op's
    /// pixels x channels, and no other thread may write this part of
    /// `output` meanwhile.
    unsafe fn convolve_part(
        &self,
        simd: Simd,
        input: &[f32],
        skip: Option<&[f32]>,
        output: SharedOutput,
        part: &Part,
    ) {
        let (p_stride, k_stride) = self.input_strides();
        let (skip, channels) = (self.skip_at(skip), Stride(k_stride));
        // SAFETY: this function's.
        unsafe { self.convolve_from(simd, input, p_stride, channels, skip, output.0, part) }
    }

    /// Convolves one part of the output at SIMD level `simd`, input value
    /// (pixel `p`, channel `k`) at `input[p * pixel_step + channels.at(k)]`.
    ///
    /// # Safety
    /// As [`PointwiseConv::convolve_part`], with every value read in `input`
    /// and `skip` holding the op's pixels of skip values when there is one.
    #[allow(clippy::too_many_arguments)]
    unsafe fn convolve_from<O: ChannelOffsets>(
        &self,
        simd: Simd,
        input: &[f32],
        pixel_step: usize,
        channels: O,
        skip: Option<Skip>,
        output: *mut f32,
        part: &Part,
    ) {
        let src = Src {
            base: input.as_ptr(),
            pixel_step,
            channels,
            skip,
        };
        // SAFETY (each call): the CPU has `simd`, the rest is this function's.
        match simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { convolve_avx512(self, src, output, part) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { convolve_avx2(self, src, output, part) },
            _ => unsafe { self.convolve_portable(input, pixel_step, channels, skip, output, part) },
        }
    }

    /// Where output value (pixel, channel) goes: (pixel stride, channel
    /// stride).
    fn output_strides(&self) -> (usize, usize) {
        match self.output_order {
            OutputOrder::PixelMajor => (self.outputs, 1),
            OutputOrder::ChannelMajor => (1, self.pixels),
        }
    }

    /// The same sums one value at a time (`mul_add` rounds once, as the
    /// fused multiply-add does), input value (pixel `p`, channel `k`) at
    /// `input[p * pixel_step + offsets.at(k)]`, and `skip`'s values added.
    ///
    /// # Safety
    /// As [`PointwiseConv::convolve_from`].
    unsafe fn convolve_portable<O: ChannelOffsets>(
        &self,
        input: &[f32],
        pixel_step: usize,
        offsets: O,
        skip: Option<Skip>,
        output: *mut f32,
        part: &Part,
    ) {
        let k_len = self.inputs;
        let (out_p, out_n) = self.output_strides();
        let channels = part.slabs.start * LANES..(part.slabs.end * LANES).min(self.outputs);
        for p in part.pixels.clone() {
            for n in channels.clone() {
                let (slab, lane) = (n / LANES, n % LANES);
                let w = &self.packed[slab * k_len * LANES..];
                let sum = (0..k_len).fold(0.0f32, |acc, k| {
                    input[p * pixel_step + offsets.at(k)].mul_add(w[k * LANES + lane], acc)
                });
                let mut v = sum + self.bias[n];
                // SAFETY: (p, n) is inside the op and this part, and the skip
                // holds the op's pixels (the caller's).
                unsafe {
                    if let Some(skip) = skip {
                        v += skip.value(p, n);
                    }
                    if let Some(slopes) = &self.slopes {
                        v = if 0.0 > v { v * slopes[n] } else { v };
                    }
                    *output.add(p * out_p + n * out_n) = v.max(self.clamp[0]).min(self.clamp[1])
                };
            }
        }
    }
}

#[cfg(test)]
impl PointwiseConv {
    /// The whole output by [`PointwiseConv::convolve_portable`].
    fn convolve_portably(&self, input: &[f32], output: &mut [f32]) {
        self.convolve_at(Simd::Portable, input, None, output);
    }

    /// The whole output at SIMD level `simd`, on this thread, `skip` added.
    fn convolve_at(&self, simd: Simd, input: &[f32], skip: Option<&[f32]>, output: &mut [f32]) {
        assert!(simd <= Simd::of_this_cpu());
        self.assert_skip_fits(skip);
        assert!(input.len() >= self.pixels * self.inputs);
        assert!(output.len() >= self.pixels * self.outputs);
        let all = Part {
            pixels: 0..self.pixels,
            slabs: 0..self.outputs.div_ceil(LANES),
        };
        let output = SharedOutput(output.as_mut_ptr());
        // SAFETY: the CPU has `simd`; the lengths were checked above; one
        // part, this thread.
        unsafe { self.convolve_part(simd, input, skip, output, &all) };
    }
}

/// Where input channel `k` of a pixel is, counted from the pixel's first
/// value.
pub(crate) trait ChannelOffsets: Copy {
    /// The offset of channel `k`.
    fn at(self, k: usize) -> usize;

    /// Whether these offsets are for pixels of `channels` channels.
    fn fits(self, _channels: usize) -> bool {
        true
    }
}

/// Channels `stride` values apart (1 channels last, the pixel count first).
#[derive(Clone, Copy)]
pub(crate) struct Stride(pub usize);

impl ChannelOffsets for Stride {
    #[inline(always)]
    fn at(self, k: usize) -> usize {
        k * self.0
    }
}

/// Channels anywhere: a window's values read in place from an image.
impl ChannelOffsets for &[usize] {
    #[inline(always)]
    fn at(self, k: usize) -> usize {
        self[k]
    }

    fn fits(self, channels: usize) -> bool {
        self.len() == channels
    }
}

/// Where the register tiles read their input: value (pixel `p`, channel
/// `k`) at `base + p * pixel_step + channels.at(k)`.
#[derive(Clone, Copy)]
pub(crate) struct Src<O> {
    pub base: *const f32,
    pub pixel_step: usize,
    pub channels: O,
    /// The skip connection added to the outputs, if any.
    pub skip: Option<Skip>,
}

/// A skip connection's values, channels last: value (pixel `p`, channel
/// `n`) at `base + p * channels + n` for `n < channels`, and `+0.0` (a
/// channel pad's zero) past them.
#[derive(Clone, Copy)]
pub(crate) struct Skip {
    pub base: *const f32,
    pub channels: usize,
}

impl Skip {
    /// Value (pixel `p`, channel `n`).
    ///
    /// # Safety
    /// Pixel `p` must be one of the skip's.
    unsafe fn value(self, p: usize, n: usize) -> f32 {
        if n < self.channels {
            // SAFETY: the caller's.
            unsafe { *self.base.add(p * self.channels + n) }
        } else {
            0.0
        }
    }

    /// How many of the 16 channels from `n0` are the skip's own (the rest
    /// add `+0.0`).
    fn lanes_from(self, n0: usize) -> usize {
        self.channels.saturating_sub(n0).min(LANES)
    }
}

/// Pixels x 16-channel slabs of the output, computed together on one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    pixels: std::ops::Range<usize>,
    slabs: std::ops::Range<usize>,
}

/// The output buffer, written by several threads at once, each in its own
/// [`Part`].
#[derive(Clone, Copy)]
struct SharedOutput(*mut f32);

// SAFETY: the threads holding it write disjoint parts of one buffer that
// outlives them (`convolve` returns only when every part is done).
unsafe impl Send for SharedOutput {}
// SAFETY: as above.
unsafe impl Sync for SharedOutput {}

/// The AVX-512 path, by output order.
///
/// # Safety
/// The CPU must have AVX-512F; otherwise as
/// [`PointwiseConv::convolve_part`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn convolve_avx512<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    output: *mut f32,
    part: &Part,
) {
    // SAFETY: as this function's.
    unsafe {
        match op.output_order {
            OutputOrder::PixelMajor => pixel_major_avx512(op, src, output, part),
            OutputOrder::ChannelMajor => channel_major_avx512(op, src, output, part),
        }
    }
}

/// Channels-last output: tiles of [`PIXELS`] pixels x up to [`SLABS`] slabs
/// stored straight into place.
///
/// # Safety
/// As [`convolve_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pixel_major_avx512<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    output: *mut f32,
    part: &Part,
) {
    let n_len = op.outputs;
    let mut p0 = part.pixels.start;
    while p0 < part.pixels.end {
        let pixels = (part.pixels.end - p0).min(PIXELS);
        for slabs in slab_groups(part.slabs.clone()) {
            let s0 = slabs.start;
            let dst = output.wrapping_add(p0 * n_len + s0 * LANES);
            // SAFETY: the tile lies inside the op's pixels and slabs, and
            // `dst` inside `output`.
            unsafe { any_tile(op, src, [pixels, slabs.len()], p0, s0, dst, n_len) };
        }
        p0 += pixels;
    }
}

/// `slabs` in groups of at most [`SLABS`], as even as they come (6 slabs as
/// 3 + 3, not 4 + 2: the narrower a tile, the more loads each multiply-add
/// waits for).
fn slab_groups(slabs: std::ops::Range<usize>) -> impl Iterator<Item = std::ops::Range<usize>> {
    let groups = slabs.len().div_ceil(SLABS);
    let (start, len) = (slabs.start, slabs.len());
    (0..groups).map(move |g| start + len * g / groups..start + len * (g + 1) / groups)
}

/// [`tile`] for `[pixels, slabs]` known only at run time (pixels up to
/// [`PIXELS`], slabs up to [`SLABS`]): a part's last pixels get a tile as
/// wide as they are, not one pixel at a time (which reloads every weight per
/// pixel).
///
/// # Safety
/// As [`tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn any_tile<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    [pixels, slabs]: [usize; 2],
    p0: usize,
    s0: usize,
    dst: *mut f32,
    dst_row: usize,
) {
    macro_rules! by_slabs {
        ($p:literal) => {
            match slabs {
                4 => tile::<$p, 4, O>(op, src, p0, s0, dst, dst_row),
                3 => tile::<$p, 3, O>(op, src, p0, s0, dst, dst_row),
                2 => tile::<$p, 2, O>(op, src, p0, s0, dst, dst_row),
                _ => tile::<$p, 1, O>(op, src, p0, s0, dst, dst_row),
            }
        };
    }
    const _: () = assert!(PIXELS == 6, "a tile for each width up to PIXELS");
    // SAFETY: as this function's.
    unsafe {
        match pixels {
            6 => by_slabs!(6),
            5 => by_slabs!(5),
            4 => by_slabs!(4),
            3 => by_slabs!(3),
            2 => by_slabs!(2),
            _ => by_slabs!(1),
        }
    }
}

/// Channels-first output: tiles of 16 pixels x 16 channels computed as for
/// channels last into a scratch tile, then moved into place a channel (16
/// pixels) at a time.
///
/// # Safety
/// As [`convolve_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn channel_major_avx512<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    output: *mut f32,
    part: &Part,
) {
    use std::arch::x86_64::*;
    let (pixels, n_len) = (op.pixels, op.outputs);
    let mut scratch = [0.0f32; LANES * LANES];
    // Where each of 16 pixels' values of one channel sit in the scratch tile.
    let rows = _mm512_setr_epi32(
        0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240,
    );
    for s0 in part.slabs.clone() {
        let lanes = (n_len - s0 * LANES).min(LANES);
        let mut p0 = part.pixels.start;
        while p0 < part.pixels.end {
            let count = (part.pixels.end - p0).min(LANES);
            // SAFETY: the tile's pixels and slab exist; the scratch tile
            // holds 16 pixels x 16 channels; the gathers read inside it and
            // each store writes 16 pixels of one channel inside `output`.
            unsafe {
                if count == LANES {
                    tile::<LANES, 1, O>(op, src, p0, s0, scratch.as_mut_ptr(), LANES);
                    for lane in 0..lanes {
                        let channel = _mm512_i32gather_ps::<4>(rows, scratch.as_ptr().add(lane));
                        let to = output.add((s0 * LANES + lane) * pixels + p0);
                        _mm512_storeu_ps(to, channel);
                    }
                } else {
                    // The part's last pixels, up to PIXELS a tile.
                    for i in (0..count).step_by(PIXELS) {
                        let from = scratch[i * LANES..].as_mut_ptr();
                        let width = (count - i).min(PIXELS);
                        any_tile(op, src, [width, 1], p0 + i, s0, from, LANES);
                    }
                    for lane in 0..lanes {
                        for i in 0..count {
                            *output.add((s0 * LANES + lane) * pixels + p0 + i) =
                                scratch[i * LANES + lane];
                        }
                    }
                }
            }
            p0 += count;
        }
    }
}

/// Outputs of pixels `p0..p0 + P`, channels of slabs `s0..s0 + S`, stored
/// channels last from `dst` (pixel `p0`, channel `s0 * 16`), `dst_row`
/// floats from one pixel to the next.
///
/// # Safety
/// AVX-512F; the pixels and slabs must exist in `op` and `input`, and `dst`
/// must hold `P` rows of the tile's valid channels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const P: usize, const S: usize, O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    p0: usize,
    s0: usize,
    dst: *mut f32,
    dst_row: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: AVX-512F is enabled; every pointer stays inside its buffer
    // (the caller passes pixels and slabs that exist; masked lanes past the
    // last channel are neither loaded nor stored).
    unsafe {
        let (k_len, n_len) = (op.inputs, op.outputs);
        let p_stride = src.pixel_step;
        let x = src.base.wrapping_add(p0 * p_stride);
        let w = op.packed.as_ptr().add(s0 * k_len * LANES);
        let mut acc = [[_mm512_setzero_ps(); S]; P];
        for k in 0..k_len {
            let mut weights = [_mm512_setzero_ps(); S];
            for (s, slot) in weights.iter_mut().enumerate() {
                *slot = _mm512_loadu_ps(w.add((s * k_len + k) * LANES));
            }
            for (p, row) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*x.add(p * p_stride + src.channels.at(k)));
                for (a, wv) in row.iter_mut().zip(&weights) {
                    *a = _mm512_fmadd_ps(v, *wv, *a);
                }
            }
        }
        // The bias, skip, PReLU and clamp, each a pass over the whole tile:
        // bodies this small are unrolled, so the sums stay in registers (one
        // loop over slabs doing all four kept them on the stack, zeroed by a
        // memset every tile: a layer of 16 input channels ran 20-30% slower).
        let n0 = |s: usize| (s0 + s) * LANES;
        let masks: [__mmask16; S] = std::array::from_fn(|s| lane_mask((n_len - n0(s)).min(LANES)));
        let bias: [__m512; S] =
            std::array::from_fn(|s| _mm512_maskz_loadu_ps(masks[s], op.bias.as_ptr().add(n0(s))));
        for row in acc.iter_mut() {
            for (a, b) in row.iter_mut().zip(&bias) {
                *a = _mm512_add_ps(*a, *b);
            }
        }
        if let Some(skip) = src.skip {
            // Masked-off lanes load +0.0: the pad's zeros.
            let own: [__mmask16; S] = std::array::from_fn(|s| lane_mask(skip.lanes_from(n0(s))));
            for (p, row) in acc.iter_mut().enumerate() {
                let at = skip.base.wrapping_add((p0 + p) * skip.channels);
                for (s, a) in row.iter_mut().enumerate() {
                    let values = _mm512_maskz_loadu_ps(own[s], at.wrapping_add(n0(s)));
                    *a = _mm512_add_ps(*a, values);
                }
            }
        }
        if let Some(slopes) = &op.slopes {
            let slopes: [__m512; S] =
                std::array::from_fn(|s| _mm512_loadu_ps(slopes.as_ptr().add(n0(s))));
            for row in acc.iter_mut() {
                for (a, slope) in row.iter_mut().zip(&slopes) {
                    // Only where 0 > v: not for a NaN, as the PReLU op.
                    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(*a, _mm512_setzero_ps());
                    *a = _mm512_mask_mul_ps(*a, negative, *a, *slope);
                }
            }
        }
        let (lo, hi) = (_mm512_set1_ps(op.clamp[0]), _mm512_set1_ps(op.clamp[1]));
        for (p, row) in acc.iter().enumerate() {
            for (s, a) in row.iter().enumerate() {
                let v = _mm512_min_ps(_mm512_max_ps(*a, lo), hi);
                _mm512_mask_storeu_ps(dst.add(p * dst_row + s * LANES), masks[s], v);
            }
        }
    }
}

/// The AVX2 path, by output order: each 16-channel slab is two 8-lane
/// registers, a tile [`PIXELS`] pixels x one slab (12 accumulators of the 16
/// registers).
///
/// # Safety
/// The CPU must have AVX2 and FMA; otherwise as
/// [`PointwiseConv::convolve_part`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn convolve_avx2<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    output: *mut f32,
    part: &Part,
) {
    // SAFETY: as this function's.
    unsafe {
        match op.output_order {
            OutputOrder::PixelMajor => pixel_major_avx2(op, src, output, part),
            OutputOrder::ChannelMajor => channel_major_avx2(op, src, output, part),
        }
    }
}

/// Channels-last output, stored straight into place.
///
/// # Safety
/// As [`convolve_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixel_major_avx2<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    output: *mut f32,
    part: &Part,
) {
    let n_len = op.outputs;
    let mut p0 = part.pixels.start;
    while p0 < part.pixels.end {
        let pixels = (part.pixels.end - p0).min(PIXELS);
        for s in part.slabs.clone() {
            let at = |p: usize| output.wrapping_add(p * n_len + s * LANES);
            // A part's last pixels get a tile as wide as they are.
            // SAFETY: the tile lies inside the op's pixels and slabs, and
            // `at` inside `output`.
            unsafe {
                match pixels {
                    6 => tile_avx2::<6, O>(op, src, p0, s, at(p0), n_len),
                    5 => tile_avx2::<5, O>(op, src, p0, s, at(p0), n_len),
                    4 => tile_avx2::<4, O>(op, src, p0, s, at(p0), n_len),
                    3 => tile_avx2::<3, O>(op, src, p0, s, at(p0), n_len),
                    2 => tile_avx2::<2, O>(op, src, p0, s, at(p0), n_len),
                    _ => tile_avx2::<1, O>(op, src, p0, s, at(p0), n_len),
                }
            }
        }
        p0 += pixels;
    }
}

/// Channels-first output: 16 pixels x 16 channels into a scratch tile, then
/// moved into place a channel at a time.
///
/// # Safety
/// As [`convolve_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channel_major_avx2<O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    output: *mut f32,
    part: &Part,
) {
    const QUARTER: usize = LANES / 4;
    let (pixels, n_len) = (op.pixels, op.outputs);
    let mut scratch = [0.0f32; LANES * LANES];
    for s in part.slabs.clone() {
        let lanes = (n_len - s * LANES).min(LANES);
        let mut p0 = part.pixels.start;
        while p0 < part.pixels.end {
            let count = (part.pixels.end - p0).min(LANES);
            // SAFETY: the tile's pixels and slab exist; the scratch tile
            // holds 16 pixels x 16 channels, and each value moved goes to a
            // pixel and channel of `output` inside this part.
            unsafe {
                let base = scratch.as_mut_ptr();
                let row = |i: usize| base.add(i * LANES);
                if count == LANES {
                    for q in 0..4 {
                        tile_avx2::<QUARTER, O>(
                            op,
                            src,
                            p0 + q * QUARTER,
                            s,
                            row(q * QUARTER),
                            LANES,
                        );
                    }
                } else {
                    (0..count).for_each(|i| tile_avx2::<1, O>(op, src, p0 + i, s, row(i), LANES));
                }
                for lane in 0..lanes {
                    let to = output.add((s * LANES + lane) * pixels + p0);
                    for i in 0..count {
                        *to.add(i) = *base.add(i * LANES + lane);
                    }
                }
            }
            p0 += count;
        }
    }
}

/// Outputs of pixels `p0..p0 + P`, the channels of slab `s`, stored channels
/// last from `dst` (pixel `p0`, channel `s * 16`), `dst_row` floats from one
/// pixel to the next: the sums, bias and clamp of [`tile`], 8 lanes at a time.
///
/// # Safety
/// AVX2 and FMA; the pixels and slab must exist in `op` and `input`, and
/// `dst` must hold `P` rows of the slab's valid channels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const P: usize, O: ChannelOffsets>(
    op: &PointwiseConv,
    src: Src<O>,
    p0: usize,
    s: usize,
    dst: *mut f32,
    dst_row: usize,
) {
    use std::arch::x86_64::*;
    const HALF: usize = LANES / 2;
    // SAFETY: AVX2 and FMA are enabled; the weights are padded to whole
    // slabs, so both halves load inside `packed`; only the slab's valid
    // channels are stored, and every other pointer stays inside its buffer
    // (the caller's pixels and slab exist).
    unsafe {
        let (k_len, n_len) = (op.inputs, op.outputs);
        let p_stride = src.pixel_step;
        let x = src.base.wrapping_add(p0 * p_stride);
        let w = op.packed.as_ptr().add(s * k_len * LANES);
        let mut acc = [[_mm256_setzero_ps(); 2]; P];
        for k in 0..k_len {
            let low = _mm256_loadu_ps(w.add(k * LANES));
            let high = _mm256_loadu_ps(w.add(k * LANES + HALF));
            for (p, row) in acc.iter_mut().enumerate() {
                let v = _mm256_set1_ps(*x.add(p * p_stride + src.channels.at(k)));
                row[0] = _mm256_fmadd_ps(v, low, row[0]);
                row[1] = _mm256_fmadd_ps(v, high, row[1]);
            }
        }
        // As in [`tile`]: the bias, skip, PReLU and clamp each a pass over
        // the tile, so the sums stay in registers.
        let n0 = s * LANES;
        let lanes = (n_len - n0).min(LANES);
        let masks = [half_mask(lanes), half_mask(lanes.saturating_sub(HALF))];
        let bias: [__m256; 2] = std::array::from_fn(|half| {
            _mm256_maskload_ps(op.bias.as_ptr().wrapping_add(n0 + half * HALF), masks[half])
        });
        for row in acc.iter_mut() {
            for (a, b) in row.iter_mut().zip(&bias) {
                *a = _mm256_add_ps(*a, *b);
            }
        }
        if let Some(skip) = src.skip {
            // The skip's values, +0.0 (the pad's zeros) past its channels:
            // masked-off lanes load zeros.
            let own = skip.lanes_from(n0);
            let own = [half_mask(own), half_mask(own.saturating_sub(HALF))];
            for (p, row) in acc.iter_mut().enumerate() {
                let from = skip.base.wrapping_add((p0 + p) * skip.channels + n0);
                for (half, a) in row.iter_mut().enumerate() {
                    let values = _mm256_maskload_ps(from.wrapping_add(half * HALF), own[half]);
                    *a = _mm256_add_ps(*a, values);
                }
            }
        }
        if let Some(slopes) = &op.slopes {
            let slopes: [__m256; 2] =
                std::array::from_fn(|half| _mm256_loadu_ps(slopes.as_ptr().add(n0 + half * HALF)));
            for row in acc.iter_mut() {
                for (a, slope) in row.iter_mut().zip(&slopes) {
                    // Only where 0 > v: not for a NaN, as the PReLU op.
                    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(*a, _mm256_setzero_ps());
                    *a = _mm256_blendv_ps(*a, _mm256_mul_ps(*a, *slope), negative);
                }
            }
        }
        let (lo, hi) = (_mm256_set1_ps(op.clamp[0]), _mm256_set1_ps(op.clamp[1]));
        for (p, row) in acc.iter().enumerate() {
            let to = dst.add(p * dst_row);
            let v = row.map(|a| _mm256_min_ps(_mm256_max_ps(a, lo), hi));
            if lanes == LANES {
                _mm256_storeu_ps(to, v[0]);
                _mm256_storeu_ps(to.add(HALF), v[1]);
            } else {
                // A masked store is microcoded on AMD's cores: a slab's
                // last lanes go through the stack instead.
                let mut values = [0.0f32; LANES];
                _mm256_storeu_ps(values.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(values.as_mut_ptr().add(HALF), v[1]);
                std::ptr::copy_nonoverlapping(values.as_ptr(), to, lanes);
            }
        }
    }
}

impl PreluFolded for PointwiseConv {
    fn prelu_channels(&self) -> Option<usize> {
        (self.output_order == OutputOrder::PixelMajor).then_some(self.outputs)
    }

    fn with_prelu(self, slopes: &[f32]) -> TractResult<Self> {
        PointwiseConv::with_prelu(self, slopes)
    }
}

impl Clamped for PointwiseConv {
    fn clamp_mut(&mut self) -> &mut [f32; 2] {
        &mut self.clamp
    }
}

impl FixedShapeOp for PointwiseConv {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        PointwiseConv::convolve(self, input, output)
    }
}

impl Op for PointwiseConv {
    fn name(&self) -> StaticName {
        "PointwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut folded = match self.residual {
            Some(channels) => format!(", {channels} skip channels added"),
            None => String::new(),
        };
        if self.slopes.is_some() {
            folded.push_str(", PReLU");
        }
        Ok(vec![format!(
            "{} pixels, {} -> {} channels{folded}",
            self.pixels, self.inputs, self.outputs
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(skip_shape) = self.skip_shape() else {
            return conv_op::eval(self, inputs);
        };
        let (input, skip) = args_2!(inputs);
        ensure!(
            input.shape() == &*self.input_shape && skip.shape() == &*skip_shape,
            "PointwiseConv expects inputs {:?} and {skip_shape:?}, got {:?} and {:?}",
            self.input_shape,
            input.shape(),
            skip.shape()
        );
        let (input, skip) = (input.try_as_plain_ram()?, skip.try_as_plain_ram()?);
        // SAFETY: `convolve_adding` writes every output value (tested with
        // buffers of NaNs).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        let mut view = output.try_as_plain_ram_mut()?;
        let skip = skip.as_slice::<f32>()?;
        self.convolve_adding(
            input.as_slice::<f32>()?,
            Some(skip),
            view.as_slice_mut::<f32>()?,
        );
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for PointwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(skip_shape) = self.skip_shape() else {
            return conv_op::output_facts(self, inputs);
        };
        let [input, skip] = inputs else {
            bail!("PointwiseConv with a skip connection takes two inputs");
        };
        ensure!(
            [input, skip]
                .iter()
                .all(|f| f.datum_type == f32::datum_type()),
            "f32 only"
        );
        ensure!(
            input.shape.as_concrete() == Some(&*self.input_shape)
                && skip.shape.as_concrete() == Some(&*skip_shape),
            "input shapes"
        );
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let fma = self.pixels * self.inputs * self.outputs;
        Ok(tvec!((Cost::FMA(f32::datum_type()), fma.into())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::super::prelu::Prelu;
    use super::*;
    use crate::nn::conv_op::test_values as values;
    use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// A convolution of `pixels` pixels of `[K, N]` channels in `order`,
    /// with the tests' weights and bias.
    fn test_op(
        pixels: usize,
        [k, n]: [usize; 2],
        order: (InputOrder, OutputOrder),
    ) -> PointwiseConv {
        let (weights, bias) = (values(k * n, 1), values(n, 2));
        PointwiseConv::new(&[pixels, k], &[pixels, n], [k, n], order, &weights, bias).unwrap()
    }

    /// tract's own optimised NHWC 1x1 convolution of the same weights.
    fn tracts(
        shape: [usize; 3],
        outputs: usize,
        weights: &[f32],
        bias: &[f32],
        x: &[f32],
    ) -> Vec<f32> {
        let [h, w, k] = shape;
        let oihw = tract_ndarray::Array4::from_shape_fn((outputs, k, 1, 1), |(n, k, _, _)| {
            weights[k * outputs + n]
        });
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NHWC,
                kernel_shape: tvec![1, 1],
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: None,
                input_channels: k,
                output_channels: outputs,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let (_, values) =
            conv_op::tracts_convolution(conv, &[1, h, w, k], oihw.into_tensor(), bias, x);
        values
    }

    #[test]
    fn gives_tracts_own_results_to_the_bit() {
        // Pixel counts with and without a partial tile; channel counts with
        // partial slabs and more than one slab group.
        for (h, w, k, n) in [
            (8, 8, 24, 64),
            (5, 7, 144, 24),
            (3, 3, 40, 240),
            (16, 16, 16, 88),
            (1, 1, 1152, 39),
            (2, 7, 32, 200),
        ] {
            let weights = values(k * n, 1);
            let bias = values(n, 2);
            let x = values(h * w * k, 3);
            let theirs = tracts([h, w, k], n, &weights, &bias, &x);
            let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
            let op = PointwiseConv::new(
                &[1, h, w, k],
                &[1, h, w, n],
                [k, n],
                order,
                &weights,
                bias.clone(),
            )
            .unwrap();
            let mut ours = vec![f32::NAN; h * w * n];
            op.convolve(&x, &mut ours);
            assert!(ours == theirs, "{h}x{w}x{k} -> {n}");
            let mut portable = vec![f32::NAN; h * w * n];
            op.convolve_portably(&x, &mut portable);
            assert!(portable == theirs, "portable {h}x{w}x{k} -> {n}");
        }
    }

    #[test]
    fn parts_on_several_threads_give_the_same_bits() {
        let three_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // More pixels than channels (cut by pixels), and fewer (by slabs).
        for (pixels, k, n) in [(100, 24, 40), (20, 64, 200)] {
            for order in [
                (InputOrder::PixelMajor, OutputOrder::PixelMajor),
                (InputOrder::ChannelMajor, OutputOrder::PixelMajor),
                (InputOrder::PixelMajor, OutputOrder::ChannelMajor),
                (InputOrder::ChannelMajor, OutputOrder::ChannelMajor),
            ] {
                let op = test_op(pixels, [k, n], order);
                let x = values(pixels * k, 3);
                let mut alone = vec![f32::NAN; pixels * n];
                op.convolve(&x, &mut alone);
                let mut in_parts = vec![f32::NAN; pixels * n];
                let parts = three_threads.install(|| {
                    parallel::with_helper(|| op.convolve(&x, &mut in_parts));
                    op.parts()
                });
                assert_eq!(op.parts().len(), 1, "outside a pool");
                assert!(parts.len() > 1, "{pixels}x{k}->{n}: {parts:?}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&in_parts), bits(&alone), "{pixels}x{k}->{n} {order:?}");
            }
        }
    }

    #[test]
    fn every_order_and_simd_level_gives_the_same_values() {
        // 37 pixels: two whole 16-pixel tiles and a part one; 40 channels:
        // two whole slabs and a part one. 5 pixels x 7 channels: no whole
        // tile at all. 14 pixels: two whole 6-pixel tiles and a 2-pixel one;
        // 200 channels: 13 slabs, in groups of 3, 3, 3 and 4.
        for (h, n) in [(37, 40), (5, 7), (48, 64), (14, 200)] {
            every_order_gives_the_same_values(h, n);
        }
    }

    fn every_order_gives_the_same_values(h: usize, n: usize) {
        let (w, k) = (1, 24);
        let pixels = h * w;
        let weights = values(k * n, 7);
        let bias = values(n, 8);
        let x = values(pixels * k, 9);
        let x_channel_major: Vec<f32> = (0..k * pixels)
            .map(|i| x[(i % pixels) * k + i / pixels])
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let run = |order: (InputOrder, OutputOrder), input: &[f32]| {
            let op = PointwiseConv::new(
                &[h, w, k],
                &[h, w, n],
                [k, n],
                order,
                &weights,
                bias.clone(),
            )
            .unwrap()
            .with_floor(-0.5);
            let mut fast = vec![f32::NAN; pixels * n];
            op.convolve(input, &mut fast);
            for simd in Simd::available() {
                let mut at_level = vec![f32::NAN; pixels * n];
                op.convolve_at(simd, input, None, &mut at_level);
                assert!(bits(&fast) == bits(&at_level), "{order:?} {simd:?} {h}x{n}");
            }
            fast
        };
        use InputOrder as In;
        use OutputOrder as Out;
        let expected = run((In::PixelMajor, Out::PixelMajor), &x);
        let transposed: Vec<f32> = (0..n * pixels)
            .map(|i| expected[(i % pixels) * n + i / pixels])
            .collect();
        assert!(run((In::ChannelMajor, Out::PixelMajor), &x_channel_major) == expected);
        assert!(run((In::PixelMajor, Out::ChannelMajor), &x) == transposed);
        assert!(run((In::ChannelMajor, Out::ChannelMajor), &x_channel_major) == transposed);
    }

    #[test]
    fn clamps_after_the_bias() {
        let (k, n) = (3, 20);
        let weights = values(k * n, 4);
        let bias = values(n, 5);
        let x: Vec<f32> = values(7 * k, 6).iter().map(|v| v * 8.0).collect();
        let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
        let plain =
            PointwiseConv::new(&[7, 1, k], &[7, 1, n], [k, n], order, &weights, bias).unwrap();
        let relu6 = plain.clone().with_floor(0.0).with_ceiling(6.0);
        let (mut a, mut b) = (vec![f32::NAN; 7 * n], vec![f32::NAN; 7 * n]);
        plain.convolve(&x, &mut a);
        relu6.convolve(&x, &mut b);
        assert!(a.iter().any(|v| *v < 0.0) && a.iter().any(|v| *v > 6.0));
        let expected: Vec<f32> = a.iter().map(|v| v.clamp(0.0, 6.0)).collect();
        assert_eq!(b, expected);
    }

    #[test]
    fn adds_a_skip_connection_as_the_add_after_it_would_to_the_bit() {
        let three_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // Skips as wide as the output, and narrower (a channel pad's zeros
        // added past them): inside one slab, at a slab's end, across slabs;
        // pixels in whole and part tiles, cut by pixels and by slabs.
        for (pixels, k, n, skip_channels) in [
            (37, 24, 40, 40),
            (64, 16, 88, 80),
            (14, 24, 28, 24),
            (100, 8, 32, 16),
            (9, 32, 200, 130),
            (5, 3, 7, 1),
        ] {
            let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
            let plain = test_op(pixels, [k, n], order);
            let x = values(pixels * k, 3);
            // Large enough that the sums round differently from the products.
            let skip: Vec<f32> = values(pixels * skip_channels, 4)
                .iter()
                .map(|v| v * 3.0)
                .collect();
            let mut conv = vec![f32::NAN; pixels * n];
            plain.convolve(&x, &mut conv);
            let added: Vec<f32> = conv
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    let (p, c) = (i / n, i % n);
                    let padded = if c < skip_channels {
                        skip[p * skip_channels + c]
                    } else {
                        0.0
                    };
                    y + padded
                })
                .collect();
            let relu: Vec<f32> = added.iter().map(|v| v.max(0.0)).collect();
            // The PReLU after the add, as signtop's PReLU op computes it.
            let slopes = values(n, 5);
            let mut prelu = added.clone();
            Prelu::new(&[pixels, n], &[n], &slopes)
                .unwrap()
                .apply(&mut prelu);
            assert!(prelu != added, "{pixels}x{k}->{n}: no negative sums");
            let fused = plain.clone().with_residual(skip_channels).unwrap();
            let with_prelu = fused.clone().with_prelu(&slopes).unwrap();
            for (op, expected) in [
                (fused.clone(), &added),
                (fused.with_floor(0.0), &relu),
                (with_prelu, &prelu),
            ] {
                let case = format!("{pixels}x{k}->{n}, {skip_channels} skip channels");
                let mut ours = vec![f32::NAN; pixels * n];
                op.convolve_adding(&x, Some(&skip), &mut ours);
                assert!(bits(&ours) == bits(expected), "{case}");
                for simd in Simd::available() {
                    let mut at_level = vec![f32::NAN; pixels * n];
                    op.convolve_at(simd, &x, Some(&skip), &mut at_level);
                    assert!(bits(&at_level) == bits(expected), "{case} {simd:?}");
                }
                let mut in_parts = vec![f32::NAN; pixels * n];
                three_threads.install(|| {
                    parallel::with_helper(|| op.convolve_adding(&x, Some(&skip), &mut in_parts))
                });
                assert!(bits(&in_parts) == bits(expected), "{case} in parts");
            }
        }
    }

    #[test]
    fn a_folded_prelu_gives_the_prelu_ops_bits_in_every_order() {
        let (pixels, k, n) = (37, 24, 40);
        let slopes = values(n, 5);
        let prelu = Prelu::new(&[pixels, n], &[n], &slopes).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for output_order in [OutputOrder::PixelMajor, OutputOrder::ChannelMajor] {
            let order = (InputOrder::PixelMajor, output_order);
            let new = || test_op(pixels, [k, n], order);
            let x = values(pixels * k, 3);
            let mut expected = vec![f32::NAN; pixels * n];
            new().convolve(&x, &mut expected);
            if output_order == OutputOrder::ChannelMajor {
                expected = (0..pixels * n)
                    .map(|i| expected[(i % n) * pixels + i / n])
                    .collect();
            }
            prelu.apply(&mut expected);
            let op = new().with_prelu(&slopes).unwrap();
            for simd in Simd::available() {
                let mut ours = vec![f32::NAN; pixels * n];
                op.convolve_at(simd, &x, None, &mut ours);
                if output_order == OutputOrder::ChannelMajor {
                    ours = (0..pixels * n)
                        .map(|i| ours[(i % n) * pixels + i / n])
                        .collect();
                }
                assert!(bits(&ours) == bits(&expected), "{output_order:?} {simd:?}");
            }
            assert!(op.with_prelu(&slopes).is_err(), "a second PReLU");
        }
    }

    #[test]
    fn takes_a_skip_connection_only_before_a_clamp_and_channels_last() {
        let new = |order| {
            let (w, b) = (vec![0.5; 12], vec![0.0; 4]);
            PointwiseConv::new(&[1, 2, 2, 3], &[1, 2, 2, 4], [3, 4], order, &w, b).unwrap()
        };
        let last = new((InputOrder::PixelMajor, OutputOrder::PixelMajor));
        assert!(last.clone().with_residual(4).is_ok());
        assert!(last.clone().with_residual(1).is_ok());
        assert!(
            last.clone().with_residual(5).is_err(),
            "wider than the output"
        );
        assert!(last.clone().with_residual(0).is_err());
        assert!(
            last.clone().with_floor(0.0).with_residual(4).is_err(),
            "after a ReLU"
        );
        let twice = last.clone().with_residual(4).unwrap().with_residual(4);
        assert!(twice.is_err());
        let first = new((InputOrder::PixelMajor, OutputOrder::ChannelMajor));
        assert!(first.with_residual(4).is_err(), "channels first");
        let fused = last.with_residual(2).unwrap();
        assert_eq!(fused.skip_shape().as_deref(), Some(&[1, 2, 2, 2][..]));
    }

    #[test]
    fn rejects_inconsistent_weights() {
        let new = |out: &[usize], weights: usize, bias: usize| {
            let order = (InputOrder::PixelMajor, OutputOrder::PixelMajor);
            let (w, b) = (vec![0.0; weights], vec![0.0; bias]);
            PointwiseConv::new(&[1, 2, 2, 3], out, [3, 4], order, &w, b)
        };
        assert!(new(&[1, 2, 2, 4], 12, 4).is_ok());
        assert!(new(&[1, 2, 2, 4], 11, 4).is_err());
        assert!(new(&[1, 2, 2, 4], 12, 3).is_err());
        assert!(new(&[1, 3, 2, 4], 12, 4).is_err(), "other pixels");
    }
}
