//! The window fed to the sign model: the last `span` seconds of keypoints,
//! by the frames' capture timestamps, resampled to the model's frame count.
//!
//! The model reads `frames` frames spaced `span / frames` apart (SignPose's
//! 30 frames over 3 s: 10 a second). Whatever the camera's rate and whatever
//! the landmark stage drops, each of those instants takes the frame captured
//! nearest to it, and a window is due once per model frame interval of
//! capture time, on a grid that starts at the first frame. So a clip replayed
//! at 10, 15 or 30 frames a second gives the model the same windows.

use std::collections::VecDeque;
use std::time::Duration;

use ndarray::Array2;

use crate::landmarks::keypoints::{Keypoints, Layout};

/// Frames per window in SignPose (`sequence_length = 30`).
pub const DEFAULT_WINDOW_LEN: usize = 30;
/// Seconds a window covers unless the model's sidecar says otherwise
/// (30 frames at the shared clips' 10 frames a second).
pub const DEFAULT_SPAN_SECONDS: f64 = 3.0;

/// Errors of the window.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    /// A pushed feature vector does not match the window's layout.
    #[error("the window holds {layout} keypoint vectors of {expected} values, got {got}")]
    WrongLength {
        /// The window's layout.
        layout: Layout,
        /// Features per frame of that layout.
        expected: usize,
        /// Length of the vector pushed.
        got: usize,
    },
}

/// Timestamped keypoint frames of one layout, and the grid of due windows.
#[derive(Clone, Debug)]
pub struct Window {
    layout: Layout,
    frames: usize,
    interval: Duration,
    /// (capture time, features), oldest first.
    held: VecDeque<(Duration, Vec<f32>)>,
    /// Capture time at which the next window is due.
    next_due: Option<Duration>,
}

impl Window {
    /// An empty window of `frames` frames (at least one) spread over `span`.
    pub fn new(layout: Layout, frames: usize, span: Duration) -> Window {
        let frames = frames.max(1);
        Window {
            layout,
            frames,
            interval: span / frames as u32,
            held: VecDeque::new(),
            next_due: None,
        }
    }

    /// SignPose's 30 frames over [`DEFAULT_SPAN_SECONDS`].
    pub fn with_default_len(layout: Layout) -> Window {
        Window::new(
            layout,
            DEFAULT_WINDOW_LEN,
            Duration::from_secs_f64(DEFAULT_SPAN_SECONDS),
        )
    }

    /// The layout of every frame in the window.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Frames held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Adds a frame's keypoints captured at `captured`.
    pub fn push(&mut self, captured: Duration, keypoints: &Keypoints) {
        let features = keypoints.to_features(self.layout);
        self.keep(captured, features);
    }

    /// Adds a ready feature vector, which must have the layout's length.
    pub fn push_features(
        &mut self,
        captured: Duration,
        features: &[f32],
    ) -> Result<(), WindowError> {
        let expected = self.layout.features();
        if features.len() != expected {
            return Err(WindowError::WrongLength {
                layout: self.layout,
                expected,
                got: features.len(),
            });
        }
        self.keep(captured, features.to_vec());
        Ok(())
    }

    /// The window due by the newest frame, if one is: row-major frames x
    /// features, oldest first. Each call gives a window at most once; when
    /// several came due at once (a slow stage), only the newest is given.
    pub fn take_due(&mut self) -> Option<Vec<f32>> {
        let newest = self.held.back()?.0;
        let due = self.next_due?;
        if newest < due {
            return None;
        }
        let missed = ((newest - due).as_nanos() / self.interval.as_nanos().max(1)) as u32;
        let end = due + self.interval * missed;
        self.next_due = Some(end + self.interval);
        Some(self.resampled(end))
    }

    /// Drops every frame and starts a new grid (e.g. after a gap in the input).
    pub fn clear(&mut self) {
        self.held.clear();
        self.next_due = None;
    }

    fn keep(&mut self, captured: Duration, features: Vec<f32>) {
        if self.held.back().is_some_and(|(t, _)| captured < *t) {
            // Time went backwards (a new source): start afresh.
            self.clear();
        }
        if self.next_due.is_none() {
            self.next_due = Some(captured + self.interval * (self.frames as u32 - 1));
        }
        self.held.push_back((captured, features));
        // Keep what the next window can use: its span and one frame before it.
        let horizon = self.interval * (self.frames as u32 + 1);
        while self.held.len() > 2 && self.held[1].0 + horizon < captured {
            self.held.pop_front();
        }
    }

    /// The held frames nearest to each of the window's instants ending at `end`.
    fn resampled(&self, end: Duration) -> Vec<f32> {
        let times: Vec<f64> = self.held.iter().map(|(t, _)| t.as_secs_f64()).collect();
        let end = end.as_secs_f64();
        let step = self.interval.as_secs_f64();
        let instants: Vec<f64> = (0..self.frames)
            .map(|k| end - step * (self.frames - 1 - k) as f64)
            .collect();
        let mut flat = Vec::with_capacity(self.frames * self.layout.features());
        for i in nearest_frames(&times, &instants) {
            flat.extend_from_slice(&self.held[i].1);
        }
        flat
    }
}

/// For each instant (ascending), the index of the nearest time in `times`
/// (ascending, not empty); a tie goes to the later frame.
pub fn nearest_frames(times: &[f64], instants: &[f64]) -> Vec<usize> {
    let mut i = 0;
    instants
        .iter()
        .map(|&t| {
            while i + 1 < times.len() && (times[i + 1] - t).abs() <= (times[i] - t).abs() {
                i += 1;
            }
            i
        })
        .collect()
}

/// A recording with capture `times` (seconds) resampled to one frame every
/// `interval` seconds from its first frame to its last, nearest frame each.
pub fn frames_at_interval(frames: &Array2<f32>, times: &[f64], interval: f64) -> Array2<f32> {
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return frames.clone();
    };
    let count = ((last - first) / interval + 0.5).floor() as usize + 1;
    let instants: Vec<f64> = (0..count).map(|k| first + interval * k as f64).collect();
    let picks = nearest_frames(times, &instants);
    frames.select(ndarray::Axis(0), &picks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::keypoints::Landmark;

    fn row(layout: Layout, value: f32) -> Vec<f32> {
        vec![value; layout.features()]
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Feeds a 10 frames-a-second clip of `n` frames (frame i holds value i)
    /// at `fps`, each frame showing the clip frame nearest its time, and
    /// returns every window given (as the first value of each frame).
    fn windows_at(fps: u64, n: u64) -> Vec<Vec<f32>> {
        let layout = Layout::PoseHands;
        let mut window = Window::new(layout, 5, ms(500));
        let mut out = Vec::new();
        let frames = n * fps / 10;
        for f in 0..frames {
            let t = f as f64 / fps as f64;
            let source = (t * 10.0).round() as u64;
            window
                .push_features(Duration::from_secs_f64(t), &row(layout, source as f32))
                .unwrap();
            if let Some(w) = window.take_due() {
                out.push(w.chunks(258).map(|c| c[0]).collect());
            }
        }
        out
    }

    #[test]
    fn a_clip_at_10_15_and_30_fps_gives_the_same_windows() {
        let ten = windows_at(10, 20);
        assert_eq!(ten.len(), 16);
        assert_eq!(ten[0], vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ten[15], vec![15.0, 16.0, 17.0, 18.0, 19.0]);
        assert_eq!(windows_at(15, 20), ten);
        assert_eq!(windows_at(30, 20), ten);
    }

    #[test]
    fn dropped_frames_are_filled_by_their_nearest_neighbours_and_late_windows_skipped() {
        let layout = Layout::PoseHands;
        let mut window = Window::new(layout, 3, ms(300));
        for (t, v) in [(0, 0.0), (100, 1.0), (290, 3.0)] {
            window.push_features(ms(t), &row(layout, v)).unwrap();
        }
        // Due at 200 ms: frames for 0, 100 and 200 ms (290 is nearer than 100).
        let w = window.take_due().unwrap();
        let firsts: Vec<f32> = w.chunks(258).map(|c| c[0]).collect();
        assert_eq!(firsts, [0.0, 1.0, 3.0]);
        assert!(window.take_due().is_none(), "once per due time");
        window.push_features(ms(620), &row(layout, 6.0)).unwrap();
        // 300, 400, 500 and 600 are due: only the newest window (ending at 600).
        let w = window.take_due().unwrap();
        let firsts: Vec<f32> = w.chunks(258).map(|c| c[0]).collect();
        assert_eq!(firsts, [3.0, 6.0, 6.0]);
        assert!(window.take_due().is_none());
    }

    #[test]
    fn a_recording_with_times_resamples_to_the_interval() {
        let frames = Array2::from_shape_fn((7, 2), |(f, _)| f as f32);
        let times = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3];
        let at = frames_at_interval(&frames, &times, 0.1);
        assert_eq!(at.column(0).to_vec(), [0.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn wrong_length_is_an_error_naming_both_sizes() {
        let mut window = Window::with_default_len(Layout::PoseHands);
        let err = window.push_features(ms(0), &[0.0; 1662]).unwrap_err();
        assert_eq!(
            err,
            WindowError::WrongLength {
                layout: Layout::PoseHands,
                expected: 258,
                got: 1662
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("258") && message.contains("1662"),
            "{message}"
        );
        assert!(window.is_empty());
    }

    #[test]
    fn push_writes_the_layouts_features_and_clear_restarts() {
        let layout = Layout::PoseHands;
        let keypoints = Keypoints {
            right_hand: Some(vec![Landmark::xyz(0.25, 0.5, -0.1); 21]),
            ..Keypoints::default()
        };
        let mut window = Window::new(layout, 2, ms(200));
        window.push(ms(0), &Keypoints::default());
        window.push(ms(100), &keypoints);
        let flat = window.take_due().unwrap();
        let expected = keypoints.to_features(layout);
        assert_eq!(&flat[258..], expected.as_slice());
        assert!(flat[..258].iter().all(|v| *v == 0.0));
        window.clear();
        assert!(window.is_empty());
        window.push(ms(5000), &keypoints);
        assert!(window.take_due().is_none(), "a new grid needs a full span");
    }
}
