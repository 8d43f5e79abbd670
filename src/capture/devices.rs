//! `signtop devices`: the V4L2 cameras on this machine, with their pixel
//! formats, frame sizes and frame rates, and which formats signtop can read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use v4l::capability::Flags as CapabilityFlags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use super::CaptureError;
use super::camera::fraction_fps;
use super::convert::PixelFormat;

/// Arguments of `signtop devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Describe only this device (default: every /dev/video*).
    #[arg(long, value_name = "PATH")]
    pub device: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One device node.
#[derive(Debug, Serialize)]
pub struct DeviceReport {
    /// Device node.
    pub path: PathBuf,
    /// The driver's name for the device.
    pub card: String,
    /// Driver module.
    pub driver: String,
    /// Bus location.
    pub bus: String,
    /// Whether it can capture video (metadata and output nodes cannot).
    pub capture: bool,
    /// Pixel formats offered.
    pub formats: Vec<FormatReport>,
}

/// One pixel format of a device.
#[derive(Debug, Serialize)]
pub struct FormatReport {
    /// Four-character code, e.g. "YUYV".
    pub fourcc: String,
    /// The driver's description.
    pub description: String,
    /// Whether signtop can convert it.
    pub supported: bool,
    /// Frame sizes offered.
    pub sizes: Vec<SizeReport>,
}

/// One frame size (or range of sizes) and its frame rates.
#[derive(Debug, Serialize)]
pub struct SizeReport {
    /// "640x480", or "16x16-1920x1080 step 2x2" for a range.
    pub size: String,
    /// Frame rates offered at this size (the largest size of a range), highest first.
    pub fps: Vec<f64>,
    /// A continuous range of rates, as (lowest, highest), when the driver gives one.
    pub fps_range: Option<(f64, f64)>,
}

/// Runs `signtop devices`.
pub fn run(args: &DevicesArgs) -> anyhow::Result<()> {
    let paths = match &args.device {
        Some(path) => vec![path.clone()],
        None => video_nodes(Path::new("/dev")).context("listing /dev")?,
    };
    if paths.is_empty() {
        anyhow::bail!(
            "no cameras found: /dev has no video* device nodes (is a camera plugged in and its driver loaded?)"
        );
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for path in &paths {
        match describe(path) {
            Ok(report) => reports.push(report),
            Err(err) if args.device.is_some() => return Err(err.into()),
            Err(err) => failures.push(err.to_string()),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", render(&reports));
        for failure in &failures {
            println!("{failure}");
        }
    }
    if !reports.iter().any(|r| r.capture) {
        anyhow::bail!("no video capture device found among {} nodes", paths.len());
    }
    Ok(())
}

/// `/dev/videoN` nodes in `dev`, in number order.
pub fn video_nodes(dev: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir(dev)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let number = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    nodes.sort();
    Ok(nodes.into_iter().map(|(_, path)| path).collect())
}

/// Queries one device: capabilities, formats, sizes and rates.
pub fn describe(path: &Path) -> Result<DeviceReport, CaptureError> {
    let device = Device::with_path(path).map_err(|e| CaptureError::from_io(path, "opening", e))?;
    let caps = device
        .query_caps()
        .map_err(|e| CaptureError::from_io(path, "querying capabilities", e))?;
    let capture = caps.capabilities.contains(CapabilityFlags::VIDEO_CAPTURE);
    let formats = if capture {
        device
            .enum_formats()
            .map_err(|e| CaptureError::from_io(path, "listing pixel formats", e))?
            .into_iter()
            .map(|d| FormatReport {
                fourcc: String::from_utf8_lossy(&d.fourcc.repr).into_owned(),
                description: d.description,
                supported: PixelFormat::from_fourcc(d.fourcc.repr).is_some(),
                sizes: sizes(&device, d.fourcc),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(DeviceReport {
        path: path.to_path_buf(),
        card: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        capture,
        formats,
    })
}

fn sizes(device: &Device, fourcc: FourCC) -> Vec<SizeReport> {
    let Ok(sizes) = device.enum_framesizes(fourcc) else {
        return Vec::new();
    };
    sizes
        .into_iter()
        .map(|s| {
            let (size, (w, h)) = match s.size {
                FrameSizeEnum::Discrete(d) => {
                    (format!("{}x{}", d.width, d.height), (d.width, d.height))
                }
                FrameSizeEnum::Stepwise(s) => (
                    format!(
                        "{}x{}-{}x{} step {}x{}",
                        s.min_width,
                        s.min_height,
                        s.max_width,
                        s.max_height,
                        s.step_width,
                        s.step_height
                    ),
                    (s.max_width, s.max_height),
                ),
            };
            let (fps, fps_range) = rates(device, fourcc, w, h);
            SizeReport {
                size,
                fps,
                fps_range,
            }
        })
        .collect()
}

fn rates(
    device: &Device,
    fourcc: FourCC,
    width: u32,
    height: u32,
) -> (Vec<f64>, Option<(f64, f64)>) {
    let Ok(intervals) = device.enum_frameintervals(fourcc, width, height) else {
        return (Vec::new(), None);
    };
    let mut fps = Vec::new();
    let mut range = None;
    for interval in intervals {
        match interval.interval {
            FrameIntervalEnum::Discrete(f) => fps.extend(fraction_fps(f)),
            FrameIntervalEnum::Stepwise(s) => {
                range = fraction_fps(s.max).zip(fraction_fps(s.min));
            }
        }
    }
    fps.sort_by(|a, b| b.total_cmp(a));
    fps.dedup();
    (fps, range)
}

/// The text listing.
pub fn render(reports: &[DeviceReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "{}  {} ({}, {})",
            r.path.display(),
            r.card,
            r.driver,
            r.bus
        );
        if !r.capture {
            let _ = writeln!(out, "  not a video capture device");
            continue;
        }
        for f in &r.formats {
            let note = if f.supported {
                ""
            } else {
                "  (signtop cannot read this format)"
            };
            let _ = writeln!(out, "  {}  {}{note}", f.fourcc, f.description);
            for s in &f.sizes {
                let _ = writeln!(out, "    {:<12} {}", s.size, rates_text(s));
            }
        }
    }
    out
}

fn rates_text(s: &SizeReport) -> String {
    let mut parts: Vec<String> = s.fps.iter().map(|f| trim_fps(*f)).collect();
    if let Some((lo, hi)) = s.fps_range {
        parts.push(format!("{}-{}", trim_fps(lo), trim_fps(hi)));
    }
    if parts.is_empty() {
        "(rates not reported)".to_owned()
    } else {
        format!("{} fps", parts.join(", "))
    }
}

/// 30 -> "30", 29.97 -> "29.97".
fn trim_fps(fps: f64) -> String {
    let text = format!("{fps:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_nodes_are_listed_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["video10", "video2", "video0", "videox", "vbi0", "video1a"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<String> = video_nodes(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["video0", "video2", "video10"]);
    }

    #[test]
    fn render_marks_unsupported_formats_and_non_capture_nodes() {
        let reports = vec![
            DeviceReport {
                path: "/dev/video0".into(),
                card: "Cam".into(),
                driver: "uvcvideo".into(),
                bus: "usb-1".into(),
                capture: true,
                formats: vec![
                    FormatReport {
                        fourcc: "MJPG".into(),
                        description: "Motion-JPEG".into(),
                        supported: true,
                        sizes: vec![SizeReport {
                            size: "1280x720".into(),
                            fps: vec![30.0, 29.97, 15.0],
                            fps_range: None,
                        }],
                    },
                    FormatReport {
                        fourcc: "H264".into(),
                        description: "H.264".into(),
                        supported: false,
                        sizes: vec![],
                    },
                ],
            },
            DeviceReport {
                path: "/dev/video1".into(),
                card: "Cam".into(),
                driver: "uvcvideo".into(),
                bus: "usb-1".into(),
                capture: false,
                formats: vec![],
            },
        ];
        let text = render(&reports);
        assert_eq!(
            text,
            "/dev/video0  Cam (uvcvideo, usb-1)\n  MJPG  Motion-JPEG\n    1280x720     30, 29.97, 15 fps\n  H264  H.264  (signtop cannot read this format)\n/dev/video1  Cam (uvcvideo, usb-1)\n  not a video capture device\n"
        );
    }
}
