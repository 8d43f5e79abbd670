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

/// Now on CLOCK_MONOTONIC, the clock V4L2 drivers stamp frames with.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_now_advances_with_instant() {
        let a = monotonic_now();
        let t = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        let b = monotonic_now();
        assert!(b > a);
        // Instant is CLOCK_MONOTONIC on Linux: both see the same sleep.
        let diff = (b - a).as_secs_f64() - t.elapsed().as_secs_f64();
        assert!(diff.abs() < 0.005, "{diff}");
    }
}
