//! Capture errors: what can go wrong opening or reading a camera or a replay,
//! each with a message that names the device or file and says what to do.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::decode::DecodeError;

/// Errors from frame sources.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device node does not exist (or the device is gone and stayed gone).
    #[error(
        "no camera at {}: the device does not exist (`signtop devices` lists the cameras; without a camera, `signtop --demo` shows signtop on a built-in clip and `signtop --input PATH` replays a video, GIF or images)",
        path.display()
    )]
    NoDevice {
        /// The device path asked for.
        path: PathBuf,
    },
    /// The device exists but this user may not open it.
    #[error(
        "permission denied opening {}: add your user to the `video` group (`sudo usermod -aG video $USER`, then log in again)",
        path.display()
    )]
    PermissionDenied {
        /// The device path asked for.
        path: PathBuf,
    },
    /// Another program holds the device.
    #[error(
        "{} is busy: another program is using the camera (close it, or pick another with --device)",
        path.display()
    )]
    Busy {
        /// The device path asked for.
        path: PathBuf,
    },
    /// The device node is not a video capture device (e.g. a metadata node).
    #[error("{} is not a video capture device ({card})", path.display())]
    NotCapture {
        /// The device path asked for.
        path: PathBuf,
        /// The driver's name for the device.
        card: String,
    },
    /// No pixel format both offered by the device and understood by signtop.
    #[error(
        "{} offers no pixel format signtop can read{}: it offers {}; signtop reads YUYV, MJPG, RGB3 and GREY",
        path.display(),
        requested.as_ref().map(|r| format!(" (asked for {r})")).unwrap_or_default(),
        if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
    )]
    UnsupportedFormat {
        /// The device path.
        path: PathBuf,
        /// A format asked for explicitly, if any.
        requested: Option<String>,
        /// The fourccs the device offers.
        offered: Vec<String>,
    },
    /// The device went away while streaming and did not come back.
    #[error(
        "{} disappeared while streaming ({cause}) and did not come back after {attempts} attempts over {:.1} s: check the cable and `signtop devices`",
        path.display(),
        waited.as_secs_f64()
    )]
    Disconnected {
        /// The device path.
        path: PathBuf,
        /// Reopen attempts made.
        attempts: u32,
        /// Time spent retrying.
        waited: Duration,
        /// The error that ended the stream.
        cause: io::Error,
    },
    /// Every frame for a while failed to decode (e.g. a broken MJPEG encoder).
    #[error("{} sent {count} undecodable frames in a row; last: {last}", path.display())]
    CorruptStream {
        /// The device path.
        path: PathBuf,
        /// Consecutive bad frames.
        count: u32,
        /// The last decoding error.
        last: String,
    },
    /// Any other failing V4L2 call.
    #[error("{}: {operation} failed", path.display())]
    Device {
        /// The device path.
        path: PathBuf,
        /// What was being done (e.g. "setting the format").
        operation: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A replay input could not be opened or decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A replay option is out of range.
    #[error("invalid replay option: {0}")]
    InvalidOption(String),
}

impl CaptureError {
    /// Maps an error from opening or configuring `path` to the matching variant.
    pub fn from_io(path: &std::path::Path, operation: &'static str, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => CaptureError::NoDevice { path },
            Some(libc::EACCES | libc::EPERM) => CaptureError::PermissionDenied { path },
            Some(libc::EBUSY) => CaptureError::Busy { path },
            _ => CaptureError::Device {
                path,
                operation,
                source: err,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn mapped(errno: i32) -> CaptureError {
        CaptureError::from_io(
            Path::new("/dev/video7"),
            "opening",
            io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn os_errors_map_to_user_errors_naming_the_device() {
        let e = mapped(libc::ENOENT);
        assert!(matches!(e, CaptureError::NoDevice { .. }));
        assert!(e.to_string().contains("/dev/video7"), "{e}");
        let e = mapped(libc::EACCES);
        assert!(matches!(e, CaptureError::PermissionDenied { .. }));
        assert!(e.to_string().contains("video` group"), "{e}");
        let e = mapped(libc::EBUSY);
        assert!(matches!(e, CaptureError::Busy { .. }));
        assert!(e.to_string().contains("busy"), "{e}");
        let e = mapped(libc::EIO);
        assert!(
            e.to_string().starts_with("/dev/video7: opening failed"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_format_lists_what_is_offered() {
        let e = CaptureError::UnsupportedFormat {
            path: "/dev/video0".into(),
            requested: Some("GREY".into()),
            offered: vec!["NV12".into(), "H264".into()],
        };
        let text = e.to_string();
        assert!(text.contains("(asked for GREY)"), "{text}");
        assert!(text.contains("it offers NV12, H264"), "{text}");
    }
}
