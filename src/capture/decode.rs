//! Decoding media into RGB frames: a still image, an animated GIF, a folder of
//! images (sorted by name) or a video (through an `ffmpeg` child process).
//!
//! Shared by `signtop landmarks`, `signtop bench` and the replay source, so every
//! command reads inputs the same way.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use image::codecs::gif::GifDecoder;
use image::{AnimationDecoder, Frames, ImageDecoder, RgbImage};

/// File name endings read as still images.
const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"];

/// A GIF frame delay this short is treated as a browser would: 100 ms.
const MIN_GIF_DELAY_MS: f64 = 20.0;

/// Errors while opening or decoding media.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The path does not exist.
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    /// The file or folder could not be read.
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image or GIF could not be decoded.
    #[error("decoding {path}")]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    /// A folder with no image files in it.
    #[error("{0}: the folder holds no images (png, jpg, jpeg, bmp, webp, tif, gif)")]
    EmptyFolder(PathBuf),
    /// The input decoded to zero frames.
    #[error("{0}: holds no frames")]
    NoFrames(PathBuf),
    /// A helper program for videos is not installed.
    #[error(
        "decoding the video {path} needs `{program}`, which was not found: install ffmpeg (e.g. `apt-get install ffmpeg`)"
    )]
    MissingProgram { program: String, path: PathBuf },
    /// ffprobe could not make sense of the file.
    #[error("{path} is not a video ffprobe can read: {message}")]
    Probe { path: PathBuf, message: String },
    /// ffmpeg failed while decoding.
    #[error("ffmpeg failed while decoding {path}: {message}")]
    Ffmpeg { path: PathBuf, message: String },
}

/// What to decode: a path, or a clip built into the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaInput {
    /// A still image, animated GIF, folder of images or video on disk.
    Path(PathBuf),
    /// An animated GIF held in memory; `name` stands for its path in
    /// messages and descriptions.
    Gif {
        /// What to call it.
        name: PathBuf,
        /// The GIF file's bytes.
        bytes: &'static [u8],
    },
}

impl MediaInput {
    /// The path, or the name that stands for it.
    pub fn name(&self) -> &Path {
        match self {
            MediaInput::Path(path) => path,
            MediaInput::Gif { name, .. } => name,
        }
    }
}

/// `From` a path in each form a caller may hold.
macro_rules! media_input_from_paths {
    ($($path:ty),*) => {$(
        impl From<$path> for MediaInput {
            fn from(path: $path) -> MediaInput {
                MediaInput::Path(path.into())
            }
        }
    )*};
}
media_input_from_paths!(PathBuf, &PathBuf, &Path, &str, String);

/// What kind of input a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// One still image.
    Image,
    /// An animated (or single-frame) GIF.
    Gif,
    /// A folder of images, read in name order.
    Folder,
    /// A video decoded by ffmpeg.
    Video,
}

/// What is known about an input before its frames are read.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// The path opened.
    pub path: PathBuf,
    /// How it is decoded.
    pub kind: MediaKind,
    /// Width of the first frame.
    pub width: u32,
    /// Height of the first frame.
    pub height: u32,
    /// Frames per second, when the input says (GIF delays, video streams).
    pub fps: Option<f64>,
    /// Number of frames, when known up front.
    pub frames: Option<usize>,
}

/// The external programs used for videos (named so tests can point elsewhere).
#[derive(Clone, Debug)]
pub struct Tools {
    pub ffmpeg: String,
    pub ffprobe: String,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
        }
    }
}

/// Reads frames, in order, from any supported input.
pub struct MediaReader {
    info: MediaInfo,
    frames: FrameSource,
}

enum FrameSource {
    Still(Option<RgbImage>),
    Gif {
        first: Option<RgbImage>,
        rest: Frames<'static>,
    },
    Folder(std::vec::IntoIter<PathBuf>),
    Video(FfmpegStream),
}

impl MediaReader {
    /// Opens `path`, deciding by what it is: folder, GIF, image, or else a video.
    pub fn open(path: &Path) -> Result<MediaReader, DecodeError> {
        Self::open_with(path, &Tools::default())
    }

    /// Opens a path or a built-in clip.
    pub fn open_input(input: &MediaInput) -> Result<MediaReader, DecodeError> {
        match input {
            MediaInput::Path(path) => MediaReader::open(path),
            MediaInput::Gif { name, bytes } => gif_reader(name, std::io::Cursor::new(*bytes)),
        }
    }

    /// Like [`MediaReader::open`], with the video programs named.
    pub fn open_with(path: &Path, tools: &Tools) -> Result<MediaReader, DecodeError> {
        let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DecodeError::NotFound(path.to_path_buf()),
            _ => DecodeError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        if meta.is_dir() {
            return open_folder(path);
        }
        match extension(path).as_deref() {
            Some("gif") => open_gif(path),
            Some(ext) if IMAGE_EXTENSIONS.contains(&ext) => open_still(path),
            _ => open_video(path, tools),
        }
    }

    /// What the input is.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }
}

impl Iterator for MediaReader {
    type Item = Result<RgbImage, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = &self.info.path;
        match &mut self.frames {
            FrameSource::Still(image) => image.take().map(Ok),
            FrameSource::Gif { first, rest } => first.take().map(Ok).or_else(|| {
                rest.next().map(|frame| {
                    frame
                        .map(|f| image::DynamicImage::ImageRgba8(f.into_buffer()).to_rgb8())
                        .map_err(|source| DecodeError::Image {
                            path: path.clone(),
                            source,
                        })
                })
            }),
            FrameSource::Folder(files) => files.next().map(|file| decode_image(&file)),
            FrameSource::Video(stream) => stream.next_frame(path).transpose(),
        }
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

fn decode_image(path: &Path) -> Result<RgbImage, DecodeError> {
    image::open(path)
        .map(|img| img.to_rgb8())
        .map_err(|source| DecodeError::Image {
            path: path.to_path_buf(),
            source,
        })
}

fn open_still(path: &Path) -> Result<MediaReader, DecodeError> {
    let image = decode_image(path)?;
    Ok(MediaReader {
        info: MediaInfo {
            path: path.to_path_buf(),
            kind: MediaKind::Image,
            width: image.width(),
            height: image.height(),
            fps: None,
            frames: Some(1),
        },
        frames: FrameSource::Still(Some(image)),
    })
}

fn open_folder(path: &Path) -> Result<MediaReader, DecodeError> {
    let io_err = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_err)? {
        let file = entry.map_err(io_err)?.path();
        let is_image =
            extension(&file).is_some_and(|e| e == "gif" || IMAGE_EXTENSIONS.contains(&e.as_str()));
        if is_image && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    let first = files
        .first()
        .ok_or_else(|| DecodeError::EmptyFolder(path.to_path_buf()))?;
    let (width, height) = image::image_dimensions(first).map_err(|source| DecodeError::Image {
        path: first.clone(),
        source,
    })?;
    Ok(MediaReader {
        info: MediaInfo {
            path: path.to_path_buf(),
            kind: MediaKind::Folder,
            width,
            height,
            fps: None,
            frames: Some(files.len()),
        },
        frames: FrameSource::Folder(files.into_iter()),
    })
}

fn open_gif(path: &Path) -> Result<MediaReader, DecodeError> {
    let file = File::open(path).map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    gif_reader(path, BufReader::new(file))
}

/// The frames of the GIF read from `data`; `path` names it.
fn gif_reader(
    path: &Path,
    data: impl std::io::BufRead + std::io::Seek + 'static,
) -> Result<MediaReader, DecodeError> {
    let image_err = |source| DecodeError::Image {
        path: path.to_path_buf(),
        source,
    };
    let decoder = GifDecoder::new(data).map_err(image_err)?;
    let (width, height) = decoder.dimensions();
    let mut rest = decoder.into_frames();
    let first = rest
        .next()
        .ok_or_else(|| DecodeError::NoFrames(path.to_path_buf()))?
        .map_err(image_err)?;
    let (num, den) = first.delay().numer_denom_ms();
    let delay_ms = if den == 0 {
        0.0
    } else {
        f64::from(num) / f64::from(den)
    };
    // Browsers show very short delays as 100 ms; do the same.
    let delay_ms = if delay_ms < MIN_GIF_DELAY_MS {
        100.0
    } else {
        delay_ms
    };
    let fps = 1000.0 / delay_ms;
    let first = image::DynamicImage::ImageRgba8(first.into_buffer()).to_rgb8();
    Ok(MediaReader {
        info: MediaInfo {
            path: path.to_path_buf(),
            kind: MediaKind::Gif,
            width,
            height,
            fps: Some(fps),
            frames: None,
        },
        frames: FrameSource::Gif {
            first: Some(first),
            rest,
        },
    })
}

/// The first video stream as ffprobe describes it.
#[derive(Debug, serde::Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
}

#[derive(Debug, serde::Deserialize)]
struct ProbeStream {
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    nb_frames: Option<String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

impl ProbeStream {
    fn fps(&self) -> Option<f64> {
        [&self.avg_frame_rate, &self.r_frame_rate]
            .into_iter()
            .flatten()
            .find_map(|rate| parse_rate(rate))
    }

    /// ffmpeg turns rotated videos upright, so a quarter turn swaps width and height.
    fn quarter_turned(&self) -> bool {
        self.side_data_list.iter().any(|d| {
            d.get("rotation")
                .and_then(serde_json::Value::as_f64)
                .is_some_and(|r| (r.abs() - 90.0).abs() < 1.0 || (r.abs() - 270.0).abs() < 1.0)
        })
    }
}

fn parse_rate(rate: &str) -> Option<f64> {
    let (num, den) = rate.split_once('/').unwrap_or((rate, "1"));
    let (num, den): (f64, f64) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
    (num > 0.0 && den > 0.0).then(|| num / den)
}

fn spawn_error(err: std::io::Error, program: &str, path: &Path) -> DecodeError {
    if err.kind() == std::io::ErrorKind::NotFound {
        DecodeError::MissingProgram {
            program: program.to_string(),
            path: path.to_path_buf(),
        }
    } else {
        DecodeError::Io {
            path: PathBuf::from(program),
            source: err,
        }
    }
}

fn probe(path: &Path, tools: &Tools) -> Result<ProbeStream, DecodeError> {
    let output = Command::new(&tools.ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(e, &tools.ffprobe, path))?;
    let probe_err = |message: String| DecodeError::Probe {
        path: path.to_path_buf(),
        message,
    };
    if !output.status.success() {
        return Err(probe_err(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let parsed: ProbeOutput = serde_json::from_slice(&output.stdout)
        .map_err(|e| probe_err(format!("unexpected ffprobe output: {e}")))?;
    parsed
        .streams
        .into_iter()
        .next()
        .ok_or_else(|| probe_err("it has no video stream".into()))
}

fn open_video(path: &Path, tools: &Tools) -> Result<MediaReader, DecodeError> {
    let stream = probe(path, tools)?;
    let (Some(mut width), Some(mut height)) = (stream.width, stream.height) else {
        return Err(DecodeError::Probe {
            path: path.to_path_buf(),
            message: "the video stream has no size".into(),
        });
    };
    if stream.quarter_turned() {
        std::mem::swap(&mut width, &mut height);
    }
    let ffmpeg = FfmpegStream::spawn(path, tools, width, height)?;
    Ok(MediaReader {
        info: MediaInfo {
            path: path.to_path_buf(),
            kind: MediaKind::Video,
            width,
            height,
            fps: stream.fps(),
            frames: stream.nb_frames.as_deref().and_then(|n| n.parse().ok()),
        },
        frames: FrameSource::Video(ffmpeg),
    })
}

/// Asks for a pipe that holds a whole frame of `frame_bytes` (up to the
/// system's limit, 1 MiB by default): through the default 64 KiB one, ffmpeg
/// and the reader took turns 15 times a 640x480 frame. The pipe works at any
/// size, so a refusal is no error.
fn widen_pipe(pipe: &ChildStdout, frame_bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let size = libc::c_int::try_from(frame_bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ on a pipe this process owns changes only its
        // buffer's size.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (pipe, frame_bytes);
}

/// An ffmpeg child writing raw RGB24 frames to a pipe.
struct FfmpegStream {
    child: Child,
    stdout: ChildStdout,
    stderr: Arc<Mutex<String>>,
    width: u32,
    height: u32,
    finished: bool,
}

impl FfmpegStream {
    fn spawn(path: &Path, tools: &Tools, width: u32, height: u32) -> Result<Self, DecodeError> {
        let mut child = Command::new(&tools.ffmpeg)
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(e, &tools.ffmpeg, path))?;
        let stdout = child.stdout.take().ok_or_else(|| DecodeError::Ffmpeg {
            path: path.to_path_buf(),
            message: "no stdout pipe".into(),
        })?;
        widen_pipe(&stdout, width as usize * height as usize * 3);
        // Drain stderr on a thread so a chatty ffmpeg never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                if let Ok(mut s) = sink.lock() {
                    *s = text;
                }
            });
        }
        Ok(FfmpegStream {
            child,
            stdout,
            stderr,
            width,
            height,
            finished: false,
        })
    }

    fn next_frame(&mut self, path: &Path) -> Result<Option<RgbImage>, DecodeError> {
        if self.finished {
            return Ok(None);
        }
        let mut buf = vec![0u8; self.width as usize * self.height as usize * 3];
        match read_full(&mut self.stdout, &mut buf) {
            Ok(n) if n == buf.len() => Ok(RgbImage::from_raw(self.width, self.height, buf)),
            Ok(n) => {
                self.finished = true;
                self.finish(path, n)
            }
            Err(source) => {
                self.finished = true;
                Err(DecodeError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }

    /// At end of stream: a clean exit is the end of the video, anything else an error.
    fn finish(&mut self, path: &Path, partial: usize) -> Result<Option<RgbImage>, DecodeError> {
        let status = self.child.wait().map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let stderr = self
            .stderr
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if !status.success() {
            return Err(DecodeError::Ffmpeg {
                path: path.to_path_buf(),
                message: if stderr.is_empty() {
                    format!("exit status {status}")
                } else {
                    stderr
                },
            });
        }
        if partial != 0 {
            tracing::warn!(path = %path.display(), partial, "video ended inside a frame");
        }
        Ok(None)
    }
}

impl Drop for FfmpegStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COW: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/media/cow_correct.gif"
    );

    fn count_frames(reader: MediaReader) -> usize {
        reader.inspect(|f| assert!(f.is_ok(), "{f:?}")).count()
    }

    #[test]
    fn reads_every_frame_of_a_real_gif_with_its_rate() {
        let reader = MediaReader::open(Path::new(COW)).unwrap();
        let info = reader.info().clone();
        assert_eq!(info.kind, MediaKind::Gif);
        assert_eq!((info.width, info.height), (347, 196));
        assert_eq!(info.fps, Some(10.0));
        let frames: Vec<RgbImage> = reader.map(|f| f.unwrap()).collect();
        assert_eq!(frames.len(), 47);
        assert!(frames.iter().all(|f| f.dimensions() == (347, 196)));
        assert_ne!(frames[0], frames[20], "frames differ: the clip moves");
    }

    #[test]
    fn reads_a_folder_in_name_order_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, shade) in [("b.png", 200u8), ("a.png", 10), ("c.jpg", 100)] {
            RgbImage::from_pixel(8, 6, image::Rgb([shade; 3]))
                .save(dir.path().join(name))
                .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
        let reader = MediaReader::open(dir.path()).unwrap();
        assert_eq!(reader.info().frames, Some(3));
        let shades: Vec<u8> = reader.map(|f| f.unwrap().get_pixel(0, 0)[0]).collect();
        assert_eq!(shades[..2], [10, 200]);
        assert!((i32::from(shades[2]) - 100).abs() < 4, "jpeg is lossy");
    }

    #[test]
    fn a_still_image_is_one_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.PNG");
        RgbImage::new(4, 4)
            .save_with_format(&path, image::ImageFormat::Png)
            .unwrap();
        let reader = MediaReader::open(&path).unwrap();
        assert_eq!(reader.info().kind, MediaKind::Image);
        assert_eq!(count_frames(reader), 1);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = MediaReader::open(&dir.path().join("nope.png"))
            .err()
            .unwrap();
        assert!(matches!(missing, DecodeError::NotFound(_)), "{missing}");

        let corrupt = dir.path().join("corrupt.png");
        std::fs::write(&corrupt, b"\x89PNG garbage").unwrap();
        let err = MediaReader::open(&corrupt).err().unwrap();
        assert!(err.to_string().contains("corrupt.png"), "{err}");

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = MediaReader::open(&empty).err().unwrap();
        assert!(matches!(err, DecodeError::EmptyFolder(_)), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_pipe_from_ffmpeg_holds_a_whole_640x480_frame() {
        use std::os::fd::AsRawFd;
        let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
        let pipe = child.stdout.take().unwrap();
        let size =
            |pipe: &ChildStdout| unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let frame: usize = 640 * 480 * 3;
        let holds = |pipe: &ChildStdout| usize::try_from(size(pipe)).is_ok_and(|s| s >= frame);
        assert!(!holds(&pipe), "a pipe starts smaller");
        widen_pipe(&pipe, frame);
        assert!(holds(&pipe), "{}", size(&pipe));
        child.wait().unwrap();
    }

    #[test]
    fn a_video_without_ffmpeg_names_the_missing_program() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        std::fs::write(&clip, b"whatever").unwrap();
        let tools = Tools {
            ffmpeg: "signtop-no-such-ffmpeg".into(),
            ffprobe: "signtop-no-such-ffprobe".into(),
        };
        let err = MediaReader::open_with(&clip, &tools).err().unwrap();
        assert!(
            err.to_string().contains("`signtop-no-such-ffprobe`"),
            "{err}"
        );
        assert!(err.to_string().contains("install ffmpeg"), "{err}");
    }

    #[test]
    fn frame_rates_parse_like_ffprobe_writes_them() {
        assert_eq!(
            parse_rate("30000/1001").map(|r| (r * 100.0).round()),
            Some(2997.0)
        );
        assert_eq!(parse_rate("25"), Some(25.0));
        assert_eq!(parse_rate("0/0"), None);
    }
}
