//! `signtop landmarks`: Holistic over a still image, an animated GIF, a folder
//! of images or a video; the keypoints of every frame, in input order, to a
//! float32 .npy (frames, features), and optionally each frame drawn with its
//! landmarks.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use ndarray_npy::WriteNpyExt;

use super::draw::draw_keypoints;
use super::inspect::PartRates;
use crate::capture::decode::MediaReader;
use crate::landmarks::holistic::{Finished, Holistic, HolisticOptions};
use crate::landmarks::keypoints::{Keypoints, Layout};
use crate::landmarks::models::ModelSource;

/// Arguments of `signtop landmarks`.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// A still image (PNG/JPEG), an animated GIF, a folder of images (read in
    /// name order) or a video (decoded by an ffmpeg child process).
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// Where to write the keypoints: float32 .npy of shape (frames, features).
    #[arg(long, value_name = "FILE.npy")]
    pub out: PathBuf,
    /// Keypoint layout: 258 (pose + hands) or 1662 (pose + face + hands).
    #[arg(long, default_value = "258", value_name = "258|1662")]
    pub layout: Layout,
    /// Also write each frame with its landmarks drawn, as DIR/frame_000000.png,
    /// ... (DIR is created if needed).
    #[arg(long, value_name = "DIR")]
    pub draw: Option<PathBuf>,
    /// Folder of the landmark ONNX models [default: the ones built into signtop].
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
}

/// What a run found: the summary line's figures.
#[derive(Debug, Default)]
pub struct ExtractSummary {
    /// Frames seen and how often each part was found.
    pub rates: PartRates,
    /// Time Holistic spent on all frames (decoding and drawing excluded;
    /// pipelined, so less than the frames' latencies added up).
    pub landmark_time: Duration,
}

impl ExtractSummary {
    /// Mean Holistic time per frame, in milliseconds.
    pub fn ms_per_frame(&self) -> f64 {
        if self.rates.frames == 0 {
            0.0
        } else {
            self.landmark_time.as_secs_f64() * 1000.0 / self.rates.frames as f64
        }
    }

    /// One line: frames, % of frames with each part (face with the 1662
    /// layout), and ms per frame.
    pub fn line(&self, layout: Layout) -> String {
        format!(
            "{} ms_per_frame={:.1}",
            self.rates.summary(layout),
            self.ms_per_frame()
        )
    }
}

/// Runs `signtop landmarks`.
pub fn run(args: &ExtractArgs) -> anyhow::Result<()> {
    check_output(&args.out)?;
    let reader = MediaReader::open(&args.input)
        .with_context(|| format!("opening the input {}", args.input.display()))?;
    let mut holistic = load_holistic(args)?;
    if let Some(dir) = &args.draw {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the --draw folder {}", dir.display()))?;
    }
    let progress = progress_bar(reader.info().frames);
    let mut out = Collected {
        layout: args.layout,
        draw: args.draw.as_deref(),
        progress: &progress,
        summary: ExtractSummary::default(),
        values: Vec::new(),
    };
    // Pipelined: each frame's pose runs beside the previous frame's hands and
    // face, so a frame's keypoints come out with the next frame's push.
    for (index, frame) in reader.enumerate() {
        let frame =
            frame.with_context(|| format!("reading frame {index} of {}", args.input.display()))?;
        let started = Instant::now();
        let finished = holistic
            .push(frame)
            .with_context(|| format!("landmarks at frame {index} of {}", args.input.display()))?;
        out.summary.landmark_time += started.elapsed();
        if let Some(finished) = finished {
            out.add(finished)?;
        }
    }
    let started = Instant::now();
    let last = holistic
        .flush()
        .with_context(|| format!("landmarks of the last frame of {}", args.input.display()))?;
    out.summary.landmark_time += started.elapsed();
    if let Some(finished) = last {
        out.add(finished)?;
    }
    let Collected {
        summary, values, ..
    } = out;
    progress.finish_and_clear();
    let frames = summary.rates.frames;
    anyhow::ensure!(frames > 0, "{}: no frames decoded", args.input.display());
    let array = Array2::from_shape_vec((frames, args.layout.features()), values)
        .context("shaping the keypoints into (frames, features)")?;
    write_npy_atomically(&args.out, &array)?;
    println!(
        "{} -> {} {:?}",
        summary.line(args.layout),
        args.out.display(),
        array.shape()
    );
    Ok(())
}

/// The frames finished so far: their keypoints, drawings and summary.
struct Collected<'a> {
    layout: Layout,
    draw: Option<&'a Path>,
    progress: &'a ProgressBar,
    summary: ExtractSummary,
    values: Vec<f32>,
}

impl Collected<'_> {
    /// The next frame in input order, finished.
    fn add(&mut self, finished: Finished) -> anyhow::Result<()> {
        let index = self.summary.rates.frames;
        self.summary.rates.add(finished.keypoints.parts());
        self.values
            .extend(finished.keypoints.to_features(self.layout));
        if let Some(dir) = self.draw {
            save_drawing(dir, index, finished.image, &finished.keypoints)?;
        }
        self.progress.inc(1);
        Ok(())
    }
}

/// The folder a file goes into (the current one for a bare file name).
fn parent_folder(file: &Path) -> &Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Fails early, before any model runs, when the output cannot be written there.
fn check_output(out: &Path) -> anyhow::Result<()> {
    let dir = parent_folder(out);
    anyhow::ensure!(
        dir.is_dir(),
        "the output folder {} does not exist (for --out {})",
        dir.display(),
        out.display()
    );
    anyhow::ensure!(
        !out.is_dir(),
        "--out {} is a folder: give a file name such as keypoints.npy",
        out.display()
    );
    Ok(())
}

fn load_holistic(args: &ExtractArgs) -> anyhow::Result<Holistic> {
    if let Some(dir) = &args.models {
        anyhow::ensure!(
            dir.is_dir(),
            "the models folder {} does not exist (--models DIR)",
            dir.display()
        );
    }
    let options = HolisticOptions {
        models: ModelSource::dir_or_built_in(args.models.clone()),
        layout: args.layout,
    };
    Holistic::new(&options)
        .with_context(|| format!("loading the landmark models from {}", options.models))
}

/// A bar on stderr when a person watches it; nothing otherwise.
fn progress_bar(frames: Option<usize>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match frames {
        Some(n) => {
            let bar = ProgressBar::new(n as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} frames {per_sec}") {
                bar.set_style(style);
            }
            bar
        }
    }
}

/// The PNG name of frame `index` under `--draw`.
pub fn drawing_name(index: usize) -> String {
    format!("frame_{index:06}.png")
}

fn save_drawing(
    dir: &Path,
    index: usize,
    mut frame: RgbImage,
    keypoints: &Keypoints,
) -> anyhow::Result<()> {
    draw_keypoints(&mut frame, keypoints);
    let path = dir.join(drawing_name(index));
    frame
        .save(&path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `array` as .npy to a temporary file beside `path`, then renames it,
/// so a failure never leaves a half-written file under the final name.
pub fn write_npy_atomically(path: &Path, array: &Array2<f32>) -> anyhow::Result<()> {
    let dir = parent_folder(path);
    let context = || format!("writing {}", path.display());
    let mut temp = tempfile::Builder::new()
        .prefix(".signtop-landmarks-")
        .suffix(".npy.part")
        .tempfile_in(dir)
        .with_context(context)?;
    {
        let mut writer = BufWriter::new(temp.as_file_mut());
        array.write_npy(&mut writer).with_context(context)?;
        writer.flush().with_context(context)?;
    }
    temp.persist(path).with_context(context)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::keypoints::Parts;

    #[test]
    fn npy_is_written_whole_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.npy");
        let array = Array2::from_shape_fn((3, 258), |(i, j)| (i * 1000 + j) as f32);
        write_npy_atomically(&path, &array).unwrap();
        let back: Array2<f32> = ndarray_npy::read_npy(&path).unwrap();
        assert_eq!(back, array);
        // Only the final file is left: the temporary one was renamed.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_missing_output_folder_is_named() {
        let err = check_output(Path::new("/nonexistent-dir/k.npy")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = check_output(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
        assert!(check_output(Path::new("k.npy")).is_ok());
    }

    #[test]
    fn summary_line_has_parts_and_time() {
        let mut summary = ExtractSummary::default();
        for i in 0..4 {
            summary.rates.add(Parts {
                pose: true,
                left_hand: i < 2,
                right_hand: i == 0,
                face: false,
            });
        }
        summary.landmark_time = Duration::from_millis(100);
        assert_eq!(
            summary.line(Layout::PoseHands),
            "frames=4 pose=100% left_hand=50% right_hand=25% ms_per_frame=25.0"
        );
        assert!(summary.line(Layout::PoseFaceHands).contains("face=0%"));
        assert_eq!(ExtractSummary::default().ms_per_frame(), 0.0);
    }

    #[test]
    fn drawings_are_numbered_in_order() {
        assert_eq!(drawing_name(0), "frame_000000.png");
        assert_eq!(drawing_name(12), "frame_000012.png");
    }
}
