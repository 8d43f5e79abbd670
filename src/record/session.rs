//! A recording session as pure state, driven by landmarked frames (their
//! capture timestamps are the clock: countdowns and take lengths follow the
//! frames, not the wall) and by keys. It never touches a file: it says what
//! to save or delete, and is told what was saved.

use std::time::Duration;

use crate::pipeline::LandmarkedFrame;

/// The default of [`Timing::max_gap`].
pub const DEFAULT_MAX_GAP: Duration = Duration::from_millis(500);

/// How a session is timed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Takes wanted per sign.
    pub takes: u32,
    /// Length of a take.
    pub seconds: f64,
    /// Countdown before each take.
    pub countdown: f64,
    /// A gap this long between frames mid-take (the camera went away or
    /// stalled) discards the take: it would not be one continuous movement.
    pub max_gap: Duration,
}

/// Where the session is.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Waiting for space.
    Paused,
    /// Counting down to the next take; `until` is set by the first frame.
    Countdown {
        /// Capture time the take starts at.
        until: Option<Duration>,
    },
    /// A take in progress.
    Recording {
        /// Its frames so far.
        frames: Vec<LandmarkedFrame>,
    },
    /// Every sign has its takes.
    Done,
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Nothing.
    None,
    /// Save these frames as a take of `sign`, then call [`Session::saved`].
    Save {
        /// The sign.
        sign: String,
        /// The take's frames, in capture order.
        frames: Vec<LandmarkedFrame>,
    },
    /// The take in progress was thrown away.
    Discarded(Discard),
    /// Delete the last take saved (then call [`Session::deleted`]).
    DeleteLast,
}

/// A take thrown away, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Discard {
    /// The sign it was of.
    pub sign: String,
    /// Frames it had.
    pub frames: usize,
    /// Why, e.g. "paused".
    pub reason: String,
}

/// The session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Signs, in recording order.
    pub signs: Vec<String>,
    /// Takes already in the folder when the session started, per sign.
    pub before: Vec<usize>,
    /// Takes saved this session, per sign.
    pub saved: Vec<u32>,
    /// The sign being recorded.
    pub current: usize,
    /// How takes are timed.
    pub timing: Timing,
    /// Where the session is.
    pub phase: Phase,
    /// Capture time of the newest frame seen.
    pub latest: Option<Duration>,
    /// Signs of the takes saved, newest last (what `d` deletes).
    history: Vec<usize>,
}

impl Session {
    /// A paused session over `signs` (with `before[i]` takes of sign i on disk).
    pub fn new(signs: Vec<String>, before: Vec<usize>, timing: Timing) -> Session {
        let n = signs.len();
        Session {
            signs,
            before,
            saved: vec![0; n],
            current: 0,
            timing,
            phase: Phase::Paused,
            latest: None,
            history: Vec::new(),
        }
    }

    /// The sign being recorded.
    pub fn sign(&self) -> &str {
        self.signs.get(self.current).map_or("", String::as_str)
    }

    /// Starts the countdown (space when paused).
    pub fn start(&mut self) {
        if self.phase == Phase::Paused {
            self.phase = Phase::Countdown { until: None };
        }
    }

    /// Space: start when paused, pause (discarding a take in progress) otherwise.
    pub fn toggle(&mut self) -> Step {
        match self.phase {
            Phase::Paused => {
                self.start();
                Step::None
            }
            Phase::Done => Step::None,
            _ => self.discard_into(Phase::Paused, "paused"),
        }
    }

    /// `n`: on to the next sign (a take in progress is discarded; the
    /// countdown starts again for the new sign if one was running).
    pub fn next_sign(&mut self) -> Step {
        if self.signs.is_empty() {
            return Step::None;
        }
        let running = matches!(
            self.phase,
            Phase::Countdown { .. } | Phase::Recording { .. }
        );
        let step = if running {
            self.discard_into(Phase::Countdown { until: None }, "skipped to the next sign")
        } else {
            self.phase = Phase::Paused;
            Step::None
        };
        self.current = (self.current + 1) % self.signs.len();
        step
    }

    /// `d`: asks to delete the last take saved, if any.
    pub fn delete_last(&self) -> Step {
        if self.history.is_empty() {
            Step::None
        } else {
            Step::DeleteLast
        }
    }

    /// The last take was deleted.
    pub fn deleted(&mut self) {
        if let Some(sign) = self.history.pop()
            && let Some(n) = self.saved.get_mut(sign)
        {
            *n = n.saturating_sub(1);
            if self.phase == Phase::Done {
                self.current = sign;
                self.phase = Phase::Paused;
            }
        }
    }

    /// Stops (q, a signal, end of input, a failed source): a take in
    /// progress is discarded for `reason`.
    pub fn stop(&mut self, reason: &str) -> Step {
        match self.phase {
            Phase::Recording { .. } => self.discard_into(Phase::Paused, reason),
            _ => {
                if self.phase != Phase::Done {
                    self.phase = Phase::Paused;
                }
                Step::None
            }
        }
    }

    fn discard_into(&mut self, next: Phase, reason: &str) -> Step {
        let previous = std::mem::replace(&mut self.phase, next);
        match previous {
            Phase::Recording { frames } => Step::Discarded(Discard {
                sign: self.sign().to_string(),
                frames: frames.len(),
                reason: reason.to_string(),
            }),
            _ => Step::None,
        }
    }

    /// Feeds one landmarked frame.
    pub fn on_frame(&mut self, frame: LandmarkedFrame) -> Step {
        let gap = self.latest.map(|t| frame.captured.saturating_sub(t));
        self.latest = Some(frame.captured);
        match &mut self.phase {
            Phase::Paused | Phase::Done => Step::None,
            Phase::Countdown { until } => {
                let starts = *until.get_or_insert_with(|| {
                    frame.captured + Duration::from_secs_f64(self.timing.countdown.max(0.0))
                });
                if frame.captured >= starts {
                    self.phase = Phase::Recording { frames: Vec::new() };
                    return self.on_frame_recording(frame);
                }
                Step::None
            }
            Phase::Recording { .. } if gap.is_some_and(|g| g > self.timing.max_gap) => {
                let secs = gap.unwrap_or_default().as_secs_f64();
                let reason = format!("no frames for {secs:.1} s mid-take");
                self.discard_into(Phase::Countdown { until: None }, &reason)
            }
            Phase::Recording { .. } => self.on_frame_recording(frame),
        }
    }

    fn on_frame_recording(&mut self, frame: LandmarkedFrame) -> Step {
        let Phase::Recording { frames } = &mut self.phase else {
            return Step::None;
        };
        frames.push(frame);
        if !take_is_long_enough(frames, self.timing.seconds) {
            return Step::None;
        }
        let frames = std::mem::take(frames);
        Step::Save {
            sign: self.sign().to_string(),
            frames,
        }
    }

    /// The take asked for by [`Step::Save`] is on disk: count it and go on
    /// (another countdown, the next sign, or done).
    pub fn saved(&mut self) {
        self.history.push(self.current);
        if let Some(n) = self.saved.get_mut(self.current) {
            *n += 1;
        }
        if let Some(next) = self.next_sign_needing_takes() {
            self.current = next;
            self.phase = Phase::Countdown { until: None };
        } else {
            self.phase = Phase::Done;
        }
    }

    /// The first sign from the current one on with takes still to record.
    fn next_sign_needing_takes(&self) -> Option<usize> {
        let n = self.signs.len();
        (0..n)
            .map(|i| (self.current + i) % n)
            .find(|&i| self.saved[i] < self.timing.takes)
    }

    /// Seconds left in the countdown (None before its first frame or when not counting).
    pub fn countdown_left(&self) -> Option<f64> {
        match (&self.phase, self.latest) {
            (Phase::Countdown { until: Some(until) }, Some(latest)) => {
                Some(until.saturating_sub(latest).as_secs_f64())
            }
            _ => None,
        }
    }

    /// Seconds recorded of the take in progress.
    pub fn recorded(&self) -> Option<f64> {
        match &self.phase {
            Phase::Recording { frames } => Some(span(frames)),
            _ => None,
        }
    }

    /// Takes saved in total.
    pub fn total_saved(&self) -> u32 {
        self.saved.iter().sum()
    }
}

/// A take spans its first to last capture time plus one frame interval; it is
/// long enough once that reaches `seconds`, less half an interval (so frames
/// a little late or early do not change how many a take has).
fn take_is_long_enough(frames: &[LandmarkedFrame], seconds: f64) -> bool {
    if frames.len() < 2 {
        return seconds <= 0.0;
    }
    let interval = mean_interval(frames);
    span(frames) >= seconds - interval / 2.0
}

fn mean_interval(frames: &[LandmarkedFrame]) -> f64 {
    match (frames.first(), frames.last()) {
        (Some(first), Some(last)) if frames.len() > 1 => {
            last.captured.saturating_sub(first.captured).as_secs_f64() / (frames.len() - 1) as f64
        }
        _ => 0.0,
    }
}

/// First to last capture time plus one frame interval, in seconds.
fn span(frames: &[LandmarkedFrame]) -> f64 {
    match (frames.first(), frames.last()) {
        (Some(first), Some(last)) => {
            last.captured.saturating_sub(first.captured).as_secs_f64() + mean_interval(frames)
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::Keypoints;

    fn frame(ms: u64) -> LandmarkedFrame {
        LandmarkedFrame {
            sequence: ms,
            captured: Duration::from_millis(ms),
            keypoints: Keypoints::default(),
        }
    }

    fn session(takes: u32) -> Session {
        let timing = Timing {
            takes,
            seconds: 1.0,
            countdown: 0.5,
            max_gap: DEFAULT_MAX_GAP,
        };
        Session::new(vec!["Cow".into(), "Bird".into()], vec![0, 2], timing)
    }

    /// Frames every 100 ms (a little jitter) from `from` ms until a step other than None.
    fn run_until_step(s: &mut Session, from: &mut u64) -> Step {
        for _ in 0..100 {
            let jitter = (*from / 100) % 3; // 0-2 ms late
            let step = s.on_frame(frame(*from + jitter));
            *from += 100;
            if step != Step::None {
                return step;
            }
        }
        panic!("no step");
    }

    #[test]
    fn countdown_then_a_take_of_the_asked_length() {
        let mut s = session(1);
        let mut t = 0;
        assert_eq!(s.on_frame(frame(t)), Step::None, "paused: frames ignored");
        s.toggle();
        t = 1000;
        match run_until_step(&mut s, &mut t) {
            Step::Save { sign, frames } => {
                assert_eq!(sign, "Cow");
                assert_eq!(frames.len(), 10, "1 s at 10 FPS");
                // The countdown took 0.5 s of frames: the take starts at the
                // first frame from 1.5 s on.
                let start = frames[0].captured.as_millis();
                assert!((1500..1700).contains(&start), "{start}");
            }
            other => panic!("{other:?}"),
        }
        s.saved();
        assert_eq!(s.sign(), "Bird", "one take each: on to the next sign");
        assert!(matches!(s.phase, Phase::Countdown { .. }));
        assert!(matches!(run_until_step(&mut s, &mut t), Step::Save { .. }));
        s.saved();
        assert_eq!(s.phase, Phase::Done);
        assert_eq!(s.saved, vec![1, 1]);
    }

    #[test]
    fn pause_next_and_stop_discard_only_the_take_in_progress() {
        let mut s = session(3);
        s.toggle();
        let mut t = 0;
        for _ in 0..8 {
            s.on_frame(frame(t));
            t += 100;
        }
        assert!(s.recorded().is_some());
        match s.toggle() {
            Step::Discarded(d) => {
                assert_eq!((d.sign.as_str(), d.reason.as_str()), ("Cow", "paused"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.phase, Phase::Paused);
        s.toggle();
        for _ in 0..8 {
            s.on_frame(frame(t));
            t += 100;
        }
        assert!(matches!(s.next_sign(), Step::Discarded(_)));
        assert_eq!(s.sign(), "Bird");
        assert!(matches!(s.phase, Phase::Countdown { .. }));
        for _ in 0..8 {
            s.on_frame(frame(t));
            t += 100;
        }
        match s.stop("quit") {
            Step::Discarded(d) => assert_eq!(d.reason, "quit"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.total_saved(), 0);
        assert_eq!(s.stop("quit"), Step::None, "nothing left to discard");
    }

    #[test]
    fn a_gap_in_the_frames_discards_the_take() {
        let mut s = session(1);
        s.toggle();
        let mut t = 0;
        for _ in 0..8 {
            s.on_frame(frame(t));
            t += 100;
        }
        match s.on_frame(frame(t + 2000)) {
            Step::Discarded(d) => assert!(d.reason.contains("no frames for 2.1 s"), "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.phase, Phase::Countdown { .. }));
    }

    #[test]
    fn delete_takes_back_the_last_take() {
        let mut s = session(1);
        assert_eq!(s.delete_last(), Step::None);
        s.toggle();
        let mut t = 0;
        run_until_step(&mut s, &mut t);
        s.saved();
        run_until_step(&mut s, &mut t);
        s.saved();
        assert_eq!(s.phase, Phase::Done);
        assert_eq!(s.delete_last(), Step::DeleteLast);
        s.deleted();
        assert_eq!(s.saved, vec![1, 0]);
        assert_eq!(s.sign(), "Bird", "back to the sign that lost a take");
        assert_eq!(s.phase, Phase::Paused);
    }

    #[test]
    fn the_countdown_follows_the_frames() {
        let mut s = session(1);
        s.toggle();
        assert_eq!(s.countdown_left(), None);
        s.on_frame(frame(1000));
        assert_eq!(s.countdown_left(), Some(0.5));
        s.on_frame(frame(1200));
        assert!((s.countdown_left().unwrap() - 0.3).abs() < 1e-9);
    }
}
