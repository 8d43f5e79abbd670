//! MJPEG frames as a camera sends them: any bytes, any negotiated size, must
//! give an image of that size or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signtop::capture::convert::{PixelFormat, to_rgb};

fuzz_target!(|input: (u16, u16, &[u8])| {
    let (width, height, bytes) = input;
    // Sizes a camera could negotiate; larger ones only make the runs slow.
    let (width, height) = (u32::from(width % 2048), u32::from(height % 2048));
    if let Ok(image) = to_rgb(PixelFormat::Mjpeg, width, height, bytes) {
        assert_eq!(image.dimensions(), (width, height));
    }
});
