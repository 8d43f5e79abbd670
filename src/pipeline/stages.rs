//! The stage threads' loops: capture, landmarks, classify. Each loop ends
//! quietly when the stop flag rises or its input closes; dropping its sender
//! then closes the next stage's input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::{Frame, Source, monotonic_now};
use crate::classify::{Decision, Smoother, SmoothingConfig, Transcript, Window};
use crate::landmarks::Keypoints;

use super::handoff::{Receiver, Recv, Sender};
use super::{
    Classified, Classifier, Controls, LandmarkedFrame, Landmarker, Metrics, PipelineError,
    PipelinedLandmarker, PreviewFrame, SignEvent, lock,
};

/// How long a stage waits for input before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(50);

/// What every stage shares.
#[derive(Clone)]
pub(super) struct Context {
    pub controls: Arc<Controls>,
    pub metrics: Arc<Metrics>,
    pub every_frame: bool,
}

impl Context {
    fn stopping(&self) -> bool {
        self.controls.stages_should_stop()
    }

    /// Hands `item` on: newest-wins normally, waiting for room when every
    /// frame must be processed.
    fn send<T: Send + 'static>(&self, out: &mut Sender<T>, item: T) {
        if self.every_frame {
            out.push_waiting(item, || self.stopping());
        } else {
            out.push(item);
        }
    }

    /// An item already waiting, without waiting for one: the newest
    /// normally, the oldest when every frame counts.
    fn take_waiting<T: Send + 'static>(&self, input: &Receiver<T>) -> Option<T> {
        if self.every_frame {
            input.take_oldest()
        } else {
            input.take_newest()
        }
    }

    /// The next item: the newest normally, the oldest when every frame counts.
    fn receive<T: Send + 'static>(&self, input: &Receiver<T>) -> Recv<T> {
        if self.every_frame {
            input.recv_oldest(POLL)
        } else {
            input.recv_newest(POLL)
        }
    }
}

/// A frame with its keypoints, between the landmark and classifier stages.
pub(super) struct Landmarked {
    sequence: u64,
    captured: Duration,
    keypoints: Keypoints,
}

/// Reads the source until it ends, `max_frames` were read, or a stop.
pub(super) fn capture(
    mut source: Box<dyn Source + Send>,
    mut out: Sender<Frame>,
    max_frames: Option<u64>,
    ctx: &Context,
) -> Result<(), PipelineError> {
    let mut read = 0u64;
    while !ctx.stopping() && max_frames.is_none_or(|max| read < max) {
        // A failed source ends every stage (run_stage records it); the
        // dashboard shows the error.
        let Some(frame) = source.next_frame()? else {
            break;
        };
        read += 1;
        let now = monotonic_now();
        let waited = now.saturating_sub(frame.timestamp);
        lock(&ctx.metrics.capture).record(waited, frame.timestamp, now);
        *lock(&ctx.metrics.source) = source.stats();
        ctx.metrics
            .frames_in
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        ctx.send(&mut out, frame);
    }
    Ok(())
}

/// Where the landmark stage's results go.
pub(super) struct LandmarkOutputs {
    /// To the classifier.
    pub next: Sender<Landmarked>,
    /// Every frame in order, for a recording (when asked for).
    pub landmarked: Option<Sender<LandmarkedFrame>>,
    /// The newest frame for the preview (while it is on).
    pub preview: Sender<PreviewFrame>,
}

/// Runs the landmark models on the newest frame each time (every frame, in
/// order, when every frame counts). When the next frame is already waiting as
/// one is taken, and the landmarker can, frames are pipelined: each frame's
/// pose beside the previous frame's hands and face, for more frames a second
/// while the stage is behind; as soon as none waits, the frame held is
/// finished (a live camera's newest-wins slot is empty once taken, so live
/// frames keep a frame's latency).
pub(super) fn landmarks(
    mut landmarker: Box<dyn Landmarker>,
    input: &Receiver<Frame>,
    mut outputs: LandmarkOutputs,
    ctx: &Context,
) -> Result<(), PipelineError> {
    // The frame pipelined: its pose found, its hands and face still to come.
    let mut pending: Option<Held> = None;
    while !ctx.stopping() {
        if let Some(held) = pending.take() {
            let finished = match ctx.take_waiting(input) {
                Some(next) => {
                    let (next, image) = Held::from(next, true);
                    pending = Some(next);
                    pipelined(&mut landmarker).push(image)
                }
                None => pipelined(&mut landmarker).flush(),
            };
            if let Some((image, keypoints)) = finished.map_err(PipelineError::Landmarks)? {
                hand_on(&held, image, keypoints, &*landmarker, &mut outputs, ctx);
            }
            continue;
        }
        let frame = match ctx.receive(input) {
            Recv::Item(frame) => frame,
            Recv::Empty => continue,
            Recv::Closed => break,
        };
        if input.has_waiting()
            && let Some(pipeline) = landmarker.pipelined()
        {
            let (held, image) = Held::from(frame, true);
            let none_yet = pipeline.push(image).map_err(PipelineError::Landmarks)?;
            debug_assert!(none_yet.is_none(), "nothing was pipelined before");
            pending = Some(held);
            continue;
        }
        let (held, image) = Held::from(frame, false);
        let keypoints = landmarker
            .process(&image)
            .map_err(PipelineError::Landmarks)?;
        hand_on(&held, image, keypoints, &*landmarker, &mut outputs, ctx);
    }
    // Stopped or out of input: the frame held is finished, not lost.
    if let Some(held) = pending
        && let Some((image, keypoints)) = pipelined(&mut landmarker)
            .flush()
            .map_err(PipelineError::Landmarks)?
    {
        hand_on(&held, image, keypoints, &*landmarker, &mut outputs, ctx);
    }
    Ok(())
}

/// A frame in the landmark stage without its pixels (which the landmarker
/// holds while it is pipelined), and when its landmarks began.
struct Held {
    sequence: u64,
    captured: Duration,
    started: Instant,
    pipelined: bool,
}

impl Held {
    fn from(frame: Frame, pipelined: bool) -> (Held, image::RgbImage) {
        let held = Held {
            sequence: frame.sequence,
            captured: frame.timestamp,
            started: Instant::now(),
            pipelined,
        };
        (held, frame.image)
    }
}

/// The landmarker's pipelined path, which a frame is held in only when it has one.
fn pipelined(landmarker: &mut Box<dyn Landmarker>) -> &mut dyn PipelinedLandmarker {
    landmarker
        .pipelined()
        .expect("a frame is held only by a landmarker that pipelines")
}

/// A frame's keypoints on to the classifier, the recording tap and the
/// preview, with the stage's metrics.
fn hand_on(
    frame: &Held,
    image: image::RgbImage,
    keypoints: Keypoints,
    landmarker: &dyn Landmarker,
    outputs: &mut LandmarkOutputs,
    ctx: &Context,
) {
    let keypoints = if ctx.controls.mirror() {
        keypoints.mirrored()
    } else {
        keypoints
    };
    lock(&ctx.metrics.landmarks).record(frame.started.elapsed(), frame.captured, monotonic_now());
    if frame.pipelined {
        ctx.metrics
            .pipelined
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
    record_sub_stages(&ctx.metrics, &landmarker.timings());
    if let Some(tap) = &mut outputs.landmarked {
        let item = LandmarkedFrame {
            sequence: frame.sequence,
            captured: frame.captured,
            keypoints: keypoints.clone(),
        };
        ctx.send(tap, item);
    }
    if ctx.controls.preview() {
        // The frame is done with: moved, not copied; the UI draws it.
        outputs.preview.push(PreviewFrame {
            keypoints: keypoints.clone(),
            mirrored: ctx.controls.mirror(),
            captured: frame.captured,
            image,
        });
    }
    ctx.send(
        &mut outputs.next,
        Landmarked {
            sequence: frame.sequence,
            captured: frame.captured,
            keypoints,
        },
    );
}

/// Adds the landmarker's sub-stage times to their histograms (in first-seen order).
fn record_sub_stages(metrics: &Metrics, timings: &[(&'static str, Duration)]) {
    if timings.is_empty() {
        return;
    }
    let mut stages = lock(&metrics.landmark_stages);
    for &(name, took) in timings {
        match stages.iter_mut().find(|(n, _)| *n == name) {
            Some((_, latency)) => latency.record(took),
            None => {
                let mut latency = super::metrics::Latency::new();
                latency.record(took);
                stages.push((name, latency));
            }
        }
    }
}

/// The classifier's own state: window, smoother, transcript.
pub(super) struct ClassifyState {
    window: Window,
    smoother: Smoother,
    transcript: Transcript,
    labels: Vec<String>,
    /// The newest window's probabilities and the sign it still holds.
    latest: Option<Vec<f32>>,
    held: Option<usize>,
    /// The last frame's sequence number.
    last_sequence: Option<u64>,
}

impl ClassifyState {
    /// Fresh state for `classifier` with the configured smoothing.
    pub fn new(
        smoothing: SmoothingConfig,
        transcript_length: usize,
        classifier: &dyn Classifier,
    ) -> ClassifyState {
        ClassifyState {
            window: classifier.window(),
            smoother: Smoother::new(smoothing),
            transcript: Transcript::new(transcript_length),
            labels: classifier.labels().to_vec(),
            latest: None,
            held: None,
            last_sequence: None,
        }
    }

    /// Fresh state for a new `classifier`, with the same smoothing and transcript length.
    fn for_replacement(&self, classifier: &dyn Classifier) -> ClassifyState {
        ClassifyState::new(
            self.smoother.config(),
            self.transcript.max_len(),
            classifier,
        )
    }

    /// Forgets the frames and the sign being held: what follows (another
    /// pass of a looped replay) is new signing, and the same sign in it is
    /// decided again.
    fn start_afresh(&mut self) {
        self.window.clear();
        self.smoother.reset();
        self.transcript.release();
        self.latest = None;
        self.held = None;
    }

    /// Feeds one window's probabilities; returns the sign to add to the
    /// transcript (if any) and the sign still held.
    fn decide(
        &mut self,
        probabilities: &[f32],
        threshold: f32,
        captured: Duration,
    ) -> (Option<Decision>, Option<usize>) {
        if self.smoother.config().threshold != threshold {
            self.smoother.set_threshold(threshold);
        }
        let top = top_class(probabilities, threshold);
        // The transcript may repeat a sign only once the decision moved off it.
        if self.transcript.last().map(|e| e.index) != top {
            self.transcript.release();
        }
        let recorded = self.smoother.update(probabilities).filter(|d| {
            let label = self.labels.get(d.index).map_or("?", String::as_str);
            self.transcript.record(d, label, captured)
        });
        let held = self
            .transcript
            .last()
            .map(|e| e.index)
            .filter(|&i| Some(i) == top);
        (recorded, held)
    }
}

/// The class above `threshold` with the highest probability.
fn top_class(probabilities: &[f32], threshold: f32) -> Option<usize> {
    probabilities
        .iter()
        .enumerate()
        .filter(|(_, p)| **p >= threshold)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

/// Windows the keypoints, classifies full windows and emits decisions.
pub(super) fn classify(
    mut classifier: Box<dyn Classifier>,
    mut state: ClassifyState,
    input: &Receiver<Landmarked>,
    mut out: Sender<Classified>,
    mut signs: Sender<SignEvent>,
    ctx: &Context,
) -> Result<(), PipelineError> {
    while !ctx.stopping() {
        if let Some(next) = ctx.controls.take_replacement() {
            state = state.for_replacement(&*next);
            classifier = next;
        }
        let item = match ctx.receive(input) {
            Recv::Item(item) => item,
            Recv::Empty => continue,
            Recv::Closed => break,
        };
        let start = Instant::now();
        // A sequence number going back starts another pass of a looped
        // replay: the frames before it are no part of the signing that
        // follows (cameras keep theirs rising, across reopens too).
        if state.last_sequence.is_some_and(|last| item.sequence < last) {
            state.start_afresh();
        }
        state.last_sequence = Some(item.sequence);
        state.window.push(item.captured, &item.keypoints);
        // A window is due once per model frame interval of capture time,
        // whatever the camera's rate: the decisions keep to time, not frames.
        let fresh = match state.window.take_due() {
            Some(window) => Some(
                classifier
                    .predict(&window)
                    .map_err(PipelineError::Classifier)?,
            ),
            None => None,
        };
        let mut decision = None;
        if let Some(p) = fresh {
            let (decided, held) = state.decide(&p, ctx.controls.threshold(), item.captured);
            decision = decided;
            state.held = held;
            state.latest = Some(p);
        }
        let probabilities = state.latest.clone();
        let held = state.held;
        let now = monotonic_now();
        lock(&ctx.metrics.classify).record(start.elapsed(), item.captured, now);
        {
            let mut e2e = lock(&ctx.metrics.end_to_end);
            e2e.0.record(now.saturating_sub(item.captured));
            e2e.1.push(now.saturating_sub(item.captured));
        }
        if let (Some(d), Some(p)) = (decision, &probabilities) {
            signs.push(SignEvent {
                sequence: item.sequence,
                captured: item.captured,
                decided: now,
                index: d.index,
                label: state.labels.get(d.index).cloned().unwrap_or_default(),
                probability: d.probability,
                probabilities: p.clone(),
            });
        }
        out.push(Classified {
            sequence: item.sequence,
            captured: item.captured,
            keypoints: item.keypoints,
            probabilities,
            held,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(labels: &[&str]) -> ClassifyState {
        ClassifyState {
            window: Window::with_default_len(crate::landmarks::Layout::PoseHands),
            latest: None,
            held: None,
            smoother: Smoother::new(SmoothingConfig {
                threshold: 0.7,
                debounce: 2,
                cooldown: 0,
            }),
            transcript: Transcript::new(10),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            last_sequence: None,
        }
    }

    #[test]
    fn a_held_sign_is_recorded_once_and_again_after_release() {
        let mut s = state(&["hello", "thanks"]);
        let hello = [0.9, 0.1];
        let none = [0.5, 0.5];
        let t = Duration::ZERO;
        assert_eq!(s.decide(&hello, 0.7, t).0, None, "debounce needs two");
        let (d, held) = s.decide(&hello, 0.7, t);
        assert_eq!(d.map(|d| d.index), Some(0));
        assert_eq!(held, Some(0));
        for _ in 0..5 {
            assert_eq!(s.decide(&hello, 0.7, t).0, None, "no repeat while held");
        }
        assert_eq!(s.decide(&none, 0.7, t), (None, None));
        s.decide(&hello, 0.7, t);
        assert_eq!(s.decide(&hello, 0.7, t).0.map(|d| d.index), Some(0));
        assert_eq!(s.transcript.len(), 2);
    }

    #[test]
    fn sub_stage_times_get_a_histogram_each() {
        let metrics = Metrics::default();
        let ms = Duration::from_millis;
        record_sub_stages(&metrics, &[("pose", ms(10)), ("hands", ms(4))]);
        record_sub_stages(&metrics, &[("pose", ms(20)), ("hands", ms(6))]);
        let stages = lock(&metrics.landmark_stages);
        let names: Vec<_> = stages.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["pose", "hands"]);
        let pose = stages[0].1.percentiles();
        assert_eq!(pose.count, 2);
        assert!((pose.p99 - 20.0).abs() < 0.05, "{pose:?}");
    }

    #[test]
    fn the_threshold_follows_the_controls() {
        let mut s = state(&["hello", "thanks"]);
        let p = [0.8, 0.2];
        s.decide(&p, 0.9, Duration::ZERO);
        assert_eq!(s.decide(&p, 0.9, Duration::ZERO).0, None);
        assert_eq!(s.smoother.config().threshold, 0.9);
        s.decide(&p, 0.75, Duration::ZERO);
        assert!(s.decide(&p, 0.75, Duration::ZERO).0.is_some());
    }
}
