//! The raw converters (YUYV, RGB24, GREY), packed and with row padding: any
//! bytes, size and stride must give an image of the asked size or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signtop::capture::convert::{PixelFormat, to_rgb_strided};

fuzz_target!(|input: (u8, u16, u16, u16, &[u8])| {
    let (format, width, height, stride, bytes) = input;
    let format =
        [PixelFormat::Yuyv, PixelFormat::Rgb24, PixelFormat::Grey][usize::from(format % 3)];
    let (width, height) = (u32::from(width % 1024), u32::from(height % 1024));
    if let Ok(image) = to_rgb_strided(format, width, height, usize::from(stride), bytes) {
        assert_eq!(image.dimensions(), (width, height));
    }
});
