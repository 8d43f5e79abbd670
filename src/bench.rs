//! `signtop bench`: latency statistics (p50/p95/p99, FPS) and the per-model
//! microbenchmark (`--models`) that times each ONNX model on real frames.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use image::RgbImage;
use image::imageops::FilterType;

use crate::capture::decode::MediaReader;
use crate::landmarks::model::{DEFAULT_MODELS_DIR, Model};
use crate::pipeline::metrics::Latency;

/// Options of `signtop bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Frames to run on: image, GIF, folder of images or video.
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// Time each ONNX model on the frames instead of the whole pipeline.
    #[arg(long)]
    pub models: bool,
    /// Number of frames to time (the input is looped when shorter).
    #[arg(long, default_value_t = 50)]
    pub frames: usize,
    /// Models directory.
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

/// Latencies of one stage, named for the table.
pub struct StageStats {
    name: String,
    latency: Latency,
}

impl StageStats {
    /// An empty record for `name`.
    pub fn new(name: &str) -> StageStats {
        StageStats {
            name: name.to_string(),
            latency: Latency::new(),
        }
    }

    /// Records one duration (clamped into the histogram's range).
    pub fn record(&mut self, d: Duration) {
        self.latency.record(d);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.latency.count()
    }

    /// The `q` quantile (0..=1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.quantile_ms(q)
    }

    /// Mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.latency.mean_ms()
    }

    /// One table row: name, p50, p95, p99, mean (ms) and the throughput it allows.
    pub fn row(&self) -> String {
        let mean = self.mean_ms();
        let fps = if mean > 0.0 { 1000.0 / mean } else { 0.0 };
        format!(
            "{:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.1}",
            self.name,
            self.quantile_ms(0.5),
            self.quantile_ms(0.95),
            self.quantile_ms(0.99),
            mean,
            fps
        )
    }
}

/// The table header matching [`StageStats::row`].
pub fn header() -> String {
    format!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "stage (ms)", "p50", "p95", "p99", "mean", "fps"
    )
}

/// Runs `signtop bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if !args.models {
        anyhow::bail!(
            "the whole-pipeline bench needs landmarks::Holistic (not on this branch yet); use --models"
        );
    }
    let dir = args
        .models_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODELS_DIR));
    let frames = read_frames(&args.input)?;
    println!("{}", header());
    for (file, side) in MODELS {
        let stats = time_model(&dir, file, *side, &frames, args.frames.max(1))?;
        println!("{}", stats.row());
    }
    Ok(())
}

/// The models and their square input sides.
const MODELS: &[(&str, u32)] = &[
    ("pose_detection.onnx", 224),
    ("pose_landmark_full.onnx", 256),
    ("hand_recrop.onnx", 256),
    ("hand_landmark_full.onnx", 224),
    ("face_detection_short_range.onnx", 128),
    ("face_landmark.onnx", 192),
];

/// Decodes every frame of `path` (at least one).
fn read_frames(path: &Path) -> anyhow::Result<Vec<RgbImage>> {
    let reader = MediaReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let frames = reader
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("decoding {}", path.display()))?;
    if frames.is_empty() {
        anyhow::bail!("{}: no frames", path.display());
    }
    Ok(frames)
}

/// Resizes `image` to `side`x`side` and scales it to [0, 1] NHWC floats.
fn to_input(image: &RgbImage, side: u32) -> Vec<f32> {
    let small = image::imageops::resize(image, side, side, FilterType::Triangle);
    small
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect()
}

/// Times `n` runs of one model, cycling over `frames` (one warm-up run first).
fn time_model(
    dir: &Path,
    file: &str,
    side: u32,
    frames: &[RgbImage],
    n: usize,
) -> anyhow::Result<StageStats> {
    let s = side as usize;
    let model = Model::load(dir, file, &[1, s, s, 3])?;
    let inputs: Vec<Vec<f32>> = frames.iter().map(|f| to_input(f, side)).collect();
    let mut stats = StageStats::new(file);
    if let Some(first) = inputs.first() {
        model.run(first)?;
    }
    for input in inputs.iter().cycle().take(n) {
        let start = Instant::now();
        model.run(input)?;
        stats.record(start.elapsed());
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let mut s = StageStats::new("x");
        for ms in 1..=100u64 {
            s.record(Duration::from_millis(ms));
        }
        assert_eq!(s.count(), 100);
        assert!((s.quantile_ms(0.5) - 50.0).abs() < 0.1);
        assert!((s.quantile_ms(0.95) - 95.0).abs() < 0.1);
        assert!((s.quantile_ms(0.99) - 99.0).abs() < 0.1);
        assert!((s.mean_ms() - 50.5).abs() < 0.1);
        assert!(s.row().starts_with("x "));
    }

    #[test]
    fn zero_duration_is_recorded() {
        let mut s = StageStats::new("z");
        s.record(Duration::ZERO);
        assert_eq!(s.count(), 1);
    }
}
