//! The default command: the live monitor. Merges the config file and flags
//! into settings, opens the source and the models, starts the pipeline and
//! hands it to the dashboard or to the headless JSON Lines printer.

pub mod headless;
pub mod reload;
pub mod transcript_log;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::capture::{CameraConfig, ReplayConfig, SourceSpec, open_source};
use crate::classify::SmoothingConfig;
use crate::config::{CliOverrides, Settings};
use crate::landmarks::{Holistic, HolisticOptions, Layout, ModelSource};
use crate::pipeline::{Classifier, Landmarker, Pipeline, PipelineConfig, StopFlag};
use crate::tui::{self, App, AppOptions, SourceLine, Theme};

/// Frames each pipeline hand-off holds (newest wins beyond that).
const HANDOFF_CAPACITY: usize = 2;

/// Options of the live monitor (the command run when no subcommand is given).
#[derive(Clone, Debug, Default, Args)]
pub struct MonitorArgs {
    /// Replay a video, GIF, folder of images or still image instead of the camera.
    #[arg(long, value_name = "PATH")]
    pub input: Option<PathBuf>,
    /// The monitor on the built-in demo clip (a person signing "Cow"), looped
    /// at its own pace until stopped: signtop working, no camera needed.
    #[arg(long, conflicts_with = "input")]
    pub demo: bool,
    /// Replay --input from its start again at its end, until stopped.
    #[arg(long = "loop", requires = "input")]
    pub looped: bool,
    /// Print JSON Lines (decisions and periodic stats) instead of the dashboard.
    #[arg(long)]
    pub headless: bool,
    /// Stop after this many frames from the source.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Seconds between headless stats lines.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub stats_interval: f64,
    /// Replay as fast as frames decode instead of at the clip's rate.
    #[arg(long)]
    pub max_speed: bool,
    /// Process every frame of a replay, none dropped: the replay waits for the
    /// slowest stage (for analysing a recording; with --max-speed, as fast as
    /// the machine goes). Needs --input.
    #[arg(long, requires = "input")]
    pub every_frame: bool,
    /// Kiosk mode: large bars, every key but q ignored.
    #[arg(long)]
    pub kiosk: bool,
    /// No colours (the NO_COLOR variable does the same).
    #[arg(long)]
    pub no_color: bool,
    /// Config file (TOML; see config/signtop.toml). Flags override it.
    /// Default: $XDG_CONFIG_HOME/signtop/signtop.toml if it exists.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// V4L2 device [config: camera.device].
    #[arg(long, value_name = "PATH")]
    pub device: Option<String>,
    /// Frame width [camera.width].
    #[arg(long)]
    pub width: Option<u32>,
    /// Frame height [camera.height].
    #[arg(long)]
    pub height: Option<u32>,
    /// Frames per second; for a replay, the pace [camera.fps].
    #[arg(long)]
    pub fps: Option<u32>,
    /// Mirror left-right (selfie view): keypoints flipped with left and right
    /// swapped, so signs keep their meaning [camera.mirror].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub mirror: Option<bool>,
    /// Landmark models directory [models.models].
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Sign classifier ONNX file [models.sign_model].
    #[arg(long, value_name = "FILE")]
    pub sign_model: Option<PathBuf>,
    /// Keypoint layout, 258 or 1662 [models.layout].
    #[arg(long)]
    pub layout: Option<Layout>,
    /// Decision threshold 0..=1 [decision.threshold].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Agreeing windows before a decision [decision.debounce].
    #[arg(long)]
    pub debounce: Option<u32>,
    /// Windows of silence after a decision [decision.cooldown].
    #[arg(long)]
    pub cooldown: Option<u32>,
    /// Signs kept in the transcript [decision.transcript_length].
    #[arg(long)]
    pub transcript_length: Option<usize>,
    /// Dashboard redraws per second [ui.ui_refresh_hz].
    #[arg(long)]
    pub ui_refresh_hz: Option<u32>,
    /// Camera preview instead of the skeleton at the start; `v` switches [ui.preview].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub preview: Option<bool>,
    /// Append each decision (wall-clock time, sign, probability) to FILE as JSON Lines.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,
}

impl MonitorArgs {
    /// The flags that override the config file.
    pub fn overrides(&self) -> CliOverrides {
        CliOverrides {
            device: self.device.clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
            mirror: self.mirror,
            models: self.models.clone(),
            sign_model: self.sign_model.clone(),
            layout: self.layout,
            threshold: self.threshold,
            debounce: self.debounce,
            cooldown: self.cooldown,
            transcript_length: self.transcript_length,
            ui_refresh_hz: self.ui_refresh_hz,
            preview: self.preview,
        }
    }

    /// JSON Lines instead of a screen: asked for, or stdout is not a terminal.
    pub fn is_headless(&self) -> bool {
        self.headless || !std::io::stdout().is_terminal()
    }

    /// The config file merged with the flags.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = self.config.clone().or_else(crate::config::user_config);
        let mut settings = Settings::load(file.as_deref())?;
        settings.apply(&self.overrides())?;
        Ok(settings)
    }
}

/// Runs the monitor.
pub fn run(args: &MonitorArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    check_stats_interval(args)?;
    let classifier = open_sign_model(&settings)?;
    let live = start(args, &settings, classifier, false)?;
    // A model file is watched for changes; the built-in model cannot change.
    let watcher = settings
        .sign_model
        .as_deref()
        .map(|path| {
            reload::ModelWatcher::start(path, settings.layout, live.pipeline.shared_controls())
                .context("starting the sign model watcher")
        })
        .transpose()?;
    let transcript = open_transcript(args)?;
    if live.headless {
        let interval = std::time::Duration::from_secs_f64(args.stats_interval);
        let outputs = headless::Outputs {
            watcher: watcher.as_ref(),
            transcript,
        };
        return headless::run(live.pipeline, interval, &live.stop, outputs);
    }
    let mut app = App::new(
        live.pipeline.labels().to_vec(),
        source_line(&live.pipeline),
        &app_options(args, &settings),
    );
    let theme = Theme::from_env(args.no_color);
    let mut services = tui::Services {
        preview: tui::Preview::detect(),
        watcher,
        transcript,
        snapshot_dir: snapshot_dir(args),
    };
    let shown = tui::run(
        &live.pipeline,
        &mut app,
        theme,
        settings.ui_refresh_hz,
        &live.stop,
        &mut services,
    );
    let finished = live.pipeline.finish();
    shown.context("drawing the dashboard")?;
    let summary = finished?;
    log_summary(&summary);
    Ok(())
}

/// The figures a run ends with, in the log (the preview's cost is read from here).
pub fn log_summary(m: &crate::pipeline::MetricsSnapshot) {
    tracing::info!(
        frames_in = m.frames_in,
        processed = m.processed,
        dropped = m.dropped,
        landmarks_p50_ms = m.landmarks.service.p50,
        landmarks_p95_ms = m.landmarks.service.p95,
        ui_p50_ms = m.ui.service.p50,
        ui_p95_ms = m.ui.service.p95,
        ui_frames = m.ui.processed,
        "monitor stopped"
    );
}

fn check_stats_interval(args: &MonitorArgs) -> anyhow::Result<()> {
    if !(args.stats_interval > 0.0 && args.stats_interval.is_finite()) {
        anyhow::bail!(
            "--stats-interval {} must be a positive number of seconds",
            args.stats_interval
        );
    }
    Ok(())
}

/// A running pipeline with its stop flag (raised by SIGINT and SIGTERM too)
/// and whether its output goes to JSON Lines.
pub struct Live {
    /// The stage threads.
    pub pipeline: Pipeline,
    /// The stop flag they watch.
    pub stop: StopFlag,
    /// JSON Lines instead of a screen.
    pub headless: bool,
}

/// Opens the source and the landmark models and starts the pipeline with
/// `classifier`: what the monitor, `record` and `practice` share.
/// `keep_landmarked` hands every landmarked frame on in order (a recording).
pub fn start(
    args: &MonitorArgs,
    settings: &Settings,
    classifier: Box<dyn Classifier>,
    keep_landmarked: bool,
) -> anyhow::Result<Live> {
    let models = ModelSource::dir_or_built_in(settings.models.clone());
    let landmarker = open_landmarker(&models, settings.layout)?;
    let source = open_source(&source_spec(args, settings)).context("opening the frame source")?;
    let stop = StopFlag::on_signals().context("installing the SIGINT/SIGTERM handlers")?;
    let mut config = pipeline_config(args, settings);
    config.keep_landmarked = keep_landmarked;
    let pipeline = Pipeline::start(source, landmarker, classifier, &config, stop.clone())?;
    Ok(Live {
        pipeline,
        stop,
        headless: args.is_headless(),
    })
}

/// `--transcript FILE`, opened for appending.
pub fn open_transcript(
    args: &MonitorArgs,
) -> anyhow::Result<Option<transcript_log::TranscriptLog>> {
    args.transcript
        .as_deref()
        .map(transcript_log::TranscriptLog::open)
        .transpose()
}

/// Where `w` writes the transcript so far: beside `--transcript`, else here.
pub fn snapshot_dir(args: &MonitorArgs) -> PathBuf {
    args.transcript
        .as_deref()
        .and_then(Path::parent)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The sign model of the settings, checked against their layout.
pub fn open_sign_model(settings: &Settings) -> anyhow::Result<Box<dyn Classifier>> {
    let classifier = open_classifier(settings.sign_model.as_deref(), settings.layout)?;
    if classifier.layout() != settings.layout {
        anyhow::bail!(
            "{} reads the {} layout but the settings ask for {} (models.layout / --layout)",
            sign_model_name(settings.sign_model.as_deref()),
            classifier.layout(),
            settings.layout
        );
    }
    Ok(classifier)
}

/// The landmark stage: Holistic (pose, both hands, the face for 1662).
fn open_landmarker(models: &ModelSource, layout: Layout) -> anyhow::Result<Box<dyn Landmarker>> {
    let options = HolisticOptions {
        models: models.clone(),
        layout,
    };
    let holistic = Holistic::new(&options)
        .with_context(|| format!("loading the landmark models from {models}"))?;
    Ok(Box::new(holistic))
}

/// The classifier stage: the sign model on tract (the built-in one for the
/// layout unless a file is given).
fn open_classifier(path: Option<&Path>, layout: Layout) -> anyhow::Result<Box<dyn Classifier>> {
    let model = match path {
        Some(path) => crate::classify::SignModel::load(path),
        None => crate::classify::SignModel::built_in(layout),
    };
    // Every ClassifyError names the model.
    let model = model.context("loading the sign model")?;
    Ok(Box::new(model))
}

/// The sign model file, or what stands for the built-in one.
fn sign_model_name(path: Option<&Path>) -> String {
    path.map_or_else(
        || crate::classify::model::BUILT_IN_NAME.to_string(),
        |p| p.display().to_string(),
    )
}

/// Camera from the settings, the replayed file, or the demo clip.
fn source_spec(args: &MonitorArgs, settings: &Settings) -> SourceSpec {
    let replay = match &args.input {
        Some(path) => Some(ReplayConfig {
            looped: args.looped,
            ..ReplayConfig::new(path)
        }),
        None if args.demo => Some(ReplayConfig::demo()),
        None => None,
    };
    match replay {
        Some(replay) => SourceSpec::Replay(ReplayConfig {
            // Only an explicit --fps paces a replay; the file's camera.fps is for the camera.
            fps: args.fps.map(f64::from),
            max_speed: args.max_speed,
            ..replay
        }),
        None => SourceSpec::Camera(CameraConfig {
            device: PathBuf::from(&settings.device),
            width: settings.width,
            height: settings.height,
            fps: settings.fps,
            ..CameraConfig::default()
        }),
    }
}

/// The pipeline's settings. The smoothing values come from the config
/// (defaults 0.7/5/10), never from `SmoothingConfig::default()` (0.5/10/5).
fn pipeline_config(args: &MonitorArgs, settings: &Settings) -> PipelineConfig {
    PipelineConfig {
        smoothing: SmoothingConfig {
            threshold: settings.threshold,
            debounce: settings.debounce as usize,
            cooldown: settings.cooldown as usize,
        },
        transcript_length: settings.transcript_length,
        mirror: settings.mirror,
        max_frames: args.frames,
        handoff_capacity: HANDOFF_CAPACITY,
        every_frame: args.every_frame,
        keep_landmarked: false,
        preview: settings.preview,
    }
}

pub fn app_options(args: &MonitorArgs, settings: &Settings) -> AppOptions {
    AppOptions {
        threshold: settings.threshold,
        mirror: settings.mirror,
        kiosk: args.kiosk,
        transcript_length: settings.transcript_length,
        preview: settings.preview,
    }
}

pub fn source_line(pipeline: &Pipeline) -> SourceLine {
    let info = pipeline.source_info();
    SourceLine {
        description: info.description.clone(),
        format: info.pixel_format.clone(),
        width: info.width,
        height: info.height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signtop.toml");
        std::fs::write(&path, "[decision]\nthreshold = 0.6\ndebounce = 3\n").unwrap();
        let args = MonitorArgs {
            config: Some(path),
            threshold: Some(0.9),
            ..MonitorArgs::default()
        };
        let settings = args.settings().unwrap();
        assert_eq!(settings.threshold, 0.9);
        assert_eq!(settings.debounce, 3);
        let config = pipeline_config(&args, &settings);
        assert_eq!(config.smoothing.debounce, 3);
        assert_eq!(
            config.smoothing.cooldown, 10,
            "the config's default, not the Smoother's"
        );
    }

    #[test]
    fn demo_replays_the_built_in_clip_in_a_loop_at_its_own_pace() {
        let args = MonitorArgs {
            demo: true,
            ..MonitorArgs::default()
        };
        let spec = source_spec(&args, &Settings::default());
        let SourceSpec::Replay(replay) = spec else {
            panic!("{spec:?}")
        };
        assert!(replay.looped && replay.fps.is_none() && !replay.max_speed);
        assert_eq!(replay.input, ReplayConfig::demo().input);
    }

    #[test]
    fn loop_replays_the_input_again() {
        let args = MonitorArgs {
            input: Some("clip.mp4".into()),
            looped: true,
            fps: Some(5),
            ..MonitorArgs::default()
        };
        let SourceSpec::Replay(replay) = source_spec(&args, &Settings::default()) else {
            panic!("not a replay")
        };
        assert!(replay.looped);
        assert_eq!(replay.fps, Some(5.0));
        assert_eq!(
            replay.input,
            crate::capture::decode::MediaInput::from("clip.mp4")
        );
    }

    #[test]
    fn a_bad_value_names_the_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[decision]\n\nthreshold = 1.5\n").unwrap();
        let args = MonitorArgs {
            config: Some(path),
            ..MonitorArgs::default()
        };
        let err = format!("{:#}", args.settings().unwrap_err());
        assert!(
            err.contains(":3:") && err.contains("decision.threshold"),
            "{err}"
        );
    }
}
