//! Replay: a video, GIF, folder of images or still image (or the built-in
//! demo clip) as a frame source, paced at the clip's frame rate (or a given
//! one), or flat out for benchmarks; once, or looped until stopped.
//!
//! Decoding runs ahead on its own thread (the decoders are not `Send`, and
//! decoding overlaps pacing), handing frames over through a two-frame channel.

use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use image::RgbImage;

use super::decode::{DecodeError, MediaInfo, MediaInput, MediaKind, MediaReader};
use super::{CaptureError, Frame, Source, SourceInfo, SourceStats, monotonic_now};

/// The demo clip built into the binary (`models/demo/cow_correct.gif`, MIT,
/// from the SignPose repository: see `models/demo/README.md`).
pub const DEMO_CLIP: &[u8] = include_bytes!("../../models/demo/cow_correct.gif");

/// How the demo clip is named in descriptions and messages.
pub const DEMO_CLIP_NAME: &str = "demo cow_correct.gif";

/// Pace for inputs that carry no frame rate (stills, folders) when none is given.
pub const DEFAULT_FPS: f64 = 30.0;

/// Highest `--fps` accepted.
const MAX_FPS: f64 = 1000.0;

/// Frames decoded ahead of the consumer.
const DECODE_AHEAD: usize = 2;

/// How to replay a file.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayConfig {
    /// Video, GIF, folder of images or still image, or a built-in clip.
    pub input: MediaInput,
    /// Frames per second to pace at (None: the clip's own rate, or [`DEFAULT_FPS`]).
    pub fps: Option<f64>,
    /// Deliver frames as fast as they decode, ignoring any rate.
    pub max_speed: bool,
    /// Start again from the first frame at the end, until stopped.
    pub looped: bool,
}

impl ReplayConfig {
    /// The built-in demo clip, looped at its own rate.
    pub fn demo() -> Self {
        ReplayConfig {
            looped: true,
            ..ReplayConfig::new(MediaInput::Gif {
                name: DEMO_CLIP_NAME.into(),
                bytes: DEMO_CLIP,
            })
        }
    }

    /// Replays `input` once at its own rate.
    pub fn new(input: impl Into<MediaInput>) -> Self {
        ReplayConfig {
            input: input.into(),
            fps: None,
            max_speed: false,
            looped: false,
        }
    }
}

/// A decoded frame with its index in this pass over the input.
type Decoded = Result<(u64, RgbImage), DecodeError>;

/// A file replayed as a frame source.
pub struct Replay {
    media: MediaInfo,
    /// Pacing rate; None = flat out.
    fps: Option<f64>,
    /// The clip's frame rate, which stamps each frame with its time in the clip.
    rate: f64,
    /// Each frame with its index in this pass over the input.
    frames: Receiver<Decoded>,
    /// When the first frame was delivered, on both clocks.
    started: Option<(Instant, Duration)>,
    stats: SourceStats,
}

impl Replay {
    /// Opens the input (errors, e.g. a missing file or ffmpeg, come back here) and starts decoding.
    pub fn open(config: &ReplayConfig) -> Result<Replay, CaptureError> {
        if let Some(fps) = config.fps
            && !(fps.is_finite() && fps > 0.0 && fps <= MAX_FPS)
        {
            return Err(CaptureError::InvalidOption(format!(
                "--fps {fps} must be above 0 and at most {MAX_FPS}"
            )));
        }
        let (media, frames) = spawn_decoder(config.input.clone(), config.looped)?;
        let rate = config.fps.or(media.fps).unwrap_or(DEFAULT_FPS);
        let fps = (!config.max_speed).then_some(rate);
        tracing::info!(?media, ?fps, "replay opened");
        Ok(Replay {
            media,
            fps,
            rate,
            frames,
            started: None,
            stats: SourceStats::default(),
        })
    }

    /// What the decoder found: kind, size, rate and frame count.
    pub fn media(&self) -> &MediaInfo {
        &self.media
    }

    /// Sleeps until frame `index` is due, when paced (the first frame sets
    /// the clock), and returns its capture time: the first frame's, plus its
    /// time in the clip. Time-based logic downstream then sees the clip's own
    /// timing, paced or flat out.
    fn pace(&mut self, index: u64) -> Duration {
        let (started, stamp) = *self
            .started
            .get_or_insert_with(|| (Instant::now(), monotonic_now()));
        if let Some(fps) = self.fps {
            let due = started + Duration::from_secs_f64(index as f64 / fps);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        stamp + Duration::from_secs_f64(index as f64 / self.rate)
    }
}

/// Opens `input` on a decoder thread (reopened at each end when `looped`);
/// returns its media info and the frame channel.
fn spawn_decoder(
    input: MediaInput,
    looped: bool,
) -> Result<(MediaInfo, Receiver<Decoded>), CaptureError> {
    let (info_tx, info_rx) = sync_channel(1);
    let (frame_tx, frame_rx) = sync_channel(DECODE_AHEAD);
    let io_err = |source| DecodeError::Io {
        path: input.name().to_path_buf(),
        source,
    };
    std::thread::Builder::new()
        .name("replay-decode".into())
        .spawn({
            let input = input.clone();
            move || {
                let mut reader = match MediaReader::open_input(&input) {
                    Ok(reader) => reader,
                    Err(err) => {
                        let _ = info_tx.send(Err(err));
                        return;
                    }
                };
                if info_tx.send(Ok(reader.info().clone())).is_err() {
                    return;
                }
                loop {
                    let mut sent = 0u64;
                    for frame in reader {
                        // A closed channel means the replay was dropped: stop decoding.
                        if frame_tx.send(frame.map(|image| (sent, image))).is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    // An input that gave nothing this time would loop on nothing.
                    if !looped || sent == 0 {
                        return;
                    }
                    reader = match MediaReader::open_input(&input) {
                        Ok(reader) => reader,
                        Err(err) => {
                            let _ = frame_tx.send(Err(err));
                            return;
                        }
                    };
                }
            }
        })
        .map_err(io_err)?;
    let info = info_rx.recv().map_err(|_| {
        io_err(std::io::Error::other(
            "the decoder thread ended before opening the input",
        ))
    })??;
    Ok((info, frame_rx))
}

impl Source for Replay {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let (sequence, image) = match self.frames.recv() {
            Ok(frame) => frame?,
            // The decoder thread is done: end of input.
            Err(_) => return Ok(None),
        };
        // Paced and stamped by frames delivered in all (so time keeps rising
        // across the passes of a loop); numbered from 0 again in each pass,
        // so what follows knows a new pass began.
        let timestamp = self.pace(self.stats.frames);
        self.stats.frames += 1;
        Ok(Some(Frame {
            image,
            sequence,
            timestamp,
        }))
    }

    fn info(&self) -> SourceInfo {
        let kind = match self.media.kind {
            MediaKind::Image => "image",
            MediaKind::Gif => "GIF",
            MediaKind::Folder => "image folder",
            MediaKind::Video => "video",
        };
        SourceInfo {
            description: format!("replay {}", self.media.path.display()),
            pixel_format: kind.to_owned(),
            width: self.media.width,
            height: self.media.height,
            fps: self.fps,
        }
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIF: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/media/cow_correct.gif"
    );

    fn frames(replay: &mut Replay, limit: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        while out.len() < limit {
            match replay.next_frame().unwrap() {
                Some(frame) => out.push(frame),
                None => break,
            }
        }
        out
    }

    /// Writes `n` small PNGs named so that name order is frame order.
    fn folder(n: u8) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            let image = RgbImage::from_pixel(8, 6, image::Rgb([i * 10, 0, 0]));
            image.save(dir.path().join(format!("f{i:02}.png"))).unwrap();
        }
        dir
    }

    #[test]
    fn max_speed_delivers_every_gif_frame_in_order_unpaced() {
        let mut replay = Replay::open(&ReplayConfig {
            max_speed: true,
            ..ReplayConfig::new(GIF)
        })
        .unwrap();
        assert_eq!(replay.info().fps, None);
        let expected = replay.media().frames;
        let got = frames(&mut replay, usize::MAX);
        assert!(!got.is_empty());
        if let Some(n) = expected {
            assert_eq!(got.len(), n);
        }
        for (i, frame) in got.iter().enumerate() {
            assert_eq!(frame.sequence, i as u64);
            assert_eq!(frame.image.width(), replay.media().width);
        }
        assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        assert_eq!(replay.stats().frames, got.len() as u64);
        assert!(replay.next_frame().unwrap().is_none());
    }

    #[test]
    fn folder_replays_in_name_order_paced_at_given_fps() {
        let dir = folder(5);
        let fps = 50.0;
        let mut replay = Replay::open(&ReplayConfig {
            fps: Some(fps),
            ..ReplayConfig::new(dir.path())
        })
        .unwrap();
        assert_eq!(replay.info().fps, Some(fps));
        let got = frames(&mut replay, usize::MAX);
        assert_eq!(got.len(), 5);
        for (i, frame) in got.iter().enumerate() {
            assert_eq!(frame.image.get_pixel(0, 0)[0], i as u8 * 10);
        }
        // Pacing can only make frames late, never early: a lower bound (with one
        // frame interval of slack for the first frame's own delay) cannot flake.
        for (i, frame) in got.iter().enumerate().skip(1) {
            let since_first = frame.timestamp - got[0].timestamp;
            assert!(
                since_first.as_secs_f64() >= (i - 1) as f64 / fps,
                "frame {i} came {since_first:?} after the first"
            );
        }
    }

    #[test]
    fn a_looped_replay_starts_again_numbering_each_pass_from_zero() {
        let dir = folder(3);
        let mut replay = Replay::open(&ReplayConfig {
            max_speed: true,
            looped: true,
            ..ReplayConfig::new(dir.path())
        })
        .unwrap();
        let got = frames(&mut replay, 8);
        assert_eq!(got.len(), 8, "a looped replay does not end");
        let shades: Vec<u8> = got.iter().map(|f| f.image.get_pixel(0, 0)[0]).collect();
        assert_eq!(shades, [0, 10, 20, 0, 10, 20, 0, 10]);
        let sequences: Vec<u64> = got.iter().map(|f| f.sequence).collect();
        assert_eq!(sequences, [0, 1, 2, 0, 1, 2, 0, 1]);
        assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    }

    #[test]
    fn the_demo_clip_is_built_in_and_plays_at_its_own_rate() {
        let demo = ReplayConfig::demo();
        assert_eq!(Replay::open(&demo).unwrap().info().fps, Some(10.0));
        let mut replay = Replay::open(&ReplayConfig {
            max_speed: true,
            ..demo
        })
        .unwrap();
        let info = replay.info();
        assert_eq!((info.width, info.height), (347, 196));
        assert!(info.description.contains("cow_correct.gif"), "{info}");
        // 47 frames, then the first again.
        let got = frames(&mut replay, 48);
        assert_eq!(got.len(), 48);
        assert_eq!(got[47].image, got[0].image);
        assert_ne!(got[46].image, got[0].image);
    }

    #[test]
    fn still_image_is_one_frame() {
        let dir = folder(1);
        let mut replay = Replay::open(&ReplayConfig::new(dir.path().join("f00.png"))).unwrap();
        assert_eq!(frames(&mut replay, 10).len(), 1);
        assert_eq!(replay.info().pixel_format, "image");
    }

    #[test]
    fn bad_fps_and_missing_file_are_errors() {
        for fps in [0.0, -1.0, f64::NAN, 1e9] {
            let err = Replay::open(&ReplayConfig {
                fps: Some(fps),
                ..ReplayConfig::new(GIF)
            })
            .err()
            .unwrap();
            assert!(err.to_string().contains("--fps"), "{err}");
        }
        let err = Replay::open(&ReplayConfig::new("/nonexistent/clip.gif"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/clip.gif"), "{err}");
    }
}
