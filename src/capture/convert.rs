//! Pixel-format conversion: raw V4L2 buffers (YUYV, RGB24, GREY, MJPEG) to `RgbImage`.

use image::RgbImage;
use thiserror::Error;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// A V4L2 pixel format this module can convert to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2 YUV, `Y0 U Y1 V` per two pixels (fourcc `YUYV`).
    Yuyv,
    /// Packed 8-bit RGB (fourcc `RGB3`).
    Rgb24,
    /// 8-bit greyscale (fourcc `GREY`).
    Grey,
    /// Motion JPEG: one JPEG image per buffer (fourcc `MJPG`).
    Mjpeg,
}

impl PixelFormat {
    /// Every supported format, in order of preference for negotiation.
    pub const ALL: [PixelFormat; 4] = [
        PixelFormat::Yuyv,
        PixelFormat::Mjpeg,
        PixelFormat::Rgb24,
        PixelFormat::Grey,
    ];

    /// The V4L2 fourcc bytes of this format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }

    /// The format for V4L2 fourcc bytes, or `None` when unsupported.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.fourcc() == fourcc)
    }

    /// Bytes a full frame of this size needs (`None` for MJPEG, which is variable, or on overflow).
    pub fn frame_bytes(self, width: u32, height: u32) -> Option<usize> {
        let pixels = (width as usize).checked_mul(height as usize)?;
        match self {
            PixelFormat::Yuyv => pixels.checked_mul(2),
            PixelFormat::Rgb24 => pixels.checked_mul(3),
            PixelFormat::Grey => Some(pixels),
            PixelFormat::Mjpeg => None,
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.fourcc()))
    }
}

/// Why a buffer could not be converted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConvertError {
    /// The buffer holds fewer bytes than the frame size needs.
    #[error("{format} {width}x{height} frame needs {expected} bytes, got {got}")]
    TooFewBytes {
        /// Pixel format of the frame.
        format: PixelFormat,
        /// Negotiated width.
        width: u32,
        /// Negotiated height.
        height: u32,
        /// Bytes the frame needs.
        expected: usize,
        /// Bytes the buffer holds.
        got: usize,
    },
    /// The frame size overflows memory arithmetic.
    #[error("{format} frame size {width}x{height} is too large")]
    TooLarge {
        /// Pixel format of the frame.
        format: PixelFormat,
        /// Negotiated width.
        width: u32,
        /// Negotiated height.
        height: u32,
    },
    /// YUYV packs two pixels per 4 bytes, so the width must be even.
    #[error("YUYV width must be even, got {width}")]
    OddWidth {
        /// Negotiated width.
        width: u32,
    },
    /// The MJPEG buffer is not a decodable JPEG.
    #[error("corrupt JPEG frame: {0}")]
    CorruptJpeg(String),
    /// The JPEG decoded to another size than the negotiated one.
    #[error("JPEG frame is {got_width}x{got_height}, expected {width}x{height}")]
    SizeMismatch {
        /// Negotiated width.
        width: u32,
        /// Negotiated height.
        height: u32,
        /// Decoded width.
        got_width: u32,
        /// Decoded height.
        got_height: u32,
    },
}

/// Converts one captured buffer (`bytesused` bytes) of the given format and size to RGB.
pub fn to_rgb(
    format: PixelFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<RgbImage, ConvertError> {
    match format {
        PixelFormat::Yuyv => yuyv_to_rgb(width, height, bytes),
        PixelFormat::Rgb24 => rgb24_to_rgb(width, height, bytes),
        PixelFormat::Grey => grey_to_rgb(width, height, bytes),
        PixelFormat::Mjpeg => mjpeg_to_rgb(width, height, bytes),
    }
}

/// Like [`to_rgb`] for a buffer whose rows are `stride` bytes apart (V4L2
/// `bytesperline`, which may pad each row); MJPEG ignores the stride.
pub fn to_rgb_strided(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    bytes: &[u8],
) -> Result<RgbImage, ConvertError> {
    let Some(row) = format.frame_bytes(width, 1) else {
        return to_rgb(format, width, height, bytes);
    };
    if stride <= row || height == 0 {
        return to_rgb(format, width, height, bytes);
    }
    let packed = pack_rows(bytes, row, stride, height as usize).ok_or_else(|| {
        ConvertError::TooFewBytes {
            format,
            width,
            height,
            expected: stride
                .saturating_mul(height as usize - 1)
                .saturating_add(row),
            got: bytes.len(),
        }
    })?;
    to_rgb(format, width, height, &packed)
}

/// Copies `rows` rows of `row` bytes, `stride` bytes apart, into one packed buffer.
fn pack_rows(bytes: &[u8], row: usize, stride: usize, rows: usize) -> Option<Vec<u8>> {
    let mut packed = Vec::with_capacity(row.checked_mul(rows)?);
    for r in 0..rows {
        let start = r.checked_mul(stride)?;
        packed.extend_from_slice(bytes.get(start..start.checked_add(row)?)?);
    }
    Some(packed)
}

/// The first `frame_bytes` of `bytes`, or an error naming expected vs got.
fn frame_slice(
    format: PixelFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<&[u8], ConvertError> {
    let expected = format
        .frame_bytes(width, height)
        .ok_or(ConvertError::TooLarge {
            format,
            width,
            height,
        })?;
    bytes.get(..expected).ok_or(ConvertError::TooFewBytes {
        format,
        width,
        height,
        expected,
        got: bytes.len(),
    })
}

/// Wraps RGB bytes of exactly `width * height * 3` into an image.
fn image_from_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Result<RgbImage, ConvertError> {
    let got = rgb.len();
    RgbImage::from_raw(width, height, rgb).ok_or(ConvertError::TooFewBytes {
        format: PixelFormat::Rgb24,
        width,
        height,
        expected: (width as usize)
            .saturating_mul(height as usize)
            .saturating_mul(3),
        got,
    })
}

fn rgb24_to_rgb(width: u32, height: u32, bytes: &[u8]) -> Result<RgbImage, ConvertError> {
    let frame = frame_slice(PixelFormat::Rgb24, width, height, bytes)?;
    image_from_rgb(width, height, frame.to_vec())
}

fn grey_to_rgb(width: u32, height: u32, bytes: &[u8]) -> Result<RgbImage, ConvertError> {
    let frame = frame_slice(PixelFormat::Grey, width, height, bytes)?;
    let rgb = frame.iter().flat_map(|&y| [y, y, y]).collect();
    image_from_rgb(width, height, rgb)
}

fn yuyv_to_rgb(width: u32, height: u32, bytes: &[u8]) -> Result<RgbImage, ConvertError> {
    if !width.is_multiple_of(2) {
        return Err(ConvertError::OddWidth { width });
    }
    let frame = frame_slice(PixelFormat::Yuyv, width, height, bytes)?;
    let mut rgb = Vec::with_capacity(frame.len() / 2 * 3);
    for quad in frame.chunks_exact(4) {
        let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
        rgb.extend_from_slice(&yuv_to_rgb(y0, u, v));
        rgb.extend_from_slice(&yuv_to_rgb(y1, u, v));
    }
    image_from_rgb(width, height, rgb)
}

/// BT.601 limited range (Y 16..235, Cb/Cr 16..240) to full-range RGB, in 8.8 fixed point.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

fn mjpeg_to_rgb(width: u32, height: u32, bytes: &[u8]) -> Result<RgbImage, ConvertError> {
    // Strict mode: a frame cut short (lost USB packets) is an error, not grey-filled pixels.
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(true);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| ConvertError::CorruptJpeg(e.to_string());
    // Check the size from the headers before decoding, so a wrong-sized frame costs nothing.
    decoder.decode_headers().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| ConvertError::CorruptJpeg("no frame header".to_owned()))?;
    let (got_width, got_height) = (u32::from(info.width), u32::from(info.height));
    if (got_width, got_height) != (width, height) {
        return Err(ConvertError::SizeMismatch {
            width,
            height,
            got_width,
            got_height,
        });
    }
    let rgb = decoder.decode().map_err(corrupt)?;
    image_from_rgb(width, height, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use proptest::prelude::*;

    fn jpeg(width: u32, height: u32, colour: [u8; 3]) -> Vec<u8> {
        let img = RgbImage::from_pixel(width, height, image::Rgb(colour));
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
        a.iter()
            .zip(b)
            .all(|(&x, y)| (i32::from(x) - i32::from(y)).abs() <= tol)
    }

    #[test]
    fn fourcc_round_trips() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_fourcc(*b"YUYV"), Some(PixelFormat::Yuyv));
        assert_eq!(PixelFormat::from_fourcc(*b"NV12"), None);
    }

    #[test]
    fn yuyv_black_and_white() {
        let img = to_rgb(PixelFormat::Yuyv, 2, 1, &[16, 128, 235, 128]).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
    }

    #[test]
    fn yuyv_red_round_trip() {
        // BT.601 limited range encoding of pure red (255, 0, 0).
        let y = (16.0 + 219.0 * 0.299f64).round() as u8;
        let u = (128.0 - 224.0 * 0.299 / 1.772f64).round() as u8;
        let v = (128.0 + 224.0 * 0.5f64).round() as u8;
        let img = to_rgb(PixelFormat::Yuyv, 2, 1, &[y, u, y, v]).unwrap();
        assert!(
            close(img.get_pixel(0, 0).0, [255, 0, 0], 3),
            "{:?}",
            img.get_pixel(0, 0)
        );
        assert!(close(img.get_pixel(1, 0).0, [255, 0, 0], 3));
    }

    #[test]
    fn yuyv_odd_width_and_short_buffer_are_errors() {
        assert_eq!(
            to_rgb(PixelFormat::Yuyv, 3, 1, &[0; 64]),
            Err(ConvertError::OddWidth { width: 3 })
        );
        let err = to_rgb(PixelFormat::Yuyv, 4, 2, &[0; 15]).unwrap_err();
        assert!(matches!(
            err,
            ConvertError::TooFewBytes {
                expected: 16,
                got: 15,
                ..
            }
        ));
        assert!(err.to_string().contains("16") && err.to_string().contains("15"));
    }

    #[test]
    fn rgb24_copies_and_grey_replicates() {
        let img = to_rgb(PixelFormat::Rgb24, 2, 1, &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(img.into_raw(), vec![1, 2, 3, 4, 5, 6]);
        let img = to_rgb(PixelFormat::Grey, 2, 1, &[7, 9]).unwrap();
        assert_eq!(img.into_raw(), vec![7, 7, 7, 9, 9, 9]);
        assert!(matches!(
            to_rgb(PixelFormat::Rgb24, 2, 1, &[0; 5]),
            Err(ConvertError::TooFewBytes {
                expected: 6,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            to_rgb(PixelFormat::Grey, 2, 2, &[0; 3]),
            Err(ConvertError::TooFewBytes {
                expected: 4,
                got: 3,
                ..
            })
        ));
    }

    #[test]
    fn strided_rows_skip_the_padding() {
        // 2x2 GREY with rows 4 bytes apart: the padding bytes (99) must not show.
        let bytes = [1, 2, 99, 99, 3, 4];
        let img = to_rgb_strided(PixelFormat::Grey, 2, 2, 4, &bytes).unwrap();
        assert_eq!(img.into_raw(), vec![1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
        let err = to_rgb_strided(PixelFormat::Grey, 2, 2, 4, &bytes[..5]).unwrap_err();
        assert!(matches!(
            err,
            ConvertError::TooFewBytes {
                expected: 6,
                got: 5,
                ..
            }
        ));
        // A packed stride is the plain conversion.
        let img = to_rgb_strided(PixelFormat::Rgb24, 1, 1, 3, &[5, 6, 7]).unwrap();
        assert_eq!(img.into_raw(), vec![5, 6, 7]);
    }

    #[test]
    fn mjpeg_valid_decodes_to_size_and_colour() {
        let bytes = jpeg(32, 24, [200, 40, 60]);
        let img = to_rgb(PixelFormat::Mjpeg, 32, 24, &bytes).unwrap();
        assert_eq!(img.dimensions(), (32, 24));
        assert!(
            close(img.get_pixel(16, 12).0, [200, 40, 60], 8),
            "{:?}",
            img.get_pixel(16, 12)
        );
    }

    #[test]
    fn mjpeg_truncated_and_garbage_are_errors() {
        // A textured frame, so that half the file cuts into the entropy-coded scan.
        let img = RgbImage::from_fn(320, 240, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 13) as u8, (x ^ y) as u8])
        });
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&img)
            .unwrap();
        let half = &bytes[..bytes.len() / 2];
        let err = to_rgb(PixelFormat::Mjpeg, 320, 240, half).unwrap_err();
        assert!(matches!(err, ConvertError::CorruptJpeg(_)), "{err}");
        let err = to_rgb(PixelFormat::Mjpeg, 32, 24, &[0x12; 100]).unwrap_err();
        assert!(matches!(err, ConvertError::CorruptJpeg(_)), "{err}");
        assert!(matches!(
            to_rgb(PixelFormat::Mjpeg, 32, 24, &[]),
            Err(ConvertError::CorruptJpeg(_))
        ));
    }

    #[test]
    fn mjpeg_other_size_is_mismatch() {
        let bytes = jpeg(16, 16, [0, 0, 0]);
        assert_eq!(
            to_rgb(PixelFormat::Mjpeg, 32, 24, &bytes),
            Err(ConvertError::SizeMismatch {
                width: 32,
                height: 24,
                got_width: 16,
                got_height: 16
            })
        );
    }

    fn any_format() -> impl Strategy<Value = PixelFormat> {
        prop::sample::select(PixelFormat::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn never_panics(format in any_format(), w in 0u32..=64, h in 0u32..=64,
                        bytes in prop::collection::vec(any::<u8>(), 0..(64 * 64 * 3 + 16))) {
            let _ = to_rgb(format, w, h, &bytes);
        }

        #[test]
        fn strided_never_panics(format in any_format(), w in 0u32..=32, h in 0u32..=32, stride in 0usize..200,
                        bytes in prop::collection::vec(any::<u8>(), 0..(200 * 33))) {
            let _ = to_rgb_strided(format, w, h, stride, &bytes);
        }

        #[test]
        fn raw_formats_succeed_with_enough_bytes(format in prop::sample::select(vec![PixelFormat::Yuyv, PixelFormat::Rgb24, PixelFormat::Grey]),
                        half_w in 0u32..=32, h in 0u32..=64, extra in 0usize..8, seed in any::<u8>()) {
            let w = half_w * 2;
            let n = format.frame_bytes(w, h).unwrap() + extra;
            let bytes: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let img = to_rgb(format, w, h, &bytes).unwrap();
            prop_assert_eq!(img.dimensions(), (w, h));
        }
    }

    proptest! {
        // Decoding is slower than the raw converters: fewer cases unless PROPTEST_CASES asks.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
        ))]
        #[test]
        fn mjpeg_never_panics(w in 1u32..=64, h in 1u32..=64, cut in prop_oneof![Just(1.0f64), 0.0f64..1.0],
                              flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
            // Start from a real JPEG so the decoder gets past the headers, then damage it.
            let mut bytes = jpeg(w, h, [(w * 4) as u8, (h * 4) as u8, 128]);
            for (at, x) in flips {
                let i = at % bytes.len();
                bytes[i] ^= x;
            }
            let keep = (bytes.len() as f64 * cut) as usize;
            let result = to_rgb(PixelFormat::Mjpeg, w, h, &bytes[..keep]);
            if let Ok(img) = &result {
                prop_assert_eq!(img.dimensions(), (w, h));
            }
        }
    }
}
