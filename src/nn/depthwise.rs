//! Depthwise 2-D convolution, channels last, as a tract op.
//!
//! tract 0.23.9 has vectorised depthwise kernels for ARM and WebAssembly
//! only; on x86 its depthwise convolutions run a generic loop at ~7-15
//! GFLOP/s, about 40% of the landmark models' time although they are 10% of
//! their multiply-adds. This op keeps blocks of 16-32 channels of four
//! neighbouring output pixels (64-128 of a pixel at an edge) in registers
//! across the whole window, with AVX2 or AVX-512 where the CPU has them
//! (checked at run time, so the binary runs on any x86-64), a row's last
//! channels in one masked block, and applies the ReLU/ReLU6 that follows,
//! folded in. It goes over a row a chunk of channels at a time, so the
//! chunk's weights stay in L1. For the models' 3 x 3 and 5 x 5 windows the
//! tile's shape is fixed at compile time, and each input column a kernel row
//! of the tile reads is loaded once for all the outputs it serves (AVX-512
//! at stride 1: eight outputs, ten columns, not 24 loads): 1.1-1.5x as fast
//! as loading it per output (1.4-1.5x at 112 x 112 x 24, 56 x 56 x 144 and
//! 28 x 28 x 240 on one thread).
//!
//! It sums as tract does, bias first, then the taps row by row, each product
//! and sum rounded on its own: its outputs are tract's to the bit (tested). A
//! fused multiply-add was 15% faster here but rounds differently, and on
//! MediaPipe's small hands, whose presence score sits at the threshold, that
//! flipped the detection on 4 of the 40 frames of one shared clip.

use std::ops::Range;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv_op::{self, Clamped, FixedShapeOp};
use super::parallel;
use super::simd::{self, Simd};

/// Where the window of one output pixel sits on the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Input height and width.
    pub input: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Padding before the first row and column (after is implied).
    pub pad_before: [usize; 2],
    /// Channels, in input and output alike.
    pub channels: usize,
}

impl Geometry {
    /// The kernel rows (or columns) whose input lies inside the image for an
    /// output row (or column) `o` along `axis`.
    pub(super) fn taps_inside(&self, axis: usize, o: usize) -> (isize, std::ops::Range<usize>) {
        let start = (o * self.stride[axis]) as isize - self.pad_before[axis] as isize;
        let first = (-start).max(0) as usize;
        let end = (self.input[axis] as isize - start).clamp(0, self.kernel[axis] as isize) as usize;
        (start, first.min(end)..end)
    }
}

#[cfg(test)]
impl Geometry {
    /// A `side` x `side` input under a `k` x `k` window moved by `stride`,
    /// with `pad` = [before, after] rows and columns of padding.
    pub fn square(side: usize, k: usize, stride: usize, pad: [usize; 2], channels: usize) -> Self {
        let out = (side + pad[0] + pad[1] - k) / stride + 1;
        Geometry {
            input: [side, side],
            output: [out, out],
            kernel: [k, k],
            stride: [stride, stride],
            pad_before: [pad[0], pad[0]],
            channels,
        }
    }
}

/// A depthwise convolution on `[1, H, W, C]` or `[H, W, C]` f32 tensors, with
/// constant weights and bias.
#[derive(Debug, Clone)]
pub struct ChannelsLastDepthwise {
    geometry: Geometry,
    /// Weights tap-major: `taps[(ky * kw + kx) * C + c]`.
    taps: Arc<simd::Aligned>,
    /// One per channel.
    bias: Arc<Vec<f32>>,
    /// The output shape (the input's rank).
    output_shape: TVec<usize>,
    /// Outputs are clamped to `[lo, hi]` (a fused ReLU or ReLU6; a NaN sum
    /// comes out as `lo`).
    clamp: [f32; 2],
}

/// Equal when they compute the same thing: same geometry, same weights bit
/// for bit (tract compares ops, e.g. to merge duplicates).
impl PartialEq for ChannelsLastDepthwise {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.geometry == other.geometry
            && self.output_shape == other.output_shape
            && bits(&self.taps) == bits(&other.taps)
            && bits(&self.bias) == bits(&other.bias)
            && bits(&self.clamp) == bits(&other.clamp)
    }
}

impl Eq for ChannelsLastDepthwise {}

impl ChannelsLastDepthwise {
    /// A convolution of `geometry` with `taps` (tap-major) and `bias`, whose
    /// tensors have `rank` axes (3: HWC, 4: NHWC with N = 1).
    pub fn new(
        geometry: Geometry,
        taps: Vec<f32>,
        bias: Vec<f32>,
        rank: usize,
    ) -> TractResult<Self> {
        let Geometry {
            kernel,
            channels,
            output,
            ..
        } = geometry;
        ensure!(
            taps.len() == kernel[0] * kernel[1] * channels,
            "kernel size"
        );
        ensure!(bias.len() == channels, "bias size");
        ensure!(
            kernel.iter().chain(&geometry.stride).all(|&k| k > 0),
            "empty window"
        );
        let output_shape = match rank {
            3 => tvec![output[0], output[1], channels],
            4 => tvec![1, output[0], output[1], channels],
            _ => bail!("depthwise convolution on rank {rank}"),
        };
        Ok(ChannelsLastDepthwise {
            geometry,
            taps: Arc::new(simd::aligned(&taps)),
            bias: Arc::new(bias),
            output_shape,
            clamp: [f32::NEG_INFINITY, f32::INFINITY],
        })
    }

    fn input_shape(&self) -> TVec<usize> {
        let [h, w] = self.geometry.input;
        let c = self.geometry.channels;
        match self.output_shape.len() {
            3 => tvec![h, w, c],
            _ => tvec![1, h, w, c],
        }
    }

    /// Convolves `input` (channels last) into `output`, in bands of output
    /// pixels (whole rows or not: a 7 x 7 image splits 24 + 25, not 3 + 4
    /// rows) on the free threads of the current rayon pool when it is big
    /// enough.
    pub fn convolve(&self, input: &[f32], output: &mut [f32]) {
        let g = &self.geometry;
        let [out_h, out_w] = g.output;
        let c = g.channels;
        assert!(input.len() >= g.input[0] * g.input[1] * c);
        assert!(output.len() >= out_h * out_w * c);
        let pixel_work = c * g.kernel[0] * g.kernel[1];
        parallel::for_each_band(
            &mut output[..out_h * out_w * c],
            c,
            pixel_work,
            |pixels, band| self.convolve_pixels(input, pixels, band),
        );
    }

    /// Output pixels `pixels` (in row order) into `band` (those pixels
    /// alone).
    fn convolve_pixels(&self, input: &[f32], pixels: Range<usize>, band: &mut [f32]) {
        if self.is_a_scale() {
            return self.scale_pixels(input, pixels, band);
        }
        // SAFETY (each call): the chosen level is one the CPU has, and the
        // function is compiled for no more than it.
        match Simd::chosen() {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { convolve_avx512(self, input, pixels, band) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { convolve_avx2(self, input, pixels, band) },
            _ => convolve_with::<PORTABLE>(self, input, pixels, band),
        }
    }
}

impl ChannelsLastDepthwise {
    /// Where each output pixel's window sits.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The input rows (those inside the image) that output rows `rows` read.
    pub fn input_rows(&self, rows: Range<usize>) -> Range<usize> {
        let g = &self.geometry;
        if rows.is_empty() {
            return 0..0;
        }
        let first = g.taps_inside(0, rows.start);
        let last = g.taps_inside(0, rows.end - 1);
        let start = (first.0 + first.1.start as isize).max(0) as usize;
        let end = (last.0 + last.1.end as isize).max(0) as usize;
        start.min(end)..end
    }

    /// Output rows `rows` into `band` (those rows alone), on this thread,
    /// from `input`, which holds the image's input rows from row `from` on,
    /// at least [`ChannelsLastDepthwise::input_rows`] of `rows`: the same
    /// sums as [`ChannelsLastDepthwise::convolve`]'s, on a window of the
    /// image whose rows outside it are padding or not read.
    pub fn convolve_rows_from(
        &self,
        input: &[f32],
        from: usize,
        rows: Range<usize>,
        band: &mut [f32],
    ) {
        let g = &self.geometry;
        let needed = self.input_rows(rows.clone());
        let row_len = g.input[1] * g.channels;
        assert!(from <= needed.start && input.len() >= (needed.end - from) * row_len);
        // The window's first row is `needed.start`: as many rows of padding
        // before it as put each output row's taps where they were.
        let start = (rows.start * g.stride[0]) as isize - g.pad_before[0] as isize;
        let window = ChannelsLastDepthwise {
            geometry: Geometry {
                input: [needed.len(), g.input[1]],
                output: [rows.len(), g.output[1]],
                pad_before: [(needed.start as isize - start) as usize, g.pad_before[1]],
                ..*g
            },
            ..self.clone()
        };
        let input = &input[(needed.start - from) * row_len..(needed.end - from) * row_len];
        window.convolve_pixels(input, 0..rows.len() * g.output[1], band);
    }

    /// True when the window is one pixel, unmoved and unpadded: each output
    /// is its input times a weight plus the bias, a scale per channel (the
    /// hand re-crop model has six).
    fn is_a_scale(&self) -> bool {
        let g = &self.geometry;
        g.kernel == [1, 1] && g.stride == [1, 1] && g.pad_before == [0, 0] && g.input == g.output
    }

    /// [`ChannelsLastDepthwise::convolve_pixels`] for a scale: a flat pass
    /// over the pixels' values, no window to walk (the window's per-pixel
    /// setup took 3-8 times as long as the sums), against the weights and
    /// biases repeated along a run of whole pixels long enough to vectorise
    /// over (pixel by pixel, eight channels, it did not: 44 us for 128 x 128
    /// x 8). The same roundings: the bias plus the product, then the clamp.
    fn scale_pixels(&self, input: &[f32], pixels: Range<usize>, band: &mut [f32]) {
        let c = self.geometry.channels;
        let input = &input[pixels.start * c..pixels.end * c];
        let run = c * SCALE_RUN.div_ceil(c);
        let repeated =
            |values: &[f32]| -> Vec<f32> { values.iter().copied().cycle().take(run).collect() };
        let (taps, bias) = (repeated(&self.taps), repeated(&self.bias));
        for (out, x) in band.chunks_mut(run).zip(input.chunks(run)) {
            scale_run(out, x, &taps, &bias, self.clamp);
        }
    }
}

/// Values a scale's weights and biases are repeated to (rounded up to whole
/// pixels).
const SCALE_RUN: usize = 256;

/// `out = clamp(bias + tap * x)`, value by value. The same sums at every
/// SIMD level; the wider ones only do more at once.
fn scale_run(out: &mut [f32], x: &[f32], taps: &[f32], bias: &[f32], clamp: [f32; 2]) {
    #[inline(always)]
    fn each(out: &mut [f32], x: &[f32], taps: &[f32], bias: &[f32], [lo, hi]: [f32; 2]) {
        for (((o, &x), &k), &b) in out.iter_mut().zip(x).zip(taps).zip(bias) {
            *o = madd(k, x, b).max(lo).min(hi);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(out: &mut [f32], x: &[f32], taps: &[f32], bias: &[f32], clamp: [f32; 2]) {
            each(out, x, taps, bias, clamp)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(out: &mut [f32], x: &[f32], taps: &[f32], bias: &[f32], clamp: [f32; 2]) {
            each(out, x, taps, bias, clamp)
        }
        // SAFETY: the chosen level is one this CPU has.
        match Simd::chosen() {
            Simd::Avx512 => return unsafe { avx512(out, x, taps, bias, clamp) },
            Simd::Avx2 => return unsafe { avx2(out, x, taps, bias, clamp) },
            Simd::Portable => {}
        }
    }
    each(out, x, taps, bias, clamp)
}

impl Clamped for ChannelsLastDepthwise {
    fn clamp_mut(&mut self) -> &mut [f32; 2] {
        &mut self.clamp
    }
}

impl FixedShapeOp for ChannelsLastDepthwise {
    fn input_shape(&self) -> TVec<usize> {
        ChannelsLastDepthwise::input_shape(self)
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        ChannelsLastDepthwise::convolve(self, input, output)
    }
}

impl Op for ChannelsLastDepthwise {
    fn name(&self) -> StaticName {
        "ChannelsLastDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.geometry)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

conv_op::fixed_shape_tract_op!(ChannelsLastDepthwise {
    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let [oh, ow] = self.geometry.output;
        let [kh, kw] = self.geometry.kernel;
        let fma = oh * ow * kh * kw * self.geometry.channels;
        Ok(tvec!((Cost::FMA(f32::datum_type()), fma.into())))
    }
});

/// Instruction sets for [`convolve_with`]: none beyond x86-64's baseline.
const PORTABLE: u8 = 0;
/// AVX2: blocks of 8 channels.
const AVX2: u8 = 1;
/// AVX-512: blocks of 16 channels (and AVX2 for a last 8).
const AVX512: u8 = 2;

/// [`convolve_with`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convolve_avx2(
    op: &ChannelsLastDepthwise,
    input: &[f32],
    pixels: Range<usize>,
    band: &mut [f32],
) {
    convolve_with::<AVX2>(op, input, pixels, band)
}

/// [`convolve_with`] compiled for AVX-512 (and AVX2).
///
/// # Safety
/// The CPU must have AVX-512F and AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn convolve_avx512(
    op: &ChannelsLastDepthwise,
    input: &[f32],
    pixels: Range<usize>,
    band: &mut [f32],
) {
    convolve_with::<AVX512>(op, input, pixels, band)
}

/// The convolution, with the instruction set `SIMD` (one of [`PORTABLE`],
/// [`AVX2`] inside [`convolve_avx2`], [`AVX512`] inside [`convolve_avx512`]).
/// Every set sums in the same order with the same roundings. Output pixels
/// `pixels` (in row order) go into `band`, which holds those pixels alone.
#[inline(always)]
fn convolve_with<const SIMD: u8>(
    op: &ChannelsLastDepthwise,
    input: &[f32],
    pixels: Range<usize>,
    band: &mut [f32],
) {
    let geometry = &op.geometry;
    let c = geometry.channels;
    let out_w = geometry.output[1];
    let first = pixels.start;
    if pixels.is_empty() || out_w == 0 {
        return;
    }
    let chunk = channel_chunk(geometry.kernel);
    // Wide tiles at stride 1 only: at stride 2 they ran 1.4x as long as four.
    let wide = SIMD >= AVX512 && geometry.stride[1] == 1;
    for oy in pixels.start / out_w..=(pixels.end - 1) / out_w {
        // The columns of this row inside the band.
        let row_start = oy * out_w;
        let ox_end = (pixels.end - row_start).min(out_w);
        let (y0, rows) = geometry.taps_inside(0, oy);
        let row = Row {
            geometry,
            taps: &op.taps,
            bias: &op.bias,
            clamp: op.clamp,
            input,
            y0,
            rows,
        };
        // A chunk of channels at a time over the whole row, so that its
        // weights stay in L1 from one pixel to the next (all of a 5 x 5
        // layer's, 115 KB at 1152 channels, came from L2 for every pixel).
        for c_start in (0..c).step_by(chunk) {
            let channels = c_start..(c_start + chunk).min(c);
            let mut ox = pixels.start.saturating_sub(row_start);
            while ox < ox_end {
                let out = &mut band[(row_start + ox - first) * c..];
                // Eight or four neighbours whose windows lie wholly inside
                // the image share each load; the rest go one at a time.
                let pixels = if wide && ox + WIDE <= ox_end && row.inside(ox, WIDE) {
                    WIDE
                } else if ox + PIXELS <= ox_end && row.inside(ox, PIXELS) {
                    PIXELS
                } else {
                    1
                };
                row.convolve_channels::<SIMD>(ox, pixels, channels.clone(), out);
                ox += pixels;
            }
        }
    }
}

/// Output pixels convolved together where their windows are inside.
const PIXELS: usize = 4;

/// Output pixels convolved together by the AVX-512 path (32 registers: the
/// sums of 8 pixels x 32 channels, and a row of a 5 x 5 kernel's taps).
const WIDE: usize = 8;

/// Weights of a chunk of channels meant to fit in L1 beside the input.
const CHUNK_WEIGHT_BYTES: usize = 16 << 10;

/// Channels convolved over a whole row before the next ones: as many as
/// [`CHUNK_WEIGHT_BYTES`] of weights hold, in whole blocks of 128 (or 32).
fn channel_chunk(kernel: [usize; 2]) -> usize {
    let per_channel = kernel[0] * kernel[1] * std::mem::size_of::<f32>();
    let fits = CHUNK_WEIGHT_BYTES / per_channel.max(1);
    if fits >= 128 {
        fits / 128 * 128
    } else {
        (fits / 32 * 32).max(32)
    }
}

/// One output row's view of the input: the kernel rows inside the image.
struct Row<'a> {
    geometry: &'a Geometry,
    taps: &'a [f32],
    bias: &'a [f32],
    clamp: [f32; 2],
    input: &'a [f32],
    y0: isize,
    rows: std::ops::Range<usize>,
}

impl Row<'_> {
    /// Channels `channels` of output columns `ox..ox + pixels` (1, or
    /// [`PIXELS`] whose windows are inside horizontally) into `out` (which
    /// starts at column `ox`), with the instruction set `SIMD`. Each call
    /// holds at least 8 sums when there are channels for them: with fewer,
    /// each sum's chain of additions, not the loads, set the time.
    #[inline(always)]
    fn convolve_channels<const SIMD: u8>(
        &self,
        ox: usize,
        pixels: usize,
        channels: Range<usize>,
        out: &mut [f32],
    ) {
        let c_end = channels.end;
        let mut c0 = channels.start;
        let cols = if pixels > 1 {
            0..self.geometry.kernel[1]
        } else {
            self.geometry.taps_inside(1, ox).1
        };
        // Only the SIMD paths take the column range.
        #[cfg(not(target_arch = "x86_64"))]
        let _ = &cols;
        // The tiles' kernel width and stride fixed at compile time where the
        // models have them (their columns then loaded once, not per output);
        // for AVX2 (16 registers) at 3 x 3, stride 1 alone: its 5 x 5 tiles
        // ran no faster, its stride-2 ones 1.2x as long.
        #[cfg(target_arch = "x86_64")]
        macro_rules! by_window {
            ($tiles:ident, $method:ident, $lanes:literal, $p:ident) => {
                match (self.geometry.kernel[1], self.geometry.stride[1]) {
                    (3, 1) => $tiles!($method, $lanes, $p, 3, 1),
                    (3, 2) if SIMD >= AVX512 => $tiles!($method, $lanes, $p, 3, 2),
                    (5, 1) if SIMD >= AVX512 => $tiles!($method, $lanes, $p, 5, 1),
                    (5, 2) if SIMD >= AVX512 => $tiles!($method, $lanes, $p, 5, 2),
                    _ => $tiles!($method, $lanes, $p, 0, 1),
                }
            };
        }
        // Tiles of `$p` pixels: two vectors of `$lanes` channels at a time,
        // then the rest in one or two masked.
        #[cfg(target_arch = "x86_64")]
        macro_rules! tiles {
            ($method:ident, $lanes:literal, $p:ident, $kw:literal, $s:literal) => {{
                while c0 + 2 * $lanes <= c_end {
                    self.$method::<$p, 2, false, $kw, $s>(ox, cols.clone(), c0, 2 * $lanes, out);
                    c0 += 2 * $lanes;
                }
                match c_end - c0 {
                    0 => {}
                    rest @ 1..=$lanes => {
                        self.$method::<$p, 1, true, $kw, $s>(ox, cols.clone(), c0, rest, out)
                    }
                    rest => self.$method::<$p, 2, true, $kw, $s>(ox, cols.clone(), c0, rest, out),
                }
            }};
        }
        // SAFETY (each call below): SIMD is AVX512 only inside
        // `convolve_avx512`, AVX2 or more only inside a function compiled for
        // AVX2. A masked call's channels past `c_end` are neither read nor
        // written. Each level does all the channels: the plain loops below
        // are for a CPU without AVX2.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            if SIMD >= AVX512 && pixels == WIDE {
                by_window!(tiles, pixels_avx512, 16, WIDE);
                c0 = c_end;
            } else if SIMD >= AVX512 && pixels == PIXELS {
                by_window!(tiles, pixels_avx512, 16, PIXELS);
                c0 = c_end;
            } else if SIMD >= AVX512 {
                while c0 + 128 <= c_end {
                    self.pixels_avx512::<1, 8, false, 0, 1>(ox, cols.clone(), c0, 128, out);
                    c0 += 128;
                }
                match c_end - c0 {
                    0 => {}
                    rest @ 1..=16 => {
                        self.pixels_avx512::<1, 1, true, 0, 1>(ox, cols.clone(), c0, rest, out)
                    }
                    rest @ 17..=32 => {
                        self.pixels_avx512::<1, 2, true, 0, 1>(ox, cols.clone(), c0, rest, out)
                    }
                    rest @ 33..=64 => {
                        self.pixels_avx512::<1, 4, true, 0, 1>(ox, cols.clone(), c0, rest, out)
                    }
                    rest => self.pixels_avx512::<1, 8, true, 0, 1>(ox, cols.clone(), c0, rest, out),
                }
                c0 = c_end;
            } else if SIMD >= AVX2 && pixels == PIXELS {
                by_window!(tiles, pixels_avx2, 8, PIXELS);
                c0 = c_end;
            } else if SIMD >= AVX2 {
                while c0 + 64 <= c_end {
                    self.pixels_avx2::<1, 8, false, 0, 1>(ox, cols.clone(), c0, 64, out);
                    c0 += 64;
                }
                match c_end - c0 {
                    0 => {}
                    rest @ 1..=8 => {
                        self.pixels_avx2::<1, 1, true, 0, 1>(ox, cols.clone(), c0, rest, out)
                    }
                    rest @ 9..=16 => {
                        self.pixels_avx2::<1, 2, true, 0, 1>(ox, cols.clone(), c0, rest, out)
                    }
                    rest @ 17..=32 => {
                        self.pixels_avx2::<1, 4, true, 0, 1>(ox, cols.clone(), c0, rest, out)
                    }
                    rest => self.pixels_avx2::<1, 8, true, 0, 1>(ox, cols.clone(), c0, rest, out),
                }
                c0 = c_end;
            }
        }
        if pixels == PIXELS {
            while c0 + 16 <= c_end {
                self.pixels::<PIXELS, 16>(ox, c0, out);
                c0 += 16;
            }
            while c0 + 8 <= c_end {
                self.pixels::<PIXELS, 8>(ox, c0, out);
                c0 += 8;
            }
        } else {
            while c0 + 16 <= c_end {
                self.pixels::<1, 16>(ox, c0, out);
                c0 += 16;
            }
        }
        let c = self.geometry.channels;
        for p in 0..pixels {
            self.pixel_tail(ox + p, c0..c_end, &mut out[p * c..]);
        }
    }
}

/// The SIMD body of [`Row::pixels`], for one instruction set: sums of `V`
/// vectors of channels for `P` output columns held in registers over the
/// whole window (AVX2: 8 lanes; AVX-512: 16). `MASKED`: only the first
/// `valid` of those channels exist (the rest of a row's last block), and
/// only they are read and written. `KW` and `S`: the kernel's width and
/// horizontal stride, when fixed at compile time for a tile whose windows
/// are inside (0: the window's columns `cols` known at run time).
macro_rules! simd_pixels {
    ($name:ident, $feature:literal, $lanes:literal, $setzero:ident, $load:ident,
     $store:ident, $mask_of:path, $load_masked:path, $store_masked:path,
     $add:ident, $mul:ident, $min:ident, $max:ident, $set1:ident) => {
        /// [`Row::pixels`] with $feature: `V` vectors of $lanes channels for `P`
        /// columns whose windows are inside horizontally, the sums held in
        /// registers over the whole window.
        ///
        /// # Safety
        /// The CPU must have $feature.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[inline]
        unsafe fn $name<
            const P: usize,
            const V: usize,
            const MASKED: bool,
            const KW: usize,
            const S: usize,
        >(
            &self,
            ox: usize,
            cols: std::ops::Range<usize>,
            c0: usize,
            valid: usize,
            out: &mut [f32],
        ) {
            use std::arch::x86_64::*;
            let (g, bias) = (self.geometry, self.bias);
            let (c, kw) = (g.channels, g.kernel[1]);
            assert!(valid <= $lanes * V && (MASKED || valid == $lanes * V));
            assert!(KW == 0 || (cols == (0..KW) && kw == KW && g.stride[1] == S));
            let (Some(first_row), Some(last_row), Some(first_col), Some(last_col)) = (
                self.rows.clone().next(),
                self.rows.clone().last(),
                cols.clone().next(),
                cols.clone().last(),
            ) else {
                // No kernel position inside the image: the sums are the bias.
                let [lo, hi] = self.clamp;
                for p in 0..P {
                    let dst = &mut out[p * c + c0..p * c + c0 + valid];
                    for (d, &b) in dst.iter_mut().zip(&bias[c0..]) {
                        *d = b.max(lo).min(hi);
                    }
                }
                return;
            };
            // Everything read and written is checked here once; the loop below
            // stays inside these bounds (masked lanes touch no memory).
            let base = self.at(first_row, ox, first_col) + c0;
            let last_read = self.at(last_row, ox + P - 1, last_col) + c0 + valid;
            let last_tap = (last_row * kw + last_col) * c + c0 + valid;
            assert!(last_read <= self.input.len() && last_tap <= self.taps.len());
            assert!((P - 1) * c + c0 + valid <= out.len() && c0 + valid <= bias.len());
            let row_step = g.input[1] * c;
            let pixel_step = g.stride[1] * c;
            let masks: [_; V] =
                std::array::from_fn(|v| $mask_of(valid.saturating_sub($lanes * v).min($lanes)));
            // SAFETY: every offset below is within the bounds asserted above.
            unsafe {
                let load = |at: *const f32, v: usize| {
                    if MASKED {
                        $load_masked(at, masks[v])
                    } else {
                        $load(at)
                    }
                };
                let mut acc = [[$setzero(); V]; P];
                for a in &mut acc {
                    for (v, a) in a.iter_mut().enumerate() {
                        *a = load(bias.as_ptr().add(c0 + $lanes * v), v);
                    }
                }
                for (r, ky) in self.rows.clone().enumerate() {
                    let x_row = self.input.as_ptr().add(base + r * row_step);
                    let k_row = self.taps.as_ptr().add((ky * kw + first_col) * c + c0);
                    if KW > 0 {
                        // The row's input columns loaded once each, for every
                        // output whose window holds them (stride 1: four
                        // outputs, six columns, not twelve loads); each
                        // output still sums its taps left to right.
                        let k: [[_; V]; KW] = std::array::from_fn(|kx| {
                            std::array::from_fn(|v| load(k_row.add(kx * c + $lanes * v), v))
                        });
                        for j in 0..(P - 1) * S + KW {
                            let x: [_; V] =
                                std::array::from_fn(|v| load(x_row.add(j * c + $lanes * v), v));
                            for (p, a) in acc.iter_mut().enumerate() {
                                if j >= S * p && j - S * p < KW {
                                    let k = &k[j - S * p];
                                    for v in 0..V {
                                        a[v] = $add(a[v], $mul(k[v], x[v]));
                                    }
                                }
                            }
                        }
                        continue;
                    }
                    for i in 0..cols.len() {
                        let mut k = [$setzero(); V];
                        for (v, k) in k.iter_mut().enumerate() {
                            *k = load(k_row.add(i * c + $lanes * v), v);
                        }
                        for (p, a) in acc.iter_mut().enumerate() {
                            let x = x_row.add(p * pixel_step + i * c);
                            for v in 0..V {
                                let x = load(x.add($lanes * v), v);
                                a[v] = $add(a[v], $mul(k[v], x));
                            }
                        }
                    }
                }
                let (lo, hi) = ($set1(self.clamp[0]), $set1(self.clamp[1]));
                for (p, a) in acc.iter().enumerate() {
                    for (v, a) in a.iter().enumerate() {
                        // max(a, lo) gives lo for a NaN sum, as f32::max does.
                        let a = $min($max(*a, lo), hi);
                        let to = out.as_mut_ptr().add(p * c + c0 + $lanes * v);
                        if MASKED {
                            $store_masked(to, masks[v], a);
                        } else {
                            $store(to, a);
                        }
                    }
                }
            }
        }
    };
}

impl Row<'_> {
    /// Whether the windows of output columns `ox..ox + n` are wholly inside
    /// the image horizontally.
    fn inside(&self, ox: usize, n: usize) -> bool {
        let g = self.geometry;
        let (first, cols) = g.taps_inside(1, ox);
        let (_, last_cols) = g.taps_inside(1, ox + n - 1);
        first >= 0 && cols.len() == g.kernel[1] && last_cols.len() == g.kernel[1]
    }

    /// Input offset of kernel position (ky, kx) for output column `ox`.
    fn at(&self, ky: usize, ox: usize, kx: usize) -> usize {
        let g = self.geometry;
        let (x0, _) = g.taps_inside(1, ox);
        let y = (self.y0 + ky as isize) as usize;
        (y * g.input[1] + (x0 + kx as isize) as usize) * g.channels
    }

    /// Channels `c0..c0 + B` of output columns `ox..ox + P` (windows inside
    /// horizontally when `P > 1`) into `out` (which starts at column `ox`).
    #[inline(always)]
    fn pixels<const P: usize, const B: usize>(&self, ox: usize, c0: usize, out: &mut [f32]) {
        let (g, bias) = (self.geometry, self.bias);
        let c = g.channels;
        let kw = g.kernel[1];
        let cols = if P == 1 {
            g.taps_inside(1, ox).1
        } else {
            0..kw
        };
        let mut acc = [[0.0f32; B]; P];
        for a in &mut acc {
            a.copy_from_slice(&bias[c0..c0 + B]);
        }
        for ky in self.rows.clone() {
            for kx in cols.clone() {
                let k = &self.taps[(ky * kw + kx) * c + c0..][..B];
                for (p, a) in acc.iter_mut().enumerate() {
                    let x = &self.input[self.at(ky, ox + p, kx) + c0..][..B];
                    for j in 0..B {
                        a[j] = madd(k[j], x[j], a[j]);
                    }
                }
            }
        }
        let [lo, hi] = self.clamp;
        for (p, a) in acc.iter().enumerate() {
            let dst = &mut out[p * c + c0..p * c + c0 + B];
            for (d, &a) in dst.iter_mut().zip(a) {
                *d = a.max(lo).min(hi);
            }
        }
    }

    simd_pixels!(
        pixels_avx2,
        "avx2",
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        simd::half_mask,
        simd::load8_masked,
        simd::store8_masked,
        _mm256_add_ps,
        _mm256_mul_ps,
        _mm256_min_ps,
        _mm256_max_ps,
        _mm256_set1_ps
    );
    simd_pixels!(
        pixels_avx512,
        "avx512f",
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        simd::lane_mask,
        simd::load16_masked,
        simd::store16_masked,
        _mm512_add_ps,
        _mm512_mul_ps,
        _mm512_min_ps,
        _mm512_max_ps,
        _mm512_set1_ps
    );

    /// Channels `channels` of output column `ox` into `out` (which starts
    /// there), one at a time.
    #[inline(always)]
    fn pixel_tail(&self, ox: usize, channels: Range<usize>, out: &mut [f32]) {
        if channels.is_empty() {
            return;
        }
        let g = self.geometry;
        let c = g.channels;
        let kw = g.kernel[1];
        let tail = &mut out[channels.clone()];
        tail.copy_from_slice(&self.bias[channels.clone()]);
        for ky in self.rows.clone() {
            for kx in g.taps_inside(1, ox).1 {
                let x = &self.input[self.at(ky, ox, kx) + channels.start..][..tail.len()];
                let k = &self.taps[(ky * kw + kx) * c + channels.start..][..tail.len()];
                for ((o, &k), &x) in tail.iter_mut().zip(k).zip(x) {
                    *o = madd(k, x, *o);
                }
            }
        }
        let [lo, hi] = self.clamp;
        for o in tail {
            *o = o.max(lo).min(hi);
        }
    }
}

/// `acc + k * x`, rounded after the product and after the sum, as tract
/// does (no fused multiply-add: see the module's notes).
#[inline(always)]
fn madd(k: f32, x: f32, acc: f32) -> f32 {
    acc + k * x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv_op::test_values as values;

    /// The textbook sum, in f64, with zero padding.
    fn reference(g: &Geometry, taps: &[f32], bias: &[f32], input: &[f32]) -> Vec<f32> {
        let c = g.channels;
        let mut out = vec![0.0; g.output[0] * g.output[1] * c];
        for oy in 0..g.output[0] {
            for ox in 0..g.output[1] {
                for ch in 0..c {
                    let mut sum = f64::from(bias[ch]);
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let iy = (oy * g.stride[0] + ky) as isize - g.pad_before[0] as isize;
                            let ix = (ox * g.stride[1] + kx) as isize - g.pad_before[1] as isize;
                            if iy < 0 || ix < 0 {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            if iy >= g.input[0] || ix >= g.input[1] {
                                continue;
                            }
                            let k = taps[(ky * g.kernel[1] + kx) * c + ch];
                            let x = input[(iy * g.input[1] + ix) * c + ch];
                            sum += f64::from(k) * f64::from(x);
                        }
                    }
                    out[(oy * g.output[1] + ox) * c + ch] = sum as f32;
                }
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn matches_the_textbook_sum(
            (h, w) in (1usize..12, 1usize..12),
            k in 1usize..6,
            stride in 1usize..3,
            pad in 0usize..3,
            // Up to a block of 32 and more; past 128, several chunks (5 x 5).
            channels in proptest::prop_oneof![1usize..80, 120usize..300],
            clamped: bool,
        ) {
            let pad = pad.min(k - 1);
            let out = |n: usize| (n + 2 * pad).saturating_sub(k) / stride + 1;
            proptest::prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
            let g = Geometry {
                input: [h, w],
                output: [out(h), out(w)],
                kernel: [k, k],
                stride: [stride, stride],
                pad_before: [pad, pad],
                channels,
            };
            let taps = values(k * k * channels, 1);
            let bias = values(channels, 2);
            let input = values(h * w * channels, 3);
            let mut op = ChannelsLastDepthwise::new(g, taps.clone(), bias.clone(), 4).unwrap();
            let mut want = reference(&g, &taps, &bias, &input);
            if clamped {
                // Bounds that cut both ends of these sums.
                op = op.with_floor(-0.5).with_ceiling(0.5);
                want.iter_mut().for_each(|v| *v = v.clamp(-0.5, 0.5));
            }
            let mut got = vec![f32::NAN; g.output[0] * g.output[1] * channels];
            op.convolve(&input, &mut got);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                proptest::prop_assert!((a - b).abs() <= 1e-5 * (k * k) as f32, "{i}: {a} vs {b}");
            }
            let mut portable = vec![f32::NAN; got.len()];
            convolve_with::<PORTABLE>(&op, &input, 0..g.output[0] * g.output[1], &mut portable);
            proptest::prop_assert_eq!(&portable, &got, "the same sums in the same order");
            // `convolve` takes the widest set the CPU has; AVX2 on its own too.
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut avx2 = vec![f32::NAN; got.len()];
                // SAFETY: the CPU has AVX2.
                unsafe { convolve_avx2(&op, &input, 0..g.output[0] * g.output[1], &mut avx2) };
                proptest::prop_assert_eq!(&avx2, &got);
            }
        }
    }

    #[test]
    fn gives_tracts_own_depthwise_results_to_the_bit() {
        use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
        use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
        use tract_onnx::tract_core::ops::nn::DataFormat;
        // The last three: a one-pixel window, a scale per channel (its
        // weights repeated to a run of 256 values, 264 of 24 channels, one
        // pixel of 300; the re-crop model's eight channels).
        for (side, k, stride, channels) in [
            (9, 3, 1, 40),
            (10, 5, 2, 24),
            (7, 5, 1, 72),
            (8, 3, 1, 28),
            (9, 5, 1, 300),
            // Rows with tiles of 8 pixels (the AVX-512 path's at stride 1)
            // and of 4, at 3 x 3 and 5 x 5.
            (21, 3, 1, 24),
            (19, 5, 1, 40),
            (21, 3, 2, 64),
            (6, 1, 1, 24),
            (5, 1, 1, 300),
            (33, 1, 1, 8),
        ] {
            let pad = k / 2;
            let taps = values(k * k * channels, 4);
            let bias = values(channels, 5);
            let input = values(side * side * channels, 6);
            // tract: an NHWC depthwise Conv, optimised (lowered to its own op).
            let oihw = tract_ndarray::Array4::from_shape_fn((channels, 1, k, k), |(c, _, y, x)| {
                taps[(y * k + x) * channels + c]
            });
            let conv = Conv {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NHWC,
                    kernel_shape: tvec![k, k],
                    padding: PaddingSpec::Explicit(tvec![pad, pad], tvec![pad, pad]),
                    dilations: None,
                    strides: Some(tvec![stride, stride]),
                    input_channels: channels,
                    output_channels: channels,
                },
                kernel_fmt: KernelFormat::OIHW,
                group: channels,
                q_params: None,
            };
            let shape = [1, side, side, channels];
            let (their_shape, theirs) =
                conv_op::tracts_convolution(conv, &shape, oihw.into_tensor(), &bias, &input);
            // ours
            let g = Geometry::square(side, k, stride, [pad, pad], channels);
            let out = g.output[0];
            let op = ChannelsLastDepthwise::new(g, taps, bias, 4).unwrap();
            let mut ours = vec![f32::NAN; out * out * channels];
            op.convolve(&input, &mut ours);
            assert_eq!(&*their_shape, &[1, out, out, channels]);
            assert!(ours == theirs, "{side}x{side}x{channels} k{k} s{stride}");
        }
    }

    #[test]
    fn bands_of_pixels_on_several_threads_give_the_same_bits() {
        let three_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // Enough work for three bands; bands that end inside a row (400,
        // 256 and 49 pixels in three), and a row shorter than the bands.
        for (side, k, stride, channels) in [(20, 3, 1, 40), (31, 5, 2, 48), (7, 5, 1, 1152)] {
            let pad = k / 2;
            let g = Geometry::square(side, k, stride, [pad, pad], channels);
            let out = g.output[0];
            let op =
                ChannelsLastDepthwise::new(g, values(k * k * channels, 1), values(channels, 2), 3)
                    .unwrap()
                    .with_floor(0.0);
            let input = values(side * side * channels, 3);
            let mut alone = vec![f32::NAN; out * out * channels];
            op.convolve(&input, &mut alone);
            let mut in_bands = vec![f32::NAN; alone.len()];
            let bands = three_threads.install(|| {
                parallel::with_helper(|| op.convolve(&input, &mut in_bands));
                parallel::part_count(out * out * channels * k * k)
            });
            assert_eq!(bands, 3, "{side}x{side}x{channels}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&in_bands),
                bits(&alone),
                "{side}x{side}x{channels} k{k}"
            );
        }
    }

    #[test]
    fn rejects_inconsistent_weights() {
        let g = Geometry {
            input: [4, 4],
            output: [4, 4],
            kernel: [3, 3],
            stride: [1, 1],
            pad_before: [1, 1],
            channels: 2,
        };
        assert!(ChannelsLastDepthwise::new(g, vec![0.0; 17], vec![0.0; 2], 4).is_err());
        assert!(ChannelsLastDepthwise::new(g, vec![0.0; 18], vec![0.0; 3], 4).is_err());
        assert!(ChannelsLastDepthwise::new(g, vec![0.0; 18], vec![0.0; 2], 5).is_err());
    }
}
