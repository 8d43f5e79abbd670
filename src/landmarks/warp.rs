//! Image to tensor: samples a rotated ROI of an RGB image into a float NHWC
//! tensor (bilinear, pixel centres, MediaPipe's ImageToTensor conventions),
//! plus the letterbox used by the pose detector and its removal.

use image::RgbImage;

use super::roi::Roi;
use crate::nn::parallel;
use crate::nn::simd::Simd;

/// What samples outside the image become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// Pixel value 0 (the low end of the output range).
    Zero,
    /// The nearest edge pixel.
    Replicate,
}

/// Letterbox padding as fractions of the square tensor: (left/right, top/bottom).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Padding {
    /// Fraction padded on each of left and right.
    pub x: f32,
    /// Fraction padded on each of top and bottom.
    pub y: f32,
}

/// Whole-image ROI squared on its long side, and the padding it introduces.
pub fn letterbox_roi(width: u32, height: u32) -> (Roi, Padding) {
    let (w, h) = (width as f32, height as f32);
    let long = w.max(h);
    let roi = Roi {
        x: 0.5,
        y: 0.5,
        w: long / w,
        h: long / h,
        rotation: 0.0,
    };
    let pad = Padding {
        x: (1.0 - w / long) / 2.0,
        y: (1.0 - h / long) / 2.0,
    };
    (roi, pad)
}

/// Maps a point from letterboxed tensor coordinates back to the image's.
pub fn remove_letterbox(p: [f32; 2], pad: Padding) -> [f32; 2] {
    [
        (p[0] - pad.x) / (1.0 - 2.0 * pad.x),
        (p[1] - pad.y) / (1.0 - 2.0 * pad.y),
    ]
}

/// Samples `roi` of `image` into `out` (len `size * size * 3`, NHWC) with
/// values mapped from [0, 255] to [`lo`, `hi`].
pub fn warp_roi(
    image: &RgbImage,
    roi: &Roi,
    size: usize,
    border: Border,
    lo: f32,
    hi: f32,
    out: &mut [f32],
) {
    warp_roi_with(Simd::chosen(), image, roi, size, border, lo, hi, out);
}

/// A landmark model's crop of `roi` into `out`: `size` x `size` pixels,
/// values 0 to 1, edges replicated (ImageToTensor's default border, which
/// MediaPipe's landmark and re-crop graphs keep).
pub fn landmark_crop(image: &RgbImage, roi: &Roi, size: usize, out: &mut [f32]) {
    warp_roi(image, roi, size, Border::Replicate, 0.0, 1.0, out);
}

/// [`warp_roi`] at SIMD level `simd` (one the CPU has).
#[allow(clippy::too_many_arguments)]
fn warp_roi_with(
    simd: Simd,
    image: &RgbImage,
    roi: &Roi,
    size: usize,
    border: Border,
    lo: f32,
    hi: f32,
    out: &mut [f32],
) {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (iw, ih) = (image.width() as i64, image.height() as i64);
    let gain = (hi - lo) / 255.0;
    let (sin, cos) = roi.rotation.sin_cos();
    let (rw, rh) = (roi.w * w, roi.h * h);
    let source = Source {
        raw: image.as_raw(),
        iw,
        ih,
        stride: image.width() as usize * 3,
        border,
        lo,
        gain,
    };
    // MediaPipe's CPU ImageToTensor maps the ROI's corners onto the tensor's
    // corners with OpenCV's warpPerspective, whose pixel centres sit on
    // integer coordinates: tensor pixel i samples the ROI at i / size (not
    // (i + 0.5) / size) and ROI coordinates are read as pixel-centre ones.
    // OpenCV also rounds each sample position to 1/32 pixel, weighs the four
    // neighbours in fixed point and rounds the crop to 8 bits before it is
    // scaled to floats. The models were trained on crops made this way, and
    // near a decision threshold (is there a hand?) these details show, so we
    // sample alike.
    //
    // A sample's position is (x0 + px cos - py sin, y0 + px sin + py cos);
    // the column terms are computed once per column and the row terms once
    // per row, in the same order of operations, so every position is the
    // same float as when computed whole.
    if size == 0 {
        return;
    }
    let offset = |i: usize| i as f32 / size as f32 - 0.5;
    let (columns_x, columns_y): (Vec<f32>, Vec<f32>) = (0..size)
        .map(|ox| {
            let px = offset(ox) * rw;
            (roi.x * w + px * cos, roi.y * h + px * sin)
        })
        .unzip();
    // Output pixels the SIMD sampler takes at once, if it can.
    #[cfg(target_arch = "x86_64")]
    let simd_lanes = match simd {
        Simd::Avx512 if source.fits_simd() => Some(LANES),
        Simd::Avx2 if source.fits_simd() => Some(LANES / 2),
        _ => None,
    };
    // Bands of rows on the landmark threads that are free.
    let row_len = size * 3;
    let crop = (size * row_len).min(out.len());
    parallel::for_each_band(
        &mut out[..crop],
        row_len,
        row_len * SAMPLE_WORK,
        |rows, band| {
            let first = rows.start;
            for (i, row) in band.chunks_exact_mut(row_len).enumerate() {
                let py = offset(first + i) * rh;
                let (row_sin, row_cos) = (py * sin, py * cos);
                let row_terms = (row_sin, row_cos);
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if let Some(lanes) = simd_lanes {
                    while done + lanes <= size {
                        let columns = (&columns_x[done..], &columns_y[done..]);
                        let dst = &mut row[done * 3..(done + lanes) * 3];
                        // SAFETY: the CPU has the chosen level; `lanes`
                        // columns and pixels of `dst` are there.
                        let sampled = unsafe {
                            if lanes == LANES {
                                source.sample16_avx512(columns, row_terms, dst)
                            } else {
                                source.sample8_avx2(columns, row_terms, dst)
                            }
                        };
                        for lane in (0..lanes).filter(|l| sampled & (1 << l) == 0) {
                            let (sx, sy) = (columns_x[done + lane], columns_y[done + lane]);
                            let dst = &mut dst[lane * 3..lane * 3 + 3];
                            source.sample(sx - row_sin, sy + row_cos, dst);
                        }
                        done += lanes;
                    }
                }
                let rest = columns_x[done..].iter().zip(&columns_y[done..]);
                for (dst, (&col_x, &col_y)) in row[done * 3..].chunks_exact_mut(3).zip(rest) {
                    source.sample(col_x - row_sin, col_y + row_cos, dst);
                }
            }
        },
    );
}

/// Output pixels the AVX-512 sampler takes at once.
const LANES: usize = 16;

/// The image a crop samples, and how.
struct Source<'a> {
    raw: &'a [u8],
    iw: i64,
    ih: i64,
    /// Bytes a row.
    stride: usize,
    border: Border,
    /// An 8-bit sample `v` becomes `lo + gain * v` (see [`Source::scaled`]).
    lo: f32,
    gain: f32,
}

impl Source<'_> {
    /// The output value of the 8-bit sample `v`: the product, then the sum
    /// (the SIMD paths round alike).
    fn scaled(&self, v: usize) -> f32 {
        self.lo + self.gain * v as f32
    }

    /// One output pixel's three values, sampled at (`sx`, `sy`).
    fn sample(&self, sx: f32, sy: f32, dst: &mut [f32]) {
        let (iw, ih) = (self.iw, self.ih);
        let (x, fx) = subpixel(sx);
        let (y, fy) = subpixel(sy);
        let weights = [
            (SUBPIXELS - fx) * (SUBPIXELS - fy),
            fx * (SUBPIXELS - fy),
            (SUBPIXELS - fx) * fy,
            fx * fy,
        ];
        let inside = x >= 0 && y >= 0 && x + 1 < iw && y + 1 < ih;
        if inside {
            // Fast path: all four neighbours are in the image.
            let top = ((y * iw + x) * 3) as usize;
            let (Some(upper), Some(lower)) = (
                self.raw.get(top..top + 6),
                self.raw.get(top + self.stride..top + self.stride + 6),
            ) else {
                return;
            };
            for (c, o) in dst.iter_mut().enumerate() {
                let sum = i64::from(upper[c]) * weights[0]
                    + i64::from(upper[c + 3]) * weights[1]
                    + i64::from(lower[c]) * weights[2]
                    + i64::from(lower[c + 3]) * weights[3];
                *o = self.scaled(fixed_point_to_u8(sum));
            }
        } else if self.border == Border::Zero && (x + 1 < 0 || y + 1 < 0 || x >= iw || y >= ih) {
            // No neighbour in the image (much of a crop that reaches past the
            // frame's edge): a zero sum.
            dst.fill(self.scaled(fixed_point_to_u8(0)));
        } else {
            for (c, o) in dst.iter_mut().enumerate() {
                let sum = self.pixel(x, y, c) * weights[0]
                    + self.pixel(x + 1, y, c) * weights[1]
                    + self.pixel(x, y + 1, c) * weights[2]
                    + self.pixel(x + 1, y + 1, c) * weights[3];
                *o = self.scaled(fixed_point_to_u8(sum));
            }
        }
    }

    /// Channel `c` of pixel (`x`, `y`), the border's value outside.
    fn pixel(&self, x: i64, y: i64, c: usize) -> i64 {
        let (iw, ih) = (self.iw, self.ih);
        let (x, y) = match self.border {
            Border::Replicate => (x.clamp(0, iw - 1), y.clamp(0, ih - 1)),
            Border::Zero if x < 0 || y < 0 || x >= iw || y >= ih => return 0,
            Border::Zero => (x, y),
        };
        i64::from(self.raw[((y * iw + x) * 3) as usize + c])
    }

    /// True when the SIMD samplers take the columns past the image's edges
    /// too. With a replicate border, both neighbours of such a position are
    /// the edge pixel, and the integer sum is the same when the position is
    /// first held to the image (0 to iw - 1 pixels) and then read from the
    /// pair (x, x + 1), x at most iw - 2: at the left edge the weight all
    /// falls on x = 0, at the right edge on x + 1 = iw - 1. It needs two
    /// columns.
    fn clamps_columns(&self) -> bool {
        self.border == Border::Replicate && self.iw >= 2
    }

    /// True when every byte offset fits the 32-bit lanes of the SIMD path.
    fn fits_simd(&self) -> bool {
        i32::try_from(self.raw.len()).is_ok()
    }

    /// 16 output pixels at once, positions (`columns` - `row_terms`.0,
    /// `columns` + `row_terms`.1): the same integer sums as
    /// [`Source::sample`]: with a replicate border, for every pixel (rows
    /// and columns past the edge clamped, see [`Source::clamps_columns`]);
    /// with a zero border, for the pixels whose two columns are in the image
    /// (rows past the edge zero) and those with no neighbour in it. Returns
    /// which of the 16 it wrote (bit per pixel); the caller samples the
    /// others one by one.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `columns` must hold 16 values each and
    /// `dst` 16 pixels (48 values); [`Source::fits_simd`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn sample16_avx512(
        &self,
        columns: (&[f32], &[f32]),
        row_terms: (f32, f32),
        dst: &mut [f32],
    ) -> u16 {
        use std::arch::x86_64::*;
        debug_assert!(
            columns.0.len() >= LANES && columns.1.len() >= LANES && dst.len() >= 3 * LANES
        );
        // SAFETY: the loads read the 16 columns the caller holds; each row's
        // gather is masked to the pixels whose columns x and x + 1 and that
        // row are in the image (held there, with a replicate border), so its
        // 4-byte reads at (row, x) + 0 and + 2 end at or before the last byte
        // of pixel (row, x + 1).
        unsafe {
            let sx = _mm512_sub_ps(
                _mm512_loadu_ps(columns.0.as_ptr()),
                _mm512_set1_ps(row_terms.0),
            );
            let sy = _mm512_add_ps(
                _mm512_loadu_ps(columns.1.as_ptr()),
                _mm512_set1_ps(row_terms.1),
            );
            // Positions in 1/32 pixel, rounded as `subpixel` does (the
            // conversion rounds to nearest, ties to even; one out of i32's
            // range becomes i32::MIN, outside the image).
            let in_32ths = |v: __m512| {
                let scale = _mm512_set1_pd(SUBPIXELS as f64);
                let low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
                let high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(v),
                )));
                let low = _mm512_cvtpd_epi32(_mm512_mul_pd(low, scale));
                let high = _mm512_cvtpd_epi32(_mm512_mul_pd(high, scale));
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
            };
            let (qx, qy) = (in_32ths(sx), in_32ths(sy));
            let zero = _mm512_setzero_si512();
            let one = _mm512_set1_epi32(1);
            let (iw, ih) = (
                _mm512_set1_epi32(self.iw as i32),
                _mm512_set1_epi32(self.ih as i32),
            );
            let clamps_columns = self.clamps_columns();
            let fraction = _mm512_set1_epi32(SUBPIXELS as i32 - 1);
            let (x, fx) = if clamps_columns {
                // See `clamps_columns`: the position held to the image's
                // columns, read from the pair (x, x + 1) with x <= iw - 2.
                let last = _mm512_set1_epi32((self.iw as i32 - 1) * SUBPIXELS as i32);
                let qx = _mm512_min_epi32(_mm512_max_epi32(qx, zero), last);
                let x = _mm512_min_epi32(
                    _mm512_srai_epi32::<5>(qx),
                    _mm512_sub_epi32(iw, _mm512_set1_epi32(2)),
                );
                (x, _mm512_sub_epi32(qx, _mm512_slli_epi32::<5>(x)))
            } else {
                (_mm512_srai_epi32::<5>(qx), _mm512_and_si512(qx, fraction))
            };
            let (y, fy) = (_mm512_srai_epi32::<5>(qy), _mm512_and_si512(qy, fraction));
            let y1 = _mm512_add_epi32(y, one);
            // Columns x and x + 1 both in the image: one 4-byte read a row
            // holds both neighbours' channel (bytes 0 and 3).
            let columns_in = _mm512_cmpge_epi32_mask(x, zero)
                & _mm512_cmplt_epi32_mask(_mm512_add_epi32(x, one), iw);
            let (rows, masks, handled) = match self.border {
                Border::Replicate => {
                    let last = _mm512_set1_epi32(self.ih as i32 - 1);
                    let clamp = |r| _mm512_min_epi32(_mm512_max_epi32(r, zero), last);
                    // A position out of i32's range (i32::MIN, whichever
                    // side it lies on) is left to the scalar sampler, which
                    // clamps it to the edge it is past.
                    let out_of_range = _mm512_set1_epi32(i32::MIN);
                    let in_range = _mm512_cmpneq_epi32_mask(qx, out_of_range)
                        & _mm512_cmpneq_epi32_mask(qy, out_of_range);
                    let handled = if clamps_columns {
                        in_range
                    } else {
                        columns_in & in_range
                    };
                    ([clamp(y), clamp(y1)], [handled; 2], handled)
                }
                Border::Zero => {
                    let row_in =
                        |r| _mm512_cmpge_epi32_mask(r, zero) & _mm512_cmplt_epi32_mask(r, ih);
                    // No neighbour in the image: a zero sum, as below.
                    let outside = _mm512_cmplt_epi32_mask(_mm512_add_epi32(x, one), zero)
                        | _mm512_cmplt_epi32_mask(y1, zero)
                        | _mm512_cmpge_epi32_mask(x, iw)
                        | _mm512_cmpge_epi32_mask(y, ih);
                    let masks = [columns_in & row_in(y), columns_in & row_in(y1)];
                    ([y, y1], masks, columns_in | outside)
                }
            };
            if handled == 0 {
                return 0;
            }
            let full = _mm512_set1_epi32(SUBPIXELS as i32);
            let (gx, gy) = (_mm512_sub_epi32(full, fx), _mm512_sub_epi32(full, fy));
            let weights = [
                _mm512_mullo_epi32(gx, gy),
                _mm512_mullo_epi32(fx, gy),
                _mm512_mullo_epi32(gx, fy),
                _mm512_mullo_epi32(fx, fy),
            ];
            let three = _mm512_set1_epi32(3);
            let offset =
                |row| _mm512_mullo_epi32(_mm512_add_epi32(_mm512_mullo_epi32(row, iw), x), three);
            let (top, below) = (offset(rows[0]), offset(rows[1]));
            let byte = _mm512_set1_epi32(0xFF);
            let base = self.raw.as_ptr();
            // Two 4-byte reads a row: at byte 0 of pixel x (channels 0, 1, 2
            // of x and 0 of x + 1) and at byte 2 (channel 2 of x, then 0, 1,
            // 2 of x + 1): the six bytes the row's pair holds.
            let gather =
                |offsets, mask| _mm512_mask_i32gather_epi32::<1>(zero, mask, offsets, base.cast());
            let two = _mm512_set1_epi32(2);
            let rows_read = [
                [
                    gather(top, masks[0]),
                    gather(_mm512_add_epi32(top, two), masks[0]),
                ],
                [
                    gather(below, masks[1]),
                    gather(_mm512_add_epi32(below, two), masks[1]),
                ],
            ];
            // Channel c of (x, x + 1) in a row: bytes (0, 3) of the first
            // read, (1 of the first, 2 of the second) or (0, 3) of the second.
            let pair = |[first, second]: [__m512i; 2], c: usize| match c {
                0 => [
                    _mm512_and_si512(first, byte),
                    _mm512_srli_epi32::<24>(first),
                ],
                1 => [
                    _mm512_and_si512(_mm512_srli_epi32::<8>(first), byte),
                    _mm512_and_si512(_mm512_srli_epi32::<16>(second), byte),
                ],
                _ => [
                    _mm512_and_si512(second, byte),
                    _mm512_srli_epi32::<24>(second),
                ],
            };
            let mut values = [_mm512_setzero_ps(); 3];
            for (c, channel) in values.iter_mut().enumerate() {
                let ([upper_x, upper_x1], [lower_x, lower_x1]) =
                    (pair(rows_read[0], c), pair(rows_read[1], c));
                let terms = [upper_x, upper_x1, lower_x, lower_x1];
                let mut sum = zero;
                for (t, w) in terms.iter().zip(&weights) {
                    sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(*t, *w));
                }
                // fixed_point_to_u8: (sum * 32 + 2^14) >> 15, clamped.
                let rounded = _mm512_srai_epi32::<15>(_mm512_add_epi32(
                    _mm512_mullo_epi32(sum, _mm512_set1_epi32(WEIGHT_SCALE as i32)),
                    _mm512_set1_epi32(1 << 14),
                ));
                let index = _mm512_min_epi32(_mm512_max_epi32(rounded, zero), byte);
                *channel = _mm512_add_ps(
                    _mm512_set1_ps(self.lo),
                    _mm512_mul_ps(_mm512_set1_ps(self.gain), _mm512_cvtepi32_ps(index)),
                );
            }
            if handled == u16::MAX {
                // All 16 pixels: their channels interleaved in registers.
                let pixels = interleave3_avx512(values);
                for (i, v) in pixels.iter().enumerate() {
                    _mm512_storeu_ps(dst.as_mut_ptr().add(LANES * i), *v);
                }
                return handled;
            }
            let mut lanes = [[0.0f32; LANES]; 3];
            for (lane, v) in lanes.iter_mut().zip(&values) {
                _mm512_storeu_ps(lane.as_mut_ptr(), *v);
            }
            for lane in (0..LANES).filter(|l| handled & (1 << l) != 0) {
                for (c, channel) in lanes.iter().enumerate() {
                    dst[lane * 3 + c] = channel[lane];
                }
            }
            handled
        }
    }

    /// [`Source::sample16_avx512`] 8 pixels at a time with AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2; `columns` must hold 8 values each and `dst` 8
    /// pixels (24 values); [`Source::fits_simd`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn sample8_avx2(
        &self,
        columns: (&[f32], &[f32]),
        row_terms: (f32, f32),
        dst: &mut [f32],
    ) -> u16 {
        use std::arch::x86_64::*;
        const EIGHT: usize = 8;
        debug_assert!(
            columns.0.len() >= EIGHT && columns.1.len() >= EIGHT && dst.len() >= 3 * EIGHT
        );
        // SAFETY: as in `sample16_avx512`: loads of the caller's 8 columns,
        // gathers masked to the pixels whose neighbours are all in the image.
        unsafe {
            let sx = _mm256_sub_ps(
                _mm256_loadu_ps(columns.0.as_ptr()),
                _mm256_set1_ps(row_terms.0),
            );
            let sy = _mm256_add_ps(
                _mm256_loadu_ps(columns.1.as_ptr()),
                _mm256_set1_ps(row_terms.1),
            );
            let in_32ths = |v: __m256| {
                let scale = _mm256_set1_pd(SUBPIXELS as f64);
                let low = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
                let high = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
                let low = _mm256_cvtpd_epi32(_mm256_mul_pd(low, scale));
                let high = _mm256_cvtpd_epi32(_mm256_mul_pd(high, scale));
                _mm256_set_m128i(high, low)
            };
            let (qx, qy) = (in_32ths(sx), in_32ths(sy));
            let zero = _mm256_setzero_si256();
            let one = _mm256_set1_epi32(1);
            let minus_one = _mm256_set1_epi32(-1);
            let (iw, ih) = (
                _mm256_set1_epi32(self.iw as i32),
                _mm256_set1_epi32(self.ih as i32),
            );
            let clamps_columns = self.clamps_columns();
            let fraction = _mm256_set1_epi32(SUBPIXELS as i32 - 1);
            let (x, fx) = if clamps_columns {
                // As in `sample16_avx512`.
                let last = _mm256_set1_epi32((self.iw as i32 - 1) * SUBPIXELS as i32);
                let qx = _mm256_min_epi32(_mm256_max_epi32(qx, zero), last);
                let x = _mm256_min_epi32(
                    _mm256_srai_epi32::<5>(qx),
                    _mm256_sub_epi32(iw, _mm256_set1_epi32(2)),
                );
                (x, _mm256_sub_epi32(qx, _mm256_slli_epi32::<5>(x)))
            } else {
                (_mm256_srai_epi32::<5>(qx), _mm256_and_si256(qx, fraction))
            };
            let (y, fy) = (_mm256_srai_epi32::<5>(qy), _mm256_and_si256(qy, fraction));
            let and = |a, b| _mm256_and_si256(a, b);
            let y1 = _mm256_add_epi32(y, one);
            // As in `sample16_avx512`, with lanes of all ones for true.
            let columns_in = and(
                _mm256_cmpgt_epi32(x, minus_one),
                _mm256_cmpgt_epi32(iw, _mm256_add_epi32(x, one)),
            );
            let (rows, masks, handled) = match self.border {
                Border::Replicate => {
                    let last = _mm256_set1_epi32(self.ih as i32 - 1);
                    let clamp = |r| _mm256_min_epi32(_mm256_max_epi32(r, zero), last);
                    let out_of_range = _mm256_set1_epi32(i32::MIN);
                    let in_range = _mm256_andnot_si256(
                        _mm256_or_si256(
                            _mm256_cmpeq_epi32(qx, out_of_range),
                            _mm256_cmpeq_epi32(qy, out_of_range),
                        ),
                        _mm256_set1_epi32(-1),
                    );
                    let handled = if clamps_columns {
                        in_range
                    } else {
                        and(columns_in, in_range)
                    };
                    ([clamp(y), clamp(y1)], [handled; 2], handled)
                }
                Border::Zero => {
                    let row_in =
                        |r| and(_mm256_cmpgt_epi32(r, minus_one), _mm256_cmpgt_epi32(ih, r));
                    let or = |a, b| _mm256_or_si256(a, b);
                    let outside = or(
                        or(
                            _mm256_cmpgt_epi32(zero, _mm256_add_epi32(x, one)),
                            _mm256_cmpgt_epi32(zero, y1),
                        ),
                        or(
                            _mm256_cmpgt_epi32(x, _mm256_sub_epi32(iw, one)),
                            _mm256_cmpgt_epi32(y, _mm256_sub_epi32(ih, one)),
                        ),
                    );
                    let masks = [and(columns_in, row_in(y)), and(columns_in, row_in(y1))];
                    ([y, y1], masks, _mm256_or_si256(columns_in, outside))
                }
            };
            let bits = _mm256_movemask_ps(_mm256_castsi256_ps(handled)) as u16;
            if bits == 0 {
                return 0;
            }
            let full = _mm256_set1_epi32(SUBPIXELS as i32);
            let (gx, gy) = (_mm256_sub_epi32(full, fx), _mm256_sub_epi32(full, fy));
            let weights = [
                _mm256_mullo_epi32(gx, gy),
                _mm256_mullo_epi32(fx, gy),
                _mm256_mullo_epi32(gx, fy),
                _mm256_mullo_epi32(fx, fy),
            ];
            let three = _mm256_set1_epi32(3);
            let offset =
                |row| _mm256_mullo_epi32(_mm256_add_epi32(_mm256_mullo_epi32(row, iw), x), three);
            let (top, below) = (offset(rows[0]), offset(rows[1]));
            let byte = _mm256_set1_epi32(0xFF);
            let base: *const i32 = self.raw.as_ptr().cast();
            // As in `sample16_avx512`: two reads a row, at bytes 0 and 2.
            let gather =
                |offsets, mask| _mm256_mask_i32gather_epi32::<1>(zero, base, offsets, mask);
            let two = _mm256_set1_epi32(2);
            let rows_read = [
                [
                    gather(top, masks[0]),
                    gather(_mm256_add_epi32(top, two), masks[0]),
                ],
                [
                    gather(below, masks[1]),
                    gather(_mm256_add_epi32(below, two), masks[1]),
                ],
            ];
            let pair = |[first, second]: [__m256i; 2], c: usize| match c {
                0 => [
                    _mm256_and_si256(first, byte),
                    _mm256_srli_epi32::<24>(first),
                ],
                1 => [
                    _mm256_and_si256(_mm256_srli_epi32::<8>(first), byte),
                    _mm256_and_si256(_mm256_srli_epi32::<16>(second), byte),
                ],
                _ => [
                    _mm256_and_si256(second, byte),
                    _mm256_srli_epi32::<24>(second),
                ],
            };
            let mut values = [[0.0f32; EIGHT]; 3];
            for (c, channel) in values.iter_mut().enumerate() {
                let ([upper_x, upper_x1], [lower_x, lower_x1]) =
                    (pair(rows_read[0], c), pair(rows_read[1], c));
                let terms = [upper_x, upper_x1, lower_x, lower_x1];
                let mut sum = zero;
                for (t, w) in terms.iter().zip(&weights) {
                    sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(*t, *w));
                }
                let rounded = _mm256_srai_epi32::<15>(_mm256_add_epi32(
                    _mm256_mullo_epi32(sum, _mm256_set1_epi32(WEIGHT_SCALE as i32)),
                    _mm256_set1_epi32(1 << 14),
                ));
                let index = _mm256_min_epi32(_mm256_max_epi32(rounded, zero), byte);
                let scaled = _mm256_add_ps(
                    _mm256_set1_ps(self.lo),
                    _mm256_mul_ps(_mm256_set1_ps(self.gain), _mm256_cvtepi32_ps(index)),
                );
                _mm256_storeu_ps(channel.as_mut_ptr(), scaled);
            }
            for lane in (0..EIGHT).filter(|l| bits & (1 << l) != 0) {
                for (c, channel) in values.iter().enumerate() {
                    dst[lane * 3 + c] = channel[lane];
                }
            }
            bits
        }
    }
}

/// Where [`interleave3_avx512`] takes each value of its outputs: for output
/// vector `k`, first from (r, g) and then from (that, b).
const INTERLEAVE3: [[[u32; LANES]; 2]; 3] = {
    let mut table = [[[0; LANES]; 2]; 3];
    let mut k = 0;
    while k < 3 {
        let mut j = 0;
        while j < LANES {
            let value = k * LANES + j;
            let (pixel, channel) = ((value / 3) as u32, value % 3);
            table[k][0][j] = match channel {
                0 => pixel,
                1 => LANES as u32 + pixel,
                _ => 0,
            };
            table[k][1][j] = if channel == 2 {
                LANES as u32 + pixel
            } else {
                j as u32
            };
            j += 1;
        }
        k += 1;
    }
    table
};

/// Three vectors of 16 channel values (r, g, b) as 16 RGB pixels in three
/// vectors: r0 g0 b0 r1 ... b15.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave3_avx512(
    [r, g, b]: [std::arch::x86_64::__m512; 3],
) -> [std::arch::x86_64::__m512; 3] {
    use std::arch::x86_64::*;
    std::array::from_fn(|k| {
        // SAFETY: the loads read the 16 indices of a table row.
        let [first, second] =
            INTERLEAVE3[k].map(|row| unsafe { _mm512_loadu_si512(row.as_ptr().cast()) });
        let r_and_g = _mm512_permutex2var_ps(r, first, g);
        _mm512_permutex2var_ps(r_and_g, second, b)
    })
}

/// What one sampled value costs, in multiply-adds of the convolutions (for
/// cutting a crop into parts: four neighbours in fixed point, then a scale).
const SAMPLE_WORK: usize = 16;

/// A bilinear sum (weights summing to 32 * 32) as OpenCV rounds it: its fixed
/// point carries the weights as 2^15 and rounds half up.
fn fixed_point_to_u8(sum: i64) -> usize {
    ((sum * WEIGHT_SCALE + (1 << 14)) >> 15).clamp(0, 255) as usize
}

/// Sample positions are rounded to 1/32 pixel (OpenCV's `INTER_BITS`).
const SUBPIXELS: i64 = 32;
/// 2^15 / (32 * 32): bilinear weights in OpenCV's 15-bit fixed point.
const WEIGHT_SCALE: i64 = 32;

/// Splits a coordinate into its whole pixel and 1/32 fraction, rounded to the
/// nearest 1/32 as OpenCV does (`cvRound`: ties to even).
fn subpixel(v: f32) -> (i64, i64) {
    // Adding and removing 1.5 * 2^52 leaves no fraction bits, so the FPU's
    // default rounding (nearest, ties to even) does the rounding: exactly
    // `round_ties_even`, without a libm call per sample.
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    let scaled = f64::from(v) * SUBPIXELS as f64;
    let q = if scaled.abs() < 1e15 {
        ((scaled + ROUNDER) - ROUNDER) as i64
    } else {
        scaled.round_ties_even() as i64
    };
    (q.div_euclid(SUBPIXELS), q.rem_euclid(SUBPIXELS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpixel_rounds_ties_to_even_like_cv_round() {
        for v in [
            0.0f32,
            1.0 / 64.0,
            3.0 / 64.0,
            -1.0 / 64.0,
            -3.0 / 64.0,
            12.515625,
            -7.3,
            1e9,
            -1e9,
            640.99,
        ] {
            let q = (f64::from(v) * 32.0).round_ties_even() as i64;
            assert_eq!(subpixel(v), (q.div_euclid(32), q.rem_euclid(32)), "{v}");
        }
        assert_eq!(
            subpixel(1.0 / 64.0),
            (0, 0),
            "half of 1/32 rounds to even (0)"
        );
        assert_eq!(
            subpixel(3.0 / 64.0),
            (0, 2),
            "one and a half rounds to even (2)"
        );
        assert_eq!(subpixel(-1.0 / 64.0), (0, 0));
        assert_eq!(subpixel(f32::NAN), (0, 0));
    }

    proptest::proptest! {
        #[test]
        fn subpixel_matches_round_ties_even(v in -1e7f32..1e7f32) {
            let q = (f64::from(v) * 32.0).round_ties_even() as i64;
            proptest::prop_assert_eq!(subpixel(v), (q.div_euclid(32), q.rem_euclid(32)));
        }
    }

    /// The sampler written out per pixel, every position computed whole: the
    /// row/column split in `warp_roi` must give exactly these values.
    fn warp_roi_per_pixel(image: &RgbImage, roi: &Roi, size: usize, border: Border) -> Vec<f32> {
        let (w, h) = (image.width() as f32, image.height() as f32);
        let (iw, ih) = (i64::from(image.width()), i64::from(image.height()));
        let pixel = |x: i64, y: i64, c: usize| -> i64 {
            let (x, y) = match border {
                Border::Replicate => (x.clamp(0, iw - 1), y.clamp(0, ih - 1)),
                Border::Zero if x < 0 || y < 0 || x >= iw || y >= ih => return 0,
                Border::Zero => (x, y),
            };
            i64::from(image.get_pixel(x as u32, y as u32)[c])
        };
        let (sin, cos) = roi.rotation.sin_cos();
        let mut out = Vec::with_capacity(size * size * 3);
        for i in 0..size * size {
            let (oy, ox) = (i / size, i % size);
            let v = oy as f32 / size as f32 - 0.5;
            let u = ox as f32 / size as f32 - 0.5;
            let (rw, rh) = (roi.w * w, roi.h * h);
            let (px, py) = (u * rw, v * rh);
            let sx = roi.x * w + px * cos - py * sin;
            let sy = roi.y * h + px * sin + py * cos;
            let (x, fx) = subpixel(sx);
            let (y, fy) = subpixel(sy);
            for c in 0..3 {
                let sum = pixel(x, y, c) * (32 - fx) * (32 - fy)
                    + pixel(x + 1, y, c) * fx * (32 - fy)
                    + pixel(x, y + 1, c) * (32 - fx) * fy
                    + pixel(x + 1, y + 1, c) * fx * fy;
                out.push(fixed_point_to_u8(sum) as f32);
            }
        }
        out
    }

    /// A pool of two threads, for the tests that cut crops into bands.
    fn two_threads() -> &'static rayon::ThreadPool {
        static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
        POOL.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap()
        })
    }

    proptest::proptest! {
        #[test]
        fn warp_matches_the_per_pixel_sampler(
            (iw, ih) in (1u32..40, 1u32..40),
            (x, y) in (-0.3f32..1.3, -0.3f32..1.3),
            (rw, rh) in (0.05f32..1.5, 0.05f32..1.5),
            rotation in -3.2f32..3.2,
            size in 1usize..80,
            replicate: bool,
        ) {
            let img = RgbImage::from_fn(iw, ih, |x, y| {
                image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (255 - x * 5) as u8])
            });
            let roi = Roi { x, y, w: rw, h: rh, rotation };
            let border = if replicate { Border::Replicate } else { Border::Zero };
            let mut out = vec![f32::NAN; size * size * 3];
            warp_roi(&img, &roi, size, border, 0.0, 255.0, &mut out);
            let expected = warp_roi_per_pixel(&img, &roi, size, border);
            proptest::prop_assert_eq!(&out, &expected);
            // At every SIMD level the CPU has.
            for simd in Simd::available() {
                let mut at_level = vec![f32::NAN; size * size * 3];
                warp_roi_with(simd, &img, &roi, size, border, 0.0, 255.0, &mut at_level);
                proptest::prop_assert_eq!(&at_level, &expected, "{:?}", simd);
            }
            // In bands of rows on two threads (crops of 27 rows or more).
            let mut in_bands = vec![f32::NAN; size * size * 3];
            two_threads().install(|| warp_roi(&img, &roi, size, border, 0.0, 255.0, &mut in_bands));
            proptest::prop_assert_eq!(&in_bands, &expected);
        }
    }

    #[test]
    fn crops_far_past_the_edges_match_the_per_pixel_sampler() {
        let img = RgbImage::from_fn(37, 23, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x * y) as u8, (200 - x * 3) as u8])
        });
        // Off one side and well past both: every column clamped; and past
        // i32's range in 1/32 pixels, where the scalar sampler takes over.
        for (x, y) in [
            (-0.6, 0.5),
            (1.7, 0.4),
            (40.0, -30.0),
            (-3e8, 0.5),
            (3e8, 3e8),
        ] {
            let roi = Roi {
                x,
                y,
                w: 0.9,
                h: 1.2,
                rotation: 0.3,
            };
            for border in [Border::Replicate, Border::Zero] {
                let expected = warp_roi_per_pixel(&img, &roi, 48, border);
                for simd in Simd::available() {
                    let mut out = vec![f32::NAN; 48 * 48 * 3];
                    warp_roi_with(simd, &img, &roi, 48, border, 0.0, 255.0, &mut out);
                    assert!(out == expected, "{x} {y} {border:?} {simd:?}");
                }
            }
        }
    }

    #[test]
    fn letterbox_pads_short_side_and_round_trips() {
        let (roi, pad) = letterbox_roi(640, 480);
        assert_eq!(roi.w, 1.0);
        assert!((pad.y - 0.125).abs() < 1e-6 && pad.x == 0.0);
        let p = remove_letterbox([0.5, 0.125], pad);
        assert!((p[1]).abs() < 1e-6 && (p[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn identity_warp_copies_pixels_and_zero_border_fills() {
        let img = RgbImage::from_fn(4, 2, |x, y| image::Rgb([(x * 10 + y) as u8, 0, 255]));
        let (roi, _) = letterbox_roi(4, 2);
        let mut out = vec![0.0; 4 * 4 * 3];
        warp_roi(&img, &roi, 4, Border::Zero, 0.0, 255.0, &mut out);
        // Rows 0 and 3 are padding; row 1 is image row 0.
        assert_eq!(&out[0..3], &[0.0, 0.0, 0.0]);
        assert!((out[(4 + 2) * 3] - 20.0).abs() < 1e-3);
        assert!((out[(8 + 3) * 3] - 31.0).abs() < 1e-3);
        assert!((out[(4 + 1) * 3 + 2] - 255.0).abs() < 1e-3);
        let mut rep = vec![0.0; 4 * 4 * 3];
        warp_roi(&img, &roi, 4, Border::Replicate, -1.0, 1.0, &mut rep);
        assert!((rep[2] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn rotated_warp_turns_image() {
        // A 90-degree ROI reads image columns as tensor rows.
        let img = RgbImage::from_fn(3, 3, |x, y| image::Rgb([(x * 3 + y) as u8, 0, 0]));
        let roi = Roi {
            x: 0.5,
            y: 0.5,
            w: 1.0,
            h: 1.0,
            rotation: std::f32::consts::FRAC_PI_2,
        };
        let mut out = vec![0.0; 27];
        warp_roi(&img, &roi, 3, Border::Zero, 0.0, 255.0, &mut out);
        // Tensor (1,1) samples the ROI at 1/3 of its width and height:
        // after the quarter turn that is image point (x=2, y=1).
        assert!((out[4 * 3] - 7.0).abs() < 1e-3, "{}", out[4 * 3]);
        // Tensor (0,0) maps onto the ROI's corner, image (3, 0): off the
        // image, so zero.
        assert_eq!(out[0], 0.0);
    }
}
