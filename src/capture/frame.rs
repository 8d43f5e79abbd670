//! A captured frame: RGB pixels with the moment they were captured.

use std::time::Duration;

/// One RGB frame from a source, stamped at capture.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Packed RGB8 pixels, row-major.
    pub image: image::RgbImage,
    /// The source's frame counter (V4L2 sequence number, or index in a replay).
    pub sequence: u64,
    /// Capture time on the CLOCK_MONOTONIC clock (the V4L2 driver's own stamp for
    /// cameras), so latency can be measured end to end.
    pub timestamp: Duration,
}

impl Frame {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height()
    }
}
