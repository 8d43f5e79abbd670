//! The V4L2 camera source: open a device, negotiate pixel format, size and frame
//! interval, stream through a few mmap buffers, convert each to RGB, count
//! dropped and corrupt frames, and reopen the device when it goes away.

use std::io;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::{Flags as BufferFlags, Metadata, Type};
use v4l::capability::Flags as CapabilityFlags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC, Fraction};

use super::convert::{self, ConvertError, PixelFormat};
use super::{CaptureError, Frame, Source, SourceInfo, SourceStats, monotonic_now};

/// Frames larger than this (pixels) prefer MJPEG: raw YUYV rarely reaches full rate there over USB.
const LARGE_FRAME_PIXELS: u64 = 640 * 480;

/// Undecodable frames in a row after which the stream is declared broken.
const MAX_CONSECUTIVE_CORRUPT: u32 = 60;

/// How to open a camera.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    /// Device node, e.g. /dev/video0.
    pub device: PathBuf,
    /// Requested width in pixels (the driver picks the nearest it has).
    pub width: u32,
    /// Requested height in pixels.
    pub height: u32,
    /// Requested frames per second (the driver picks the nearest interval it has).
    pub fps: u32,
    /// A pixel format to insist on; `None` picks the best the device offers.
    pub format: Option<PixelFormat>,
    /// mmap buffers to request: few means low latency (the driver may grant more).
    pub buffers: u32,
    /// No frame for this long counts as a stalled device (which is then reopened).
    pub timeout: Duration,
    /// How to retry when the device goes away while streaming.
    pub backoff: Backoff,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            device: PathBuf::from("/dev/video0"),
            width: 640,
            height: 480,
            fps: 30,
            format: None,
            buffers: 2,
            timeout: Duration::from_secs(3),
            backoff: Backoff::default(),
        }
    }
}

/// Reopen attempts with exponentially growing waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Reopen attempts before giving up.
    pub attempts: u32,
    /// Wait before the first attempt; doubled after each failure.
    pub first: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 7,
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// What the driver granted.
#[derive(Clone, Debug, PartialEq)]
pub struct Negotiated {
    /// Device node.
    pub device: PathBuf,
    /// The driver's name for the device (V4L2 `card`).
    pub card: String,
    /// The driver module (V4L2 `driver`).
    pub driver: String,
    /// Pixel format in use.
    pub format: PixelFormat,
    /// Granted width.
    pub width: u32,
    /// Granted height.
    pub height: u32,
    /// Bytes per row (`bytesperline`; 0 for MJPEG).
    pub stride: u32,
    /// Granted frame interval as (numerator, denominator) seconds, if the driver reports one.
    pub interval: Option<(u32, u32)>,
}

impl Negotiated {
    /// Frames per second from the granted interval.
    pub fn fps(&self) -> Option<f64> {
        self.interval
            .filter(|&(n, d)| n > 0 && d > 0)
            .map(|(n, d)| f64::from(d) / f64::from(n))
    }
}

/// An open device and its running stream. Fields drop in order: the stream
/// (STREAMOFF, unmap, free buffers) before the device's file descriptor.
struct Live {
    stream: Stream<'static>,
    _device: Device,
}

/// A streaming V4L2 camera.
pub struct Camera {
    config: CameraConfig,
    live: Option<Live>,
    negotiated: Negotiated,
    stats: SourceStats,
    /// Last V4L2 sequence number seen since (re)starting the stream.
    last_sequence: Option<u32>,
    /// Added to V4L2 sequence numbers so they keep rising across reopens.
    sequence_base: u64,
    /// One past the last delivered frame's sequence.
    next_sequence: u64,
    consecutive_corrupt: u32,
}

/// One dequeued buffer's outcome.
enum Grab {
    Frame(Frame),
    Skipped(String),
}

impl Camera {
    /// Opens `config.device`, negotiates format, size and rate, and allocates the buffers.
    pub fn open(config: &CameraConfig) -> Result<Camera, CaptureError> {
        let (live, negotiated) = open_live(config)?;
        tracing::info!(?negotiated, buffers = config.buffers, "camera opened");
        Ok(Camera {
            config: config.clone(),
            live: Some(live),
            negotiated,
            stats: SourceStats::default(),
            last_sequence: None,
            sequence_base: 0,
            next_sequence: 0,
            consecutive_corrupt: 0,
        })
    }

    /// What the driver granted: format, size, stride and frame interval.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Dequeues one buffer and converts it, or says why it was skipped.
    fn grab(&mut self) -> io::Result<Grab> {
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
        let (buf, meta) = CaptureStream::next(&mut live.stream)?;
        let sequence = account_sequence(
            &mut self.stats,
            &mut self.last_sequence,
            meta.sequence,
            self.sequence_base,
            self.next_sequence,
        );
        Ok(decode_buffer(&self.negotiated, buf, meta, sequence))
    }

    /// Counts a grabbed buffer: the frame, or `None` for a skipped one; too many
    /// skipped in a row is an error.
    fn accept(&mut self, grab: Grab) -> Result<Option<Frame>, CaptureError> {
        match grab {
            Grab::Frame(frame) => {
                self.consecutive_corrupt = 0;
                self.stats.frames += 1;
                self.next_sequence = frame.sequence + 1;
                Ok(Some(frame))
            }
            Grab::Skipped(reason) => {
                self.stats.corrupt += 1;
                self.consecutive_corrupt += 1;
                tracing::debug!(%reason, "frame skipped");
                if self.consecutive_corrupt >= MAX_CONSECUTIVE_CORRUPT {
                    return Err(CaptureError::CorruptStream {
                        path: self.config.device.clone(),
                        count: self.consecutive_corrupt,
                        last: reason,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Reopens the device after `cause` ended the stream, retrying with backoff.
    fn recover(&mut self, cause: io::Error) -> Result<(), CaptureError> {
        if !is_recoverable(&cause) {
            return Err(CaptureError::Device {
                path: self.config.device.clone(),
                operation: "capturing a frame",
                source: cause,
            });
        }
        tracing::warn!(device = %self.config.device.display(), %cause, "camera stream lost, reopening");
        close_quietly(self.live.take());
        let reopen = CameraConfig {
            format: Some(self.negotiated.format),
            width: self.negotiated.width,
            height: self.negotiated.height,
            ..self.config.clone()
        };
        let started = Instant::now();
        for attempt in 0..self.config.backoff.attempts {
            std::thread::sleep(self.config.backoff.delay(attempt));
            match open_live(&reopen) {
                Ok((live, negotiated)) => {
                    tracing::info!(attempt, ?negotiated, "camera reopened");
                    self.live = Some(live);
                    self.negotiated = negotiated;
                    self.stats.reconnects += 1;
                    self.last_sequence = None;
                    self.sequence_base = self.next_sequence;
                    return Ok(());
                }
                Err(err) => tracing::debug!(attempt, %err, "reopen failed"),
            }
        }
        Err(CaptureError::Disconnected {
            path: self.config.device.clone(),
            attempts: self.config.backoff.attempts,
            waited: started.elapsed(),
            cause,
        })
    }
}

impl Source for Camera {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            match self.grab() {
                Ok(grab) => {
                    if let Some(frame) = self.accept(grab)? {
                        return Ok(Some(frame));
                    }
                }
                Err(err) => self.recover(err)?,
            }
        }
    }

    fn info(&self) -> SourceInfo {
        let n = &self.negotiated;
        SourceInfo {
            description: format!("{} ({})", n.device.display(), n.card),
            pixel_format: n.format.to_string(),
            width: n.width,
            height: n.height,
            fps: n.fps(),
        }
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        close_quietly(self.live.take());
    }
}

/// Drops a stream and device, containing the v4l crate's panic on a failing STREAMOFF.
fn close_quietly(live: Option<Live>) {
    if let Some(live) = live
        && std::panic::catch_unwind(AssertUnwindSafe(|| drop(live))).is_err()
    {
        tracing::warn!("closing the camera failed");
    }
}

/// Opens, checks, negotiates and allocates buffers.
fn open_live(config: &CameraConfig) -> Result<(Live, Negotiated), CaptureError> {
    let path = config.device.as_path();
    let device = Device::with_path(path).map_err(|e| CaptureError::from_io(path, "opening", e))?;
    let caps = device
        .query_caps()
        .map_err(|e| CaptureError::from_io(path, "querying capabilities", e))?;
    if !caps.capabilities.contains(CapabilityFlags::VIDEO_CAPTURE)
        || !caps.capabilities.contains(CapabilityFlags::STREAMING)
    {
        return Err(CaptureError::NotCapture {
            path: path.to_path_buf(),
            card: caps.card,
        });
    }
    let format = choose_format(&device, config)?;
    let granted = set_format(&device, path, format, config)?;
    let interval = set_interval(&device, config.fps);
    let mut stream = Stream::with_buffers(&device, Type::VideoCapture, config.buffers.max(1))
        .map_err(|e| CaptureError::from_io(path, "allocating capture buffers", e))?;
    stream.set_timeout(config.timeout);
    let negotiated = Negotiated {
        device: path.to_path_buf(),
        card: caps.card,
        driver: caps.driver,
        format,
        width: granted.width,
        height: granted.height,
        stride: granted.stride,
        interval,
    };
    Ok((
        Live {
            stream,
            _device: device,
        },
        negotiated,
    ))
}

/// Formats in order of preference for a frame of `width` x `height`.
pub fn preference(width: u32, height: u32) -> [PixelFormat; 4] {
    use PixelFormat::*;
    if u64::from(width) * u64::from(height) > LARGE_FRAME_PIXELS {
        [Mjpeg, Yuyv, Rgb24, Grey]
    } else {
        [Yuyv, Mjpeg, Rgb24, Grey]
    }
}

/// Picks the pixel format: the one asked for, else the most preferred format that
/// reaches the requested rate at the nearest size, else the fastest.
fn choose_format(device: &Device, config: &CameraConfig) -> Result<PixelFormat, CaptureError> {
    let path = &config.device;
    let offered: Vec<[u8; 4]> = device
        .enum_formats()
        .map_err(|e| CaptureError::from_io(path, "listing pixel formats", e))?
        .iter()
        .map(|d| d.fourcc.repr)
        .collect();
    let unsupported = |requested: Option<PixelFormat>| CaptureError::UnsupportedFormat {
        path: path.clone(),
        requested: requested.map(|f| f.to_string()),
        offered: offered
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect(),
    };
    if let Some(wanted) = config.format {
        return if offered.contains(&wanted.fourcc()) {
            Ok(wanted)
        } else {
            Err(unsupported(Some(wanted)))
        };
    }
    let candidates: Vec<PixelFormat> = preference(config.width, config.height)
        .into_iter()
        .filter(|f| offered.contains(&f.fourcc()))
        .collect();
    let rates: Vec<(PixelFormat, Option<f64>)> = candidates
        .iter()
        .map(|&f| {
            let fourcc = FourCC::new(&f.fourcc());
            let size = nearest_size(device, fourcc, config.width, config.height);
            (f, size.and_then(|(w, h)| max_fps(device, fourcc, w, h)))
        })
        .collect();
    pick_by_rate(&rates, f64::from(config.fps)).ok_or_else(|| unsupported(None))
}

/// The first candidate reaching `fps` (or of unknown rate); else the fastest; else the first.
pub fn pick_by_rate(candidates: &[(PixelFormat, Option<f64>)], fps: f64) -> Option<PixelFormat> {
    let reaches = |rate: Option<f64>| rate.is_none_or(|r| r >= fps * 0.95);
    candidates
        .iter()
        .find(|(_, rate)| reaches(*rate))
        .or_else(|| {
            candidates
                .iter()
                .max_by(|a, b| a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)))
        })
        .map(|(f, _)| *f)
}

/// The frame size the device offers nearest to the request (None if it will not say).
fn nearest_size(device: &Device, fourcc: FourCC, width: u32, height: u32) -> Option<(u32, u32)> {
    let sizes = device.enum_framesizes(fourcc).ok()?;
    let options: Vec<(u32, u32)> = sizes
        .into_iter()
        .map(|s| match s.size {
            FrameSizeEnum::Discrete(d) => (d.width, d.height),
            FrameSizeEnum::Stepwise(s) => (
                snap(width, s.min_width, s.max_width, s.step_width),
                snap(height, s.min_height, s.max_height, s.step_height),
            ),
        })
        .collect();
    options
        .into_iter()
        .min_by_key(|&(w, h)| width.abs_diff(w) + height.abs_diff(h))
}

/// `value` clamped to `min..=max` and rounded down to a step from `min`.
pub fn snap(value: u32, min: u32, max: u32, step: u32) -> u32 {
    let clamped = value.clamp(min, max.max(min));
    let step = step.max(1);
    min + (clamped - min) / step * step
}

/// The highest rate the device offers for this format and size.
fn max_fps(device: &Device, fourcc: FourCC, width: u32, height: u32) -> Option<f64> {
    device
        .enum_frameintervals(fourcc, width, height)
        .ok()?
        .into_iter()
        .filter_map(|i| match i.interval {
            FrameIntervalEnum::Discrete(f) => fraction_fps(f),
            FrameIntervalEnum::Stepwise(s) => fraction_fps(s.min),
        })
        .max_by(f64::total_cmp)
}

/// Frames per second of a frame interval in seconds.
pub fn fraction_fps(interval: Fraction) -> Option<f64> {
    (interval.numerator > 0 && interval.denominator > 0)
        .then(|| f64::from(interval.denominator) / f64::from(interval.numerator))
}

/// Sets format and nearest size; fails if the driver swaps the format.
fn set_format(
    device: &Device,
    path: &Path,
    format: PixelFormat,
    config: &CameraConfig,
) -> Result<Format, CaptureError> {
    let fourcc = FourCC::new(&format.fourcc());
    let (width, height) = nearest_size(device, fourcc, config.width, config.height)
        .unwrap_or((config.width, config.height));
    let granted = device
        .set_format(&Format::new(width, height, fourcc))
        .map_err(|e| CaptureError::from_io(path, "setting the pixel format", e))?;
    if granted.fourcc != fourcc {
        return Err(CaptureError::UnsupportedFormat {
            path: path.to_path_buf(),
            requested: Some(format.to_string()),
            offered: vec![String::from_utf8_lossy(&granted.fourcc.repr).into_owned()],
        });
    }
    Ok(granted)
}

/// Asks for `fps` and returns the interval the driver granted (None if it has no rate control).
fn set_interval(device: &Device, fps: u32) -> Option<(u32, u32)> {
    let granted = device
        .set_params(&Parameters::new(Fraction::new(1, fps.max(1))))
        .or_else(|_| device.params())
        .ok()?;
    let i = granted.interval;
    (i.numerator > 0 && i.denominator > 0).then_some((i.numerator, i.denominator))
}

/// Turns one dequeued buffer (`bytesused` of it) into a frame, or a reason to skip it.
fn decode_buffer(n: &Negotiated, buf: &[u8], meta: &Metadata, sequence: u64) -> Grab {
    if meta.flags.contains(BufferFlags::ERROR) {
        return Grab::Skipped(format!("frame {sequence} flagged as corrupt by the driver"));
    }
    let used = usable_bytes(meta.bytesused, buf.len(), n.format);
    let timestamp = driver_timestamp(meta.flags, meta.timestamp.into());
    match convert::to_rgb_strided(n.format, n.width, n.height, n.stride as usize, &buf[..used]) {
        Ok(image) => Grab::Frame(Frame {
            image,
            sequence,
            timestamp,
        }),
        Err(err) => Grab::Skipped(skip_reason(sequence, &err)),
    }
}

/// Counts sequence gaps as dropped frames and returns the frame's running
/// sequence number, never below `floor` (one past the last delivered frame):
/// a driver that numbers two buffers alike (vivid does when its thread runs
/// late) still gives frames rising, unique numbers.
fn account_sequence(
    stats: &mut SourceStats,
    last: &mut Option<u32>,
    sequence: u32,
    base: u64,
    floor: u64,
) -> u64 {
    if let Some(prev) = *last {
        let gap = sequence.wrapping_sub(prev);
        // A backwards jump (driver restart) is not a drop.
        if gap > 1 && gap < u32::MAX / 2 {
            stats.dropped += u64::from(gap - 1);
        }
    }
    *last = Some(sequence);
    (base + u64::from(sequence)).max(floor)
}

/// Bytes of the buffer holding the frame: `bytesused`, or the whole buffer for a raw
/// format when the driver leaves it at 0.
fn usable_bytes(bytesused: u32, length: usize, format: PixelFormat) -> usize {
    match (bytesused as usize).min(length) {
        0 if format != PixelFormat::Mjpeg => length,
        used => used,
    }
}

/// The driver's capture time when it is on CLOCK_MONOTONIC, else now.
fn driver_timestamp(flags: BufferFlags, stamp: Duration) -> Duration {
    let monotonic = (flags & BufferFlags::TIMESTAMP_MASK) == BufferFlags::TIMESTAMP_MONOTONIC
        && !stamp.is_zero();
    if monotonic { stamp } else { monotonic_now() }
}

fn skip_reason(sequence: u64, err: &ConvertError) -> String {
    format!("frame {sequence}: {err}")
}

/// Errors after which reopening the device may help: gone, I/O error, stalled.
fn is_recoverable(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::TimedOut
        || matches!(
            err.raw_os_error(),
            Some(libc::ENODEV | libc::ENXIO | libc::EIO | libc::EPIPE | libc::ESHUTDOWN)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            attempts: 5,
            first: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let delays: Vec<u128> = (0..5).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        assert_eq!(b.delay(200), Duration::from_millis(500));
    }

    #[test]
    fn large_frames_prefer_mjpeg() {
        assert_eq!(preference(640, 480)[0], PixelFormat::Yuyv);
        assert_eq!(preference(1280, 720)[0], PixelFormat::Mjpeg);
    }

    #[test]
    fn rate_decides_between_formats() {
        use PixelFormat::*;
        // YUYV only reaches 10 fps at this size: MJPEG wins at 30 fps.
        let c = [(Yuyv, Some(10.0)), (Mjpeg, Some(30.0))];
        assert_eq!(pick_by_rate(&c, 30.0), Some(Mjpeg));
        assert_eq!(pick_by_rate(&c, 10.0), Some(Yuyv));
        // Nobody reaches 60: the fastest.
        assert_eq!(pick_by_rate(&c, 60.0), Some(Mjpeg));
        // Unknown rates are taken on trust, in order.
        assert_eq!(
            pick_by_rate(&[(Grey, None), (Yuyv, Some(30.0))], 30.0),
            Some(Grey)
        );
        assert_eq!(pick_by_rate(&[], 30.0), None);
    }

    #[test]
    fn stepwise_sizes_snap_to_the_grid() {
        assert_eq!(snap(641, 16, 1920, 8), 640);
        assert_eq!(snap(5000, 16, 1920, 8), 1920);
        assert_eq!(snap(1, 16, 1920, 8), 16);
        assert_eq!(snap(100, 16, 1920, 0), 100);
    }

    #[test]
    fn sequence_gaps_count_as_drops() {
        let mut stats = SourceStats::default();
        let mut last = None;
        let seqs: Vec<u64> = [0u32, 1, 4, 5, 9]
            .iter()
            .map(|&s| account_sequence(&mut stats, &mut last, s, 100, 0))
            .collect();
        assert_eq!(seqs, vec![100, 101, 104, 105, 109]);
        assert_eq!(stats.dropped, 5);
        // Restart at 0 is not a drop; wrap-around is one step.
        account_sequence(&mut stats, &mut last, 0, 0, 0);
        assert_eq!(stats.dropped, 5);
        let mut last = Some(u32::MAX);
        account_sequence(&mut stats, &mut last, 1, 0, 0);
        assert_eq!(stats.dropped, 6);
    }

    #[test]
    fn a_repeated_driver_sequence_still_gives_rising_frame_numbers() {
        let (mut stats, mut last, mut next) = (SourceStats::default(), None, 0);
        let mut out = Vec::new();
        for s in [0u32, 0, 1, 2, 4] {
            let n = account_sequence(&mut stats, &mut last, s, 0, next);
            next = n + 1;
            out.push(n);
        }
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        assert_eq!(stats.dropped, 1, "only the real gap 2 -> 4");
    }

    #[test]
    fn bytesused_bounds_the_frame() {
        assert_eq!(usable_bytes(33_000, 1_800_000, PixelFormat::Mjpeg), 33_000);
        assert_eq!(usable_bytes(0, 614_400, PixelFormat::Yuyv), 614_400);
        assert_eq!(usable_bytes(0, 614_400, PixelFormat::Mjpeg), 0);
        assert_eq!(usable_bytes(999_999, 10, PixelFormat::Grey), 10);
    }

    #[test]
    fn timestamps_fall_back_to_now_unless_monotonic() {
        let t = Duration::from_secs(5);
        assert_eq!(driver_timestamp(BufferFlags::TIMESTAMP_MONOTONIC, t), t);
        let t = Duration::from_nanos(1);
        assert_ne!(driver_timestamp(BufferFlags::TIMESTAMP_COPY, t), t);
        assert_ne!(
            driver_timestamp(BufferFlags::TIMESTAMP_MONOTONIC, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn recoverable_errors() {
        assert!(is_recoverable(&io::Error::from_raw_os_error(libc::ENODEV)));
        assert!(is_recoverable(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(is_recoverable(&io::Error::new(
            io::ErrorKind::TimedOut,
            "x"
        )));
        assert!(!is_recoverable(&io::Error::from_raw_os_error(libc::EINVAL)));
    }

    /// A camera in MJPEG mode with no device behind it, to feed buffers by hand.
    fn mjpeg_camera(width: u32, height: u32) -> Camera {
        Camera {
            config: CameraConfig::default(),
            live: None,
            negotiated: Negotiated {
                device: "/dev/video0".into(),
                card: "test".into(),
                driver: "test".into(),
                format: PixelFormat::Mjpeg,
                width,
                height,
                stride: 0,
                interval: Some((1, 30)),
            },
            stats: SourceStats::default(),
            last_sequence: None,
            sequence_base: 0,
            next_sequence: 0,
            consecutive_corrupt: 0,
        }
    }

    /// A real JPEG of a gradient, as an MJPEG camera would send it.
    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    /// Feeds `bytes` as the next buffer (in a larger mmap buffer, as drivers do).
    fn feed(
        camera: &mut Camera,
        bytes: &[u8],
        sequence: u32,
    ) -> Result<Option<Frame>, CaptureError> {
        let mut buffer = bytes.to_vec();
        buffer.resize(bytes.len() * 4 + 1024, 0xAB);
        let meta = Metadata {
            bytesused: bytes.len() as u32,
            flags: BufferFlags::TIMESTAMP_MONOTONIC,
            timestamp: v4l::Timestamp::new(100, 250),
            sequence,
            ..Metadata::default()
        };
        let seq = account_sequence(
            &mut camera.stats,
            &mut camera.last_sequence,
            sequence,
            0,
            camera.next_sequence,
        );
        let grab = decode_buffer(&camera.negotiated, &buffer, &meta, seq);
        camera.accept(grab)
    }

    #[test]
    fn mjpeg_frames_decode_and_corrupt_ones_are_skipped_and_counted() {
        let mut camera = mjpeg_camera(160, 120);
        let good = jpeg(160, 120);
        let frame = feed(&mut camera, &good, 0).unwrap().unwrap();
        assert_eq!(frame.image.dimensions(), (160, 120));
        assert_eq!(frame.timestamp, Duration::new(100, 250_000));
        // Truncated (lost packets), garbage, empty, another size: skipped, never a crash.
        assert!(
            feed(&mut camera, &good[..good.len() / 2], 1)
                .unwrap()
                .is_none()
        );
        assert!(feed(&mut camera, &[0x5A; 4000], 2).unwrap().is_none());
        assert!(feed(&mut camera, &[], 3).unwrap().is_none());
        assert!(feed(&mut camera, &jpeg(80, 60), 4).unwrap().is_none());
        let frame = feed(&mut camera, &good, 7).unwrap().unwrap();
        assert_eq!(frame.sequence, 7);
        let stats = camera.stats();
        assert_eq!((stats.frames, stats.corrupt, stats.dropped), (2, 4, 2));
    }

    #[test]
    fn an_mjpeg_stream_of_nothing_but_corrupt_frames_is_an_error() {
        let mut camera = mjpeg_camera(64, 48);
        let good = jpeg(64, 48);
        let cut = &good[..good.len() - 200];
        for n in 0..MAX_CONSECUTIVE_CORRUPT - 1 {
            assert!(feed(&mut camera, cut, n).unwrap().is_none());
        }
        let err = feed(&mut camera, cut, 99).unwrap_err();
        assert!(
            matches!(err, CaptureError::CorruptStream { count: 60, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("60 undecodable frames in a row"),
            "{err}"
        );
    }

    #[test]
    fn opening_a_missing_device_names_it() {
        let config = CameraConfig {
            device: "/dev/video-signtop-missing".into(),
            ..CameraConfig::default()
        };
        let err = Camera::open(&config).err().unwrap();
        assert!(matches!(err, CaptureError::NoDevice { .. }), "{err}");
        assert!(err.to_string().contains("/dev/video-signtop-missing"));
    }
}
