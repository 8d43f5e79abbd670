//! The live pipeline: capture -> landmarks -> classify -> consumer (the
//! dashboard or the headless printer), one thread per stage, bounded
//! newest-wins hand-offs between them, per-stage and end-to-end latency and
//! frame rates, and a clean stop on request, end of input or signal.
//!
//! Besides the classified frames, the landmark stage can hand on every
//! landmarked frame in order (for `signtop record`) and, while the preview is
//! on, the newest camera frame with its keypoints (one slot, newest wins, so
//! drawing it never holds the models up). A new sign model can be swapped in
//! while running ([`Controls::replace_classifier`]).
//!
//! The landmark and classifier stages are small traits ([`Landmarker`],
//! [`Classifier`]) over what the real models provide, so the pipeline runs on
//! whatever `landmarks`/`classify` build without knowing their types.

pub mod handoff;
pub mod metrics;
pub mod shutdown;
mod stages;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use image::RgbImage;
use serde::Serialize;

use crate::capture::{CaptureError, Source, SourceInfo, SourceStats, monotonic_now};
use crate::classify::{SmoothingConfig, Window};
use crate::landmarks::{Keypoints, Layout};

pub use handoff::{HandoffStats, Recv};
pub use metrics::{Percentiles, StageSnapshot};
pub use shutdown::StopFlag;

/// Landmarked frames kept for [`Pipeline::drain_landmarked`] (17 s at 60 FPS).
const LANDMARKED_CAPACITY: usize = 1024;

/// A boxed error from a model stage.
pub type StageFailure = Box<dyn std::error::Error + Send + Sync>;

/// The landmark stage: one frame in, keypoints out, tracking state kept between calls.
pub trait Landmarker: Send {
    /// Keypoints of one frame (frames are fed in order).
    fn process(&mut self, image: &RgbImage) -> Result<Keypoints, StageFailure>;

    /// Time each sub-stage (pose detect, pose landmarks, hands, face...) took
    /// on the last frame; empty when the landmarker does not say.
    fn timings(&self) -> Vec<(&'static str, Duration)> {
        Vec::new()
    }

    /// Its pipelined path, when it has one (the stage uses it while frames
    /// queue up).
    fn pipelined(&mut self) -> Option<&mut dyn PipelinedLandmarker> {
        None
    }
}

/// A landmarker that can take the next frame before the last is finished.
pub trait PipelinedLandmarker {
    /// Takes a frame and returns the one taken before it, finished, with its
    /// keypoints (`None` for the first).
    fn push(&mut self, image: RgbImage) -> Result<Option<(RgbImage, Keypoints)>, StageFailure>;
    /// The frame taken last, finished (`None` when none is held).
    fn flush(&mut self) -> Result<Option<(RgbImage, Keypoints)>, StageFailure>;
}

/// The classifier stage: a window of keypoints in, class probabilities out.
pub trait Classifier: Send {
    /// Class names, in output order.
    fn labels(&self) -> &[String];
    /// The keypoint layout the model reads.
    fn layout(&self) -> Layout;
    /// An empty live window of the model's frames and span.
    fn window(&self) -> Window {
        Window::with_default_len(self.layout())
    }
    /// Probabilities for a due window: raw keypoints, frames x features, row-major.
    fn predict(&mut self, window: &[f32]) -> Result<Vec<f32>, StageFailure>;
}

/// MediaPipe Holistic on tract: pose, hands (and face for the 1662 layout).
impl Landmarker for crate::landmarks::Holistic {
    fn process(&mut self, image: &RgbImage) -> Result<Keypoints, StageFailure> {
        Ok(crate::landmarks::Holistic::process(self, image)?)
    }

    fn timings(&self) -> Vec<(&'static str, Duration)> {
        self.last_timings().stages()
    }

    fn pipelined(&mut self) -> Option<&mut dyn PipelinedLandmarker> {
        Some(self)
    }
}

/// Holistic's pipelined path: the next frame's pose beside this one's hands and face.
impl PipelinedLandmarker for crate::landmarks::Holistic {
    fn push(&mut self, image: RgbImage) -> Result<Option<(RgbImage, Keypoints)>, StageFailure> {
        let finished = crate::landmarks::Holistic::push(self, image)?;
        Ok(finished.map(|f| (f.image, f.keypoints)))
    }

    fn flush(&mut self) -> Result<Option<(RgbImage, Keypoints)>, StageFailure> {
        let finished = crate::landmarks::Holistic::flush(self)?;
        Ok(finished.map(|f| (f.image, f.keypoints)))
    }
}

/// The sign model on tract.
impl Classifier for crate::classify::SignModel {
    fn labels(&self) -> &[String] {
        crate::classify::SignModel::labels(self)
    }

    fn layout(&self) -> Layout {
        crate::classify::SignModel::layout(self)
    }

    fn window(&self) -> Window {
        crate::classify::SignModel::window(self)
    }

    fn predict(&mut self, window: &[f32]) -> Result<Vec<f32>, StageFailure> {
        Ok(crate::classify::SignModel::predict_raw(self, window)?)
    }
}

/// Errors that end the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The frame source failed.
    #[error("capture")]
    Capture(#[from] CaptureError),
    /// The landmark models failed on a frame.
    #[error("landmarks")]
    Landmarks(#[source] StageFailure),
    /// The sign model failed on a window.
    #[error("classifier")]
    Classifier(#[source] StageFailure),
    /// A thread could not be started.
    #[error("{stage}: starting the thread")]
    Spawn {
        /// Which stage.
        stage: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A stage thread panicked.
    #[error("{stage}: the thread panicked: {message}")]
    Panicked {
        /// Which stage.
        stage: &'static str,
        /// The panic's message.
        message: String,
    },
}

/// A frame after the classifier: what the dashboard shows.
#[derive(Clone, Debug)]
pub struct Classified {
    /// The source's frame counter.
    pub sequence: u64,
    /// Capture time (CLOCK_MONOTONIC).
    pub captured: Duration,
    /// The frame's keypoints (mirrored when mirroring is on).
    pub keypoints: Keypoints,
    /// Class probabilities, `None` until the window is full.
    pub probabilities: Option<Vec<f32>>,
    /// The recognised sign still being held, if any.
    pub held: Option<usize>,
}

/// A frame with its keypoints, as the landmark stage made them: what a
/// recording keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct LandmarkedFrame {
    /// The source's frame counter.
    pub sequence: u64,
    /// Capture time (CLOCK_MONOTONIC).
    pub captured: Duration,
    /// The frame's keypoints (mirrored when mirroring is on).
    pub keypoints: Keypoints,
}

/// The newest camera frame and its keypoints, for the preview.
#[derive(Clone, Debug)]
pub struct PreviewFrame {
    /// The frame as captured (never mirrored).
    pub image: RgbImage,
    /// Its keypoints (mirrored when `mirrored`).
    pub keypoints: Keypoints,
    /// Whether the keypoints were mirrored (the image is not).
    pub mirrored: bool,
    /// Capture time (CLOCK_MONOTONIC).
    pub captured: Duration,
}

/// A sign added to the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct SignEvent {
    /// Frame counter of the frame that completed the decision.
    pub sequence: u64,
    /// Its capture time (CLOCK_MONOTONIC).
    pub captured: Duration,
    /// When the decision was made (CLOCK_MONOTONIC).
    pub decided: Duration,
    /// Class index.
    pub index: usize,
    /// Class label.
    pub label: String,
    /// Probability of the class.
    pub probability: f32,
    /// Every class's probability in that window.
    pub probabilities: Vec<f32>,
}

/// Settings the pipeline starts with.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Threshold, debounce and cooldown. The config file's values are passed
    /// here explicitly: `SmoothingConfig::default()` (SignPose's 0.5/10/5) is
    /// never used by the monitor.
    pub smoothing: SmoothingConfig,
    /// Signs remembered for "no repeat while held".
    pub transcript_length: usize,
    /// Mirror the keypoints left-right (selfie view).
    pub mirror: bool,
    /// Stop after this many frames from the source.
    pub max_frames: Option<u64>,
    /// Items each hand-off holds.
    pub handoff_capacity: usize,
    /// Process every frame (a replay waits for the slowest stage) instead of
    /// always the newest: for analysing recordings, not for live cameras.
    pub every_frame: bool,
    /// Also hand every landmarked frame on, in order, to
    /// [`Pipeline::drain_landmarked`] (a recording needs them all).
    pub keep_landmarked: bool,
    /// Start with the preview frames on ([`Controls::set_preview`]).
    pub preview: bool,
}

/// A sign model waiting to replace the running one.
#[derive(Default)]
struct Replacement(Mutex<Option<Box<dyn Classifier>>>);

impl std::fmt::Debug for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = lock(&self.0).is_some();
        f.debug_struct("Replacement")
            .field("waiting", &waiting)
            .finish()
    }
}

/// Settings the consumer may change while running.
#[derive(Debug)]
pub struct Controls {
    threshold: AtomicU32,
    mirror: AtomicBool,
    /// The user's stop (q, SIGINT, SIGTERM): the stages and the consumer end.
    stop: StopFlag,
    /// Raised when a stage fails: the stages end, the consumer stays (the
    /// dashboard keeps its panels and shows the failure until q).
    halt: StopFlag,
    failure: Mutex<Option<String>>,
    /// Whether the landmark stage hands frames to the preview.
    preview: AtomicBool,
    /// Raised when `replacement` holds a model (checked every frame, locked rarely).
    has_replacement: AtomicBool,
    replacement: Replacement,
}

impl Controls {
    fn new(threshold: f32, mirror: bool, preview: bool, stop: StopFlag) -> Controls {
        let controls = Controls {
            threshold: AtomicU32::new(0),
            mirror: AtomicBool::new(mirror),
            stop,
            halt: StopFlag::new(),
            failure: Mutex::new(None),
            preview: AtomicBool::new(preview),
            has_replacement: AtomicBool::new(false),
            replacement: Replacement::default(),
        };
        controls.set_threshold(threshold);
        controls
    }

    /// The decision threshold now.
    pub fn threshold(&self) -> f32 {
        f32::from_bits(self.threshold.load(Ordering::Relaxed))
    }

    /// Sets the decision threshold (clamped to 0..=1).
    pub fn set_threshold(&self, threshold: f32) {
        let t = if threshold.is_nan() {
            1.0
        } else {
            threshold.clamp(0.0, 1.0)
        };
        self.threshold.store(t.to_bits(), Ordering::Relaxed);
    }

    /// Whether keypoints are mirrored.
    pub fn mirror(&self) -> bool {
        self.mirror.load(Ordering::Relaxed)
    }

    /// Turns mirroring on or off.
    pub fn set_mirror(&self, on: bool) {
        self.mirror.store(on, Ordering::Relaxed);
    }

    /// Whether the landmark stage hands its frames to the preview.
    pub fn preview(&self) -> bool {
        self.preview.load(Ordering::Relaxed)
    }

    /// Turns the preview frames on or off (off: no frame is kept for it).
    pub fn set_preview(&self, on: bool) {
        self.preview.store(on, Ordering::Relaxed);
    }

    /// Swaps `classifier` in at the classifier stage's next frame: the window
    /// and smoothing start afresh, the pipeline keeps running. The caller
    /// checks its layout matches (see [`Classifier::layout`]).
    pub fn replace_classifier(&self, classifier: Box<dyn Classifier>) {
        *lock(&self.replacement.0) = Some(classifier);
        self.has_replacement.store(true, Ordering::Release);
    }

    /// The model waiting to be swapped in, if any.
    fn take_replacement(&self) -> Option<Box<dyn Classifier>> {
        if !self.has_replacement.swap(false, Ordering::AcqRel) {
            return None;
        }
        lock(&self.replacement.0).take()
    }

    /// The stop flag every stage watches.
    pub fn stop_flag(&self) -> &StopFlag {
        &self.stop
    }

    /// Keeps the first stage failure, for the dashboard to show, and stops
    /// the other stages.
    fn record_failure(&self, err: &PipelineError) {
        // Every variant's message starts with its stage.
        lock(&self.failure).get_or_insert_with(|| crate::report::chain(err));
        self.halt.request();
    }

    /// The first stage error or panic, as "stage: what happened", once one
    /// has happened.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Whether the stages should end: the user stopped or a stage failed.
    fn stages_should_stop(&self) -> bool {
        self.stop.is_requested() || self.halt.is_requested()
    }
}

/// Runs a stage, turning a panic into [`PipelineError::Panicked`] and keeping
/// the first failure in `controls` (the stage's error is also returned).
fn run_stage(
    stage: &'static str,
    controls: &Controls,
    body: impl FnOnce() -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|payload| {
            Err(PipelineError::Panicked {
                stage,
                message: panic_message(payload.as_ref()),
            })
        });
    if let Err(err) = &result {
        controls.record_failure(err);
    }
    result
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Drops and losses, per hand-off and at the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    /// Frames the landmark stage never saw (it was busy).
    pub landmarks: u64,
    /// Frames the classifier never saw.
    pub classify: u64,
    /// Classified frames the display skipped (not part of frame accounting).
    pub output: u64,
    /// Frames the camera driver dropped before we saw them.
    pub source: u64,
    /// Frames the source could not decode.
    pub corrupt: u64,
}

/// Every figure of the pipeline at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MetricsSnapshot {
    /// Seconds since the pipeline started.
    pub elapsed_s: f64,
    /// Frames delivered by the source.
    pub frames_in: u64,
    /// Frames through the classifier.
    pub processed: u64,
    /// Frames in a hand-off right now.
    pub in_flight: u64,
    /// Frames dropped between stages (`frames_in = processed + dropped + in_flight`).
    pub dropped: u64,
    /// Drops by place.
    pub drops: Drops,
    /// Frames landmarked pipelined: the next frame's pose ran beside their
    /// hands and face, as frames were queueing for the landmark stage.
    pub pipelined: u64,
    /// Capture stage (time from the capture stamp to arrival).
    pub capture: StageSnapshot,
    /// Landmark stage.
    pub landmarks: StageSnapshot,
    /// Classifier stage.
    pub classify: StageSnapshot,
    /// Display stage (filled by the consumer).
    pub ui: StageSnapshot,
    /// Capture to decision (classifier output), ms.
    pub end_to_end: Percentiles,
    /// Landmark sub-stages (as the landmarker names them), time per frame, ms.
    pub landmark_stages: Vec<(String, Percentiles)>,
    /// Recent end-to-end latencies in ms, oldest first.
    #[serde(skip)]
    pub recent_end_to_end: Vec<u64>,
}

/// Figures shared by the stage threads.
#[derive(Default)]
struct Metrics {
    started: Duration,
    frames_in: AtomicU64,
    pipelined: AtomicU64,
    capture: Mutex<metrics::StageMetrics>,
    landmarks: Mutex<metrics::StageMetrics>,
    classify: Mutex<metrics::StageMetrics>,
    ui: Mutex<metrics::StageMetrics>,
    end_to_end: Mutex<(metrics::Latency, metrics::Recent)>,
    landmark_stages: Mutex<Vec<(&'static str, metrics::Latency)>>,
    source: Mutex<SourceStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running pipeline.
pub struct Pipeline {
    outputs: handoff::Receiver<Classified>,
    signs: handoff::Receiver<SignEvent>,
    landmarked: handoff::Receiver<LandmarkedFrame>,
    previews: handoff::Receiver<PreviewFrame>,
    handoffs: [handoff::StatsHandle; 2],
    controls: Arc<Controls>,
    metrics: Arc<Metrics>,
    threads: Vec<(&'static str, JoinHandle<Result<(), PipelineError>>)>,
    labels: Vec<String>,
    info: SourceInfo,
}

impl Pipeline {
    /// Starts the stage threads on `source`.
    pub fn start(
        source: Box<dyn Source + Send>,
        landmarker: Box<dyn Landmarker>,
        classifier: Box<dyn Classifier>,
        config: &PipelineConfig,
        stop: StopFlag,
    ) -> Result<Pipeline, PipelineError> {
        let controls = Arc::new(Controls::new(
            config.smoothing.threshold,
            config.mirror,
            config.preview,
            stop,
        ));
        let metrics = Arc::new(Metrics {
            started: monotonic_now(),
            ..Metrics::default()
        });
        let labels = classifier.labels().to_vec();
        let info = source.info();
        let cap = config.handoff_capacity;
        let (frames_tx, frames_rx) = handoff::handoff(cap);
        let (marked_tx, marked_rx) = handoff::handoff(cap);
        let (out_tx, outputs) = handoff::handoff(cap);
        // Decisions are rare and must not be skipped: a roomy ring, drained in order.
        let (signs_tx, signs) = handoff::handoff(256);
        // A recording drains every frame in order, a few times a second: room
        // for a few seconds of a fast camera.
        let (landmarked_tx, landmarked) = handoff::handoff(LANDMARKED_CAPACITY);
        let landmarked_tx = config.keep_landmarked.then_some(landmarked_tx);
        // The preview shows the newest frame only.
        let (preview_tx, previews) = handoff::handoff(1);
        let handoffs = [frames_tx.stats_handle(), marked_tx.stats_handle()];
        let ctx = stages::Context {
            controls: Arc::clone(&controls),
            metrics: Arc::clone(&metrics),
            every_frame: config.every_frame,
        };
        let mut threads = Vec::new();
        let mut spawn = |name: &'static str,
                         f: Box<dyn FnOnce() -> Result<(), PipelineError> + Send>|
         -> Result<(), PipelineError> {
            let stage_controls = Arc::clone(&controls);
            let handle = std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || run_stage(name, &stage_controls, f))
                .map_err(|source| PipelineError::Spawn {
                    stage: name,
                    source,
                })?;
            threads.push((name, handle));
            Ok(())
        };
        let max_frames = config.max_frames;
        let c = ctx.clone();
        spawn(
            "capture",
            Box::new(move || stages::capture(source, frames_tx, max_frames, &c)),
        )?;
        let c = ctx.clone();
        spawn(
            "landmarks",
            Box::new(move || {
                let outputs = stages::LandmarkOutputs {
                    next: marked_tx,
                    landmarked: landmarked_tx,
                    preview: preview_tx,
                };
                stages::landmarks(landmarker, &frames_rx, outputs, &c)
            }),
        )?;
        let c = ctx;
        let smoothing = config.smoothing;
        let transcript_length = config.transcript_length;
        spawn(
            "classify",
            Box::new(move || {
                let state = stages::ClassifyState::new(smoothing, transcript_length, &*classifier);
                stages::classify(classifier, state, &marked_rx, out_tx, signs_tx, &c)
            }),
        )?;
        Ok(Pipeline {
            outputs,
            signs,
            landmarked,
            previews,
            handoffs,
            controls,
            metrics,
            threads,
            labels,
            info,
        })
    }

    /// The classifier's labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// What the source is.
    pub fn source_info(&self) -> &SourceInfo {
        &self.info
    }

    /// Settings the consumer may change.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// When the pipeline started (CLOCK_MONOTONIC).
    pub fn started(&self) -> Duration {
        self.metrics.started
    }

    /// Waits up to `timeout` for the newest classified frame.
    pub fn recv_newest(&self, timeout: Duration) -> Recv<Classified> {
        self.outputs.recv_newest(timeout)
    }

    /// The newest classified frame, if one is waiting.
    pub fn take_newest(&self) -> Option<Classified> {
        self.outputs.take_newest()
    }

    /// Signs decided since the last call, oldest first.
    pub fn drain_signs(&self) -> Vec<SignEvent> {
        self.signs.drain()
    }

    /// Every landmarked frame since the last call, oldest first (only with
    /// [`PipelineConfig::keep_landmarked`]; empty otherwise).
    pub fn drain_landmarked(&self) -> Vec<LandmarkedFrame> {
        self.landmarked.drain()
    }

    /// Landmarked frames lost because nobody drained them in time.
    pub fn landmarked_dropped(&self) -> u64 {
        self.landmarked.stats().dropped
    }

    /// The newest preview frame, if one came since the last call (only while
    /// [`Controls::set_preview`] is on).
    pub fn take_preview(&self) -> Option<PreviewFrame> {
        self.previews.take_newest()
    }

    /// The first stage error or panic, as "stage: what happened", once one
    /// has happened (every stage then ends).
    pub fn failure(&self) -> Option<String> {
        self.controls.failure()
    }

    /// The controls, to outlive [`Pipeline::finish`] (e.g. to read the
    /// failure once every stage has ended).
    pub fn shared_controls(&self) -> Arc<Controls> {
        Arc::clone(&self.controls)
    }

    /// Whether every stage has finished and every output was taken.
    pub fn is_finished(&self) -> bool {
        // The threads too: a failing stage closes its outputs while it
        // unwinds, before its failure is recorded.
        self.outputs.is_finished()
            && self.signs.is_finished()
            && self.threads.iter().all(|(_, thread)| thread.is_finished())
    }

    /// Records the display of a classified frame that took `service` to draw.
    pub fn record_display(&self, service: Duration, captured: Duration) {
        lock(&self.metrics.ui).record(service, captured, monotonic_now());
    }

    /// Every figure now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = monotonic_now();
        let m = &self.metrics;
        let [to_landmarks, to_classify] = [self.handoffs[0].get(), self.handoffs[1].get()];
        let source = *lock(&m.source);
        let (e2e, recent) = {
            let guard = lock(&m.end_to_end);
            (guard.0.percentiles(), guard.1.to_vec())
        };
        let classify = lock(&m.classify).snapshot(now);
        let frames_in = m.frames_in.load(Ordering::Acquire);
        let dropped = to_landmarks.dropped + to_classify.dropped;
        MetricsSnapshot {
            elapsed_s: now.saturating_sub(m.started).as_secs_f64(),
            frames_in,
            processed: classify.processed,
            in_flight: frames_in.saturating_sub(classify.processed + dropped),
            dropped,
            drops: Drops {
                landmarks: to_landmarks.dropped,
                classify: to_classify.dropped,
                output: self.outputs.stats().dropped,
                source: source.dropped,
                corrupt: source.corrupt,
            },
            pipelined: m.pipelined.load(Ordering::Acquire),
            capture: lock(&m.capture).snapshot(now),
            landmarks: lock(&m.landmarks).snapshot(now),
            classify,
            ui: lock(&m.ui).snapshot(now),
            end_to_end: e2e,
            landmark_stages: lock(&m.landmark_stages)
                .iter()
                .map(|(name, lat)| (name.to_string(), lat.percentiles()))
                .collect(),
            recent_end_to_end: recent,
        }
    }

    /// Stops the stages (if still running), waits for them, and returns the
    /// first error any of them hit.
    pub fn finish(mut self) -> Result<MetricsSnapshot, PipelineError> {
        self.controls.stop.request();
        let mut first_error = None;
        for (name, handle) in self.threads.drain(..) {
            let result = handle.join().unwrap_or(Err(PipelineError::Panicked {
                stage: name,
                message: "(not caught)".to_string(),
            }));
            if let Err(err) = result {
                tracing::error!(stage = name, %err, "stage failed");
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(self.snapshot()),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.controls.stop.request();
        for (_, handle) in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// A stage with a bug, for the tests of how failures are handled (no real
/// model can be made to panic on demand).
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Classifier, Layout, StageFailure};

    /// Controls as a fresh pipeline has them, for tests of what uses them.
    pub(crate) fn controls() -> std::sync::Arc<super::Controls> {
        std::sync::Arc::new(super::Controls::new(
            0.5,
            false,
            false,
            super::StopFlag::new(),
        ))
    }

    /// A classifier that panics with `message` on the first full window.
    pub(crate) struct PanicsOnPredict {
        labels: Vec<String>,
        message: &'static str,
    }

    impl PanicsOnPredict {
        pub(crate) fn new(message: &'static str) -> PanicsOnPredict {
            PanicsOnPredict {
                labels: vec!["a".into(), "b".into()],
                message,
            }
        }
    }

    impl Classifier for PanicsOnPredict {
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn layout(&self) -> Layout {
            Layout::PoseHands
        }
        fn predict(&mut self, _: &[f32]) -> Result<Vec<f32>, StageFailure> {
            panic!("{}", self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::PanicsOnPredict;
    use super::*;
    use crate::capture::{Replay, ReplayConfig};
    use crate::landmarks::{Holistic, HolisticOptions};

    const CLIP: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/media/cow_correct.gif"
    );

    /// Not a sign model: a two-class rule (pose in the newest frame or not)
    /// that lets this test check the threads, windows and decisions on real
    /// landmarks without the sign model.
    struct PosePresence {
        labels: Vec<String>,
    }

    impl Classifier for PosePresence {
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn layout(&self) -> Layout {
            Layout::PoseHands
        }
        fn predict(&mut self, flat: &[f32]) -> Result<Vec<f32>, StageFailure> {
            let last = &flat[flat.len() - Layout::PoseHands.features()..];
            let pose = last[Layout::PoseHands.pose()].iter().any(|v| *v != 0.0);
            Ok(if pose { vec![1.0, 0.0] } else { vec![0.0, 1.0] })
        }
    }

    fn start(
        max_speed: bool,
        capacity: usize,
        max_frames: Option<u64>,
        stop: StopFlag,
    ) -> Pipeline {
        let classifier = PosePresence {
            labels: vec!["pose".into(), "nobody".into()],
        };
        let every_frame = false;
        let config = test_config(capacity, every_frame, max_frames);
        start_with(Box::new(classifier), max_speed, &config, stop)
    }

    /// The tests' pipeline settings: `capacity` items a hand-off.
    fn test_config(capacity: usize, every_frame: bool, max_frames: Option<u64>) -> PipelineConfig {
        PipelineConfig {
            smoothing: SmoothingConfig {
                threshold: 0.7,
                debounce: 3,
                cooldown: 2,
            },
            transcript_length: 10,
            mirror: false,
            max_frames,
            handoff_capacity: capacity,
            every_frame,
            keep_landmarked: false,
            preview: false,
        }
    }

    /// The pipeline on the Cow clip with the real landmark models.
    fn start_with(
        classifier: Box<dyn Classifier>,
        max_speed: bool,
        config: &PipelineConfig,
        stop: StopFlag,
    ) -> Pipeline {
        let source = Replay::open(&ReplayConfig {
            max_speed,
            ..ReplayConfig::new(CLIP)
        })
        .unwrap();
        let landmarker = Holistic::new(&HolisticOptions::default()).unwrap();
        Pipeline::start(
            Box::new(source),
            Box::new(landmarker),
            classifier,
            config,
            stop,
        )
        .unwrap()
    }

    #[test]
    fn a_panicking_stage_is_reported_with_its_message() {
        let classifier = PanicsOnPredict::new("index out of bounds in the test classifier");
        // Every frame through, so the window fills however loaded the machine.
        let stop = StopFlag::new();
        let config = test_config(4, true, None);
        let pipeline = start_with(Box::new(classifier), true, &config, stop.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !pipeline.is_finished() && std::time::Instant::now() < deadline {
            let _ = (pipeline.take_newest(), pipeline.drain_signs());
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every stage ended (capture too, though the clip had frames left),
        // while the user's stop flag stayed down: the dashboard stays up to
        // show the failure.
        assert!(pipeline.is_finished(), "the stages end after a failure");
        assert!(!stop.is_requested());
        let failure = pipeline.failure().expect("the panic is recorded");
        assert_eq!(
            failure,
            "classify: the thread panicked: index out of bounds in the test classifier"
        );
        // finish() stops the other stages and returns the panic.
        match pipeline.finish() {
            Err(PipelineError::Panicked { stage, message }) => {
                assert_eq!(stage, "classify");
                assert!(message.contains("index out of bounds"), "{message}");
            }
            other => panic!("expected the panic, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn max_frames_stops_the_source() {
        let pipeline = start(true, 2, Some(5), StopFlag::new());
        while !matches!(
            pipeline.recv_newest(Duration::from_millis(50)),
            Recv::Closed
        ) {}
        let m = pipeline.finish().unwrap();
        assert_eq!(m.frames_in, 5);
        assert_eq!(m.frames_in, m.processed + m.dropped);
    }

    #[test]
    fn a_stop_request_ends_every_stage() {
        let stop = StopFlag::new();
        let pipeline = start(false, 2, None, stop.clone());
        std::thread::sleep(Duration::from_millis(300));
        stop.request();
        let m = pipeline.finish().unwrap();
        assert!(
            m.frames_in < 47,
            "stopped before the end of the clip: {m:?}"
        );
    }

    #[test]
    fn controls_clamp_the_threshold() {
        let pipeline = start(true, 1, Some(1), StopFlag::new());
        pipeline.controls().set_threshold(1.7);
        assert_eq!(pipeline.controls().threshold(), 1.0);
        pipeline.controls().set_threshold(f32::NAN);
        assert_eq!(pipeline.controls().threshold(), 1.0);
        pipeline.controls().set_threshold(0.35);
        assert_eq!(pipeline.controls().threshold(), 0.35);
    }

    fn run(max_speed: bool, capacity: usize) -> (MetricsSnapshot, Vec<SignEvent>) {
        let pipeline = start(max_speed, capacity, None, StopFlag::new());
        let signs = drain_until_closed(&pipeline, Pipeline::drain_signs);
        (pipeline.finish().unwrap(), signs)
    }

    /// Everything `drain` takes from `pipeline` until its output closes.
    fn drain_until_closed<T>(pipeline: &Pipeline, drain: impl Fn(&Pipeline) -> Vec<T>) -> Vec<T> {
        let mut all = Vec::new();
        while !matches!(
            pipeline.recv_newest(Duration::from_millis(50)),
            Recv::Closed
        ) {
            all.extend(drain(pipeline));
        }
        all.extend(drain(pipeline));
        all
    }

    #[test]
    fn real_landmarks_through_the_threads_counts_add_up() {
        // Flat out into one-slot hand-offs: the landmark stage cannot keep up, so frames drop.
        let (m, signs) = run(true, 1);
        assert_eq!(m.frames_in, 47);
        assert_eq!(m.in_flight, 0);
        assert_eq!(m.frames_in, m.processed + m.dropped, "{m:?}");
        assert!(m.dropped > 0, "flat out must drop: {m:?}");
        assert_eq!(m.landmarks.processed + m.drops.landmarks, m.frames_in);
        assert!(m.end_to_end.count == m.processed && m.end_to_end.p50 > 0.0);
        assert!(
            signs.len() <= 1,
            "one held sign is recorded once: {signs:?}"
        );
    }

    #[test]
    fn queued_frames_are_pipelined_and_keep_their_keypoints_and_order() {
        // Every frame through, flat out: frames queue for the landmark stage,
        // which then runs each frame's pose beside the previous one's hands.
        let config = PipelineConfig {
            keep_landmarked: true,
            ..test_config(8, true, None)
        };
        let classifier = PosePresence {
            labels: vec!["pose".into(), "nobody".into()],
        };
        let pipeline = start_with(Box::new(classifier), true, &config, StopFlag::new());
        let landmarked = drain_until_closed(&pipeline, Pipeline::drain_landmarked);
        let m = pipeline.finish().unwrap();
        assert_eq!((m.frames_in, m.processed, m.dropped), (47, 47, 0), "{m:?}");
        assert!(m.pipelined >= 10, "{} of 47 frames pipelined", m.pipelined);
        let sequences: Vec<u64> = landmarked.iter().map(|f| f.sequence).collect();
        assert_eq!(sequences, (0..47).collect::<Vec<u64>>());
        let mut holistic = Holistic::new(&HolisticOptions::default()).unwrap();
        let frames = crate::capture::decode::MediaReader::open(std::path::Path::new(CLIP)).unwrap();
        for (i, (frame, got)) in frames.zip(&landmarked).enumerate() {
            let expected = holistic.process(&frame.unwrap()).unwrap();
            assert!(got.keypoints == expected, "frame {i}");
        }
    }
}
