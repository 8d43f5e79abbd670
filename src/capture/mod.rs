//! Capture: frames from a camera (V4L2) or a replay (image, GIF, folder, video),
//! behind one [`Source`] trait, and a [`CaptureThread`] that always offers the
//! newest frame.
//!
//! # Using it
//!
//! Build a [`SourceSpec`] (a [`CameraConfig`] for a V4L2 device, a
//! [`ReplayConfig`] for a file: `fps: Some(..)` overrides the clip's rate,
//! `max_speed: true` delivers frames as fast as they decode), open it with
//! [`open_source`], and either pull frames yourself with [`Source::next_frame`]
//! or hand the source to [`CaptureThread::spawn`], which always offers the newest
//! frame and counts the ones the consumer missed:
//!
//! ```no_run
//! use signtop::capture::{CaptureThread, ReplayConfig, SourceSpec, open_source};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = SourceSpec::Replay(ReplayConfig { fps: Some(15.0), ..ReplayConfig::new("clip.gif") });
//! let source = open_source(&spec)?;
//! let capture = CaptureThread::spawn(source)?;
//! println!("{}", capture.info()); // e.g. "replay clip.gif GIF 320x240 @ 15.00 fps"
//! while let Some(frame) = capture.recv()? {
//!     let _ = (frame.sequence, frame.timestamp, frame.image.dimensions());
//! }
//! println!("{:?}", capture.stats());
//! # Ok(())
//! # }
//! ```
//!
//! A camera is opened the same way with
//! `SourceSpec::Camera(CameraConfig { device: "/dev/video0".into(), ..Default::default() })`;
//! its [`SourceInfo`] reports the pixel format chosen and the size and rate the
//! driver granted, and [`Source::stats`] the dropped, corrupt and reconnect counts.

pub mod camera;
pub mod convert;
pub mod decode;
pub mod devices;
pub mod error;
pub mod frame;
pub mod probe;
pub mod replay;
pub mod thread;

use std::fmt;

pub use camera::{Backoff, Camera, CameraConfig};
pub use error::CaptureError;
pub use frame::{Frame, monotonic_now};
pub use replay::{DEMO_CLIP, Replay, ReplayConfig};
pub use thread::{CaptureStats, CaptureThread, Received};

/// A source of frames: a camera or a replayed file.
pub trait Source {
    /// The next frame, `Ok(None)` at the end of the input (never for a camera).
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;

    /// What this source is: device or file, pixel format, size, frame rate.
    fn info(&self) -> SourceInfo;

    /// Counters of frames lost or skipped so far.
    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }
}

/// A human description of a source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    /// Device path and name, or the replayed file and its kind.
    pub description: String,
    /// Pixel format delivered by the device (e.g. "YUYV"), or the media kind of a replay.
    pub pixel_format: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second granted by the driver or used for pacing (None: unknown or flat out).
    pub fps: Option<f64>,
}

impl fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}x{}",
            self.description, self.pixel_format, self.width, self.height
        )?;
        match self.fps {
            Some(fps) => write!(f, " @ {fps:.2} fps"),
            None => write!(f, " (unpaced)"),
        }
    }
}

/// Frames a source lost or skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Frames delivered.
    pub frames: u64,
    /// Frames the driver dropped (gaps in V4L2 sequence numbers).
    pub dropped: u64,
    /// Frames skipped because they could not be decoded (corrupt MJPEG, short or error-flagged buffers).
    pub corrupt: u64,
    /// Times the device was reopened after it went away.
    pub reconnects: u64,
}

/// What to open: a camera or a file to replay.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A V4L2 camera.
    Camera(CameraConfig),
    /// A video, GIF, folder of images or still image.
    Replay(ReplayConfig),
}

/// Opens a camera or a replay, ready for `next_frame`.
pub fn open_source(spec: &SourceSpec) -> Result<Box<dyn Source + Send>, CaptureError> {
    match spec {
        SourceSpec::Camera(config) => Ok(Box::new(Camera::open(config)?)),
        SourceSpec::Replay(config) => Ok(Box::new(Replay::open(config)?)),
    }
}
