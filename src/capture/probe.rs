//! `signtop vm-probe` (hidden): drives the camera source against the kernel's
//! `vivid` test driver and prints one `PROBE {json}` line per check, for the
//! VM test (`tests/vm_vivid.rs`) to judge. Uses vivid's error-injection
//! controls to drop frames, flag a buffer as corrupt and unplug the device.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use v4l::control::{Control, Value as ControlValue};

use super::convert::PixelFormat;
use super::{
    Backoff, Camera, CameraConfig, CaptureError, CaptureThread, Frame, Received, Source,
    SourceStats, devices,
};

/// vivid's private control class base (drivers/media/test-drivers/vivid/vivid-ctrls.c).
const VIVID_CID_BASE: u32 = 0x00f0_f000;
/// Integer control: percentage of buffers vivid drops.
const VIVID_CID_PERC_DROPPED: u32 = VIVID_CID_BASE + 64;
/// Button: behave as if the device was unplugged, until every handle is closed.
const VIVID_CID_DISCONNECT: u32 = VIVID_CID_BASE + 65;
/// Button: flag the next buffer with V4L2_BUF_FLAG_ERROR.
const VIVID_CID_DQBUF_ERROR: u32 = VIVID_CID_BASE + 66;

/// Arguments of `signtop vm-probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The vivid capture device.
    #[arg(long, default_value = "/dev/video0")]
    pub device: PathBuf,
    /// Frames captured per pixel format.
    #[arg(long, default_value_t = 30)]
    pub frames: usize,
    /// Requested width.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Requested height.
    #[arg(long, default_value_t = 360)]
    pub height: u32,
    /// Requested frame rate.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Only unplug the device (vivid's Disconnect) and exit: it stays
    /// unplugged while any other handle to it is open.
    #[arg(long)]
    pub unplug: bool,
}

/// Runs every check and prints its result; only a failure to list the device
/// is an error. With `--unplug`, only unplugs the device.
pub fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    if args.unplug {
        drop(press(args, VIVID_CID_DISCONNECT, ControlValue::None)?);
        println!("PROBE-UNPLUGGED");
        return Ok(());
    }
    let report = devices::describe(&args.device)?;
    let formats: Vec<PixelFormat> = report
        .formats
        .iter()
        .filter_map(|f| PixelFormat::from_fourcc(f.fourcc.as_bytes().try_into().ok()?))
        .collect();
    emit(&json!({
        "kind": "device",
        "card": report.card,
        "driver": report.driver,
        "offered": report.formats.iter().map(|f| &f.fourcc).collect::<Vec<_>>(),
        "supported": formats.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }));
    for format in formats {
        emit(&checked("capture", || capture_format(args, format)));
    }
    emit(&checked("missing", || missing_device(args)));
    emit(&checked("busy", || busy_device(args)));
    emit(&checked("denied", || permission_denied(args)));
    emit(&checked("unsupported", || unsupported_format(args)));
    emit(&checked("inject", || injected_faults(args)));
    emit(&checked("reconnect", || reconnect(args)));
    emit(&checked("gone", || gone(args)));
    emit(&checked("newest", || newest_frame(args)));
    println!("PROBE-DONE");
    Ok(())
}

fn emit(value: &Value) {
    println!("PROBE {value}");
}

/// Runs one check; an unexpected error becomes `{"kind":..., "error":...}`.
fn checked(kind: &str, check: impl FnOnce() -> anyhow::Result<Value>) -> Value {
    let mut value = check().unwrap_or_else(|err| json!({ "error": format!("{err:#}") }));
    value["kind"] = json!(kind);
    value
}

fn config(args: &ProbeArgs, format: PixelFormat) -> CameraConfig {
    CameraConfig {
        device: args.device.clone(),
        width: args.width,
        height: args.height,
        fps: args.fps,
        format: Some(format),
        ..CameraConfig::default()
    }
}

/// A short backoff so the disconnect checks finish quickly.
fn quick_backoff(attempts: u32) -> Backoff {
    Backoff {
        attempts,
        first: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

fn grab(source: &mut dyn Source, n: usize) -> anyhow::Result<Vec<Frame>> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        match source.next_frame()? {
            Some(frame) => frames.push(frame),
            None => anyhow::bail!("the camera ended"),
        }
    }
    Ok(frames)
}

fn sequences(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(|f| f.sequence).collect()
}

fn stats_json(stats: SourceStats) -> Value {
    json!({
        "frames": stats.frames,
        "dropped": stats.dropped,
        "corrupt": stats.corrupt,
        "reconnects": stats.reconnects,
    })
}

/// Sets a vivid control through a new handle, which is returned open.
fn press(args: &ProbeArgs, id: u32, value: ControlValue) -> anyhow::Result<v4l::Device> {
    let device = v4l::Device::with_path(&args.device)?;
    device.set_control(Control { id, value })?;
    Ok(device)
}

/// Captures `frames` frames in one format: sizes, sequences, timestamps, colours.
fn capture_format(args: &ProbeArgs, format: PixelFormat) -> anyhow::Result<Value> {
    let started = Instant::now();
    let mut camera = Camera::open(&config(args, format))?;
    let negotiated = camera.negotiated().clone();
    let frames = grab(&mut camera, args.frames)?;
    let sizes_ok = frames
        .iter()
        .all(|f| (f.width(), f.height()) == (negotiated.width, negotiated.height));
    Ok(json!({
        "format": format.to_string(),
        "width": negotiated.width,
        "height": negotiated.height,
        "stride": negotiated.stride,
        "fps": negotiated.fps(),
        "info": camera.info().to_string(),
        "sizes_ok": sizes_ok,
        "sequences": sequences(&frames),
        "timestamps_us": frames.iter().map(|f| f.timestamp.as_micros() as u64).collect::<Vec<_>>(),
        "bars": frames.first().map(|f| bar_means(&f.image)),
        "stats": stats_json(camera.stats()),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
}

/// Mean RGB of each of 8 vertical bars, over the lower half (vivid's text sits on top).
pub fn bar_means(image: &image::RgbImage) -> Vec<[u8; 3]> {
    let (w, h) = image.dimensions();
    (0..8)
        .map(|bar| {
            let (x0, x1) = (bar * w / 8 + w / 32, (bar + 1) * w / 8 - w / 32);
            let mut sum = [0u64; 3];
            let mut n = 0u64;
            for y in h / 2..h * 7 / 8 {
                for x in x0..x1 {
                    let p = image.get_pixel(x, y).0;
                    for c in 0..3 {
                        sum[c] += u64::from(p[c]);
                    }
                    n += 1;
                }
            }
            sum.map(|s| (s / n.max(1)) as u8)
        })
        .collect()
}

fn missing_device(args: &ProbeArgs) -> anyhow::Result<Value> {
    let config = CameraConfig {
        device: "/dev/video99".into(),
        ..config(args, PixelFormat::Yuyv)
    };
    Ok(match Camera::open(&config) {
        Ok(_) => json!({ "opened": true }),
        Err(err) => {
            json!({ "no_device": matches!(err, CaptureError::NoDevice { .. }), "message": err.to_string() })
        }
    })
}

/// A second open while the first camera streams must report the device busy.
fn busy_device(args: &ProbeArgs) -> anyhow::Result<Value> {
    let mut first = Camera::open(&config(args, PixelFormat::Yuyv))?;
    grab(&mut first, 1)?;
    Ok(match Camera::open(&config(args, PixelFormat::Yuyv)) {
        Ok(_) => json!({ "opened": true }),
        Err(err) => {
            json!({ "busy": matches!(err, CaptureError::Busy { .. }), "message": err.to_string() })
        }
    })
}

/// Insisting on MJPEG, which vivid does not offer, must name what it does offer.
fn unsupported_format(args: &ProbeArgs) -> anyhow::Result<Value> {
    Ok(match Camera::open(&config(args, PixelFormat::Mjpeg)) {
        Ok(_) => json!({ "opened": true }),
        Err(err) => json!({
            "unsupported": matches!(err, CaptureError::UnsupportedFormat { .. }),
            "message": err.to_string(),
        }),
    })
}

/// A user without access to the device node gets the permission error and a
/// non-zero exit: `signtop devices` is run again as uid/gid 1000 on a node made
/// root-only (root itself bypasses file modes), then the mode is put back.
fn permission_denied(args: &ProbeArgs) -> anyhow::Result<Value> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let before = std::fs::metadata(&args.device)?.permissions();
    std::fs::set_permissions(&args.device, std::fs::Permissions::from_mode(0o600))?;
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["--log-file", "/dev/null", "devices", "--device"])
        .arg(&args.device)
        .uid(1000)
        .gid(1000)
        .output();
    std::fs::set_permissions(&args.device, before)?;
    let output = output?;
    Ok(json!({
        "exit": output.status.code(),
        "stderr": String::from_utf8_lossy(&output.stderr),
    }))
}

/// A driver-flagged bad buffer is skipped and counted; dropped buffers show as sequence gaps.
fn injected_faults(args: &ProbeArgs) -> anyhow::Result<Value> {
    let mut camera = Camera::open(&config(args, PixelFormat::Yuyv))?;
    grab(&mut camera, 3)?;
    let control = press(args, VIVID_CID_DQBUF_ERROR, ControlValue::None)?;
    let after_error = grab(&mut camera, 3)?;
    let corrupt = camera.stats().corrupt;
    control.set_control(Control {
        id: VIVID_CID_PERC_DROPPED,
        value: ControlValue::Integer(50),
    })?;
    let before = camera.stats().dropped;
    let while_dropping = grab(&mut camera, 20)?;
    let dropped = camera.stats().dropped - before;
    control.set_control(Control {
        id: VIVID_CID_PERC_DROPPED,
        value: ControlValue::Integer(0),
    })?;
    Ok(json!({
        "corrupt": corrupt,
        "sequences_after_error": sequences(&after_error),
        "dropped": dropped,
        "sequences_while_dropping": sequences(&while_dropping),
        "stats": stats_json(camera.stats()),
    }))
}

/// Unplug (vivid's Disconnect) while streaming: the camera reopens and keeps going.
fn reconnect(args: &ProbeArgs) -> anyhow::Result<Value> {
    let mut camera = Camera::open(&CameraConfig {
        backoff: quick_backoff(20),
        ..config(args, PixelFormat::Yuyv)
    })?;
    let before = grab(&mut camera, 3)?;
    drop(press(args, VIVID_CID_DISCONNECT, ControlValue::None)?);
    let started = Instant::now();
    let after = grab(&mut camera, 5)?;
    Ok(json!({
        "sequences_before": sequences(&before),
        "sequences_after": sequences(&after),
        "recovery_ms": started.elapsed().as_millis() as u64,
        "stats": stats_json(camera.stats()),
    }))
}

/// Unplugged for good (a handle keeps vivid disconnected): a clear error after the retries.
fn gone(args: &ProbeArgs) -> anyhow::Result<Value> {
    let mut camera = Camera::open(&CameraConfig {
        backoff: quick_backoff(3),
        ..config(args, PixelFormat::Yuyv)
    })?;
    grab(&mut camera, 2)?;
    let control = press(args, VIVID_CID_DISCONNECT, ControlValue::None)?;
    let started = Instant::now();
    let mut delivered = 0;
    let result = loop {
        match camera.next_frame() {
            Ok(Some(_)) if delivered < 100 => delivered += 1,
            Ok(_) => break json!({ "ended": false, "delivered": delivered }),
            Err(err) => {
                break json!({
                    "disconnected": matches!(err, CaptureError::Disconnected { .. }),
                    "message": err.to_string(),
                    "delivered": delivered,
                    "gave_up_ms": started.elapsed().as_millis() as u64,
                });
            }
        }
    };
    drop(camera);
    drop(control);
    Ok(result)
}

/// A consumer slower than the camera gets the newest frame; the rest are counted as replaced.
fn newest_frame(args: &ProbeArgs) -> anyhow::Result<Value> {
    let camera = Camera::open(&config(args, PixelFormat::Yuyv))?;
    let thread = CaptureThread::spawn(Box::new(camera))?;
    let mut seen = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        match thread.recv_timeout(Duration::from_secs(5))? {
            Received::Frame(frame) => seen.push(frame.sequence),
            other => anyhow::bail!("expected a frame, got {other:?}"),
        }
    }
    let stats = thread.stats();
    thread.stop();
    Ok(json!({
        "sequences": seen,
        "captured": stats.captured,
        "delivered": stats.delivered,
        "replaced": stats.replaced,
    }))
}
