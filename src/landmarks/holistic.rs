//! Holistic: pose, then both hands from the pose (and the face for the 1662
//! layout), as MediaPipe's `holistic_landmark_cpu` graph wires them; one frame
//! in, SignPose-layout keypoints out, tracking state kept between frames.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::hands::{HandModels, HandRois, HandTracker, Side};
use super::keypoints::{Keypoints, Layout};
use super::model::{DEFAULT_MODELS_DIR, ModelError};
use super::pose::PoseTracker;

/// What to load and which parts to find.
#[derive(Debug, Clone, PartialEq)]
pub struct HolisticOptions {
    /// Folder holding the ONNX landmark models.
    pub models_dir: PathBuf,
    /// 258 (pose + hands) or 1662 (with the face).
    pub layout: Layout,
}

impl Default for HolisticOptions {
    fn default() -> HolisticOptions {
        HolisticOptions {
            models_dir: PathBuf::from(DEFAULT_MODELS_DIR),
            layout: Layout::PoseHands,
        }
    }
}

/// Time each stage took on the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Pose detector; `None` when the pose was tracked from the previous frame.
    pub pose_detection: Option<Duration>,
    /// Pose landmark model with its crop, projection and smoothing.
    pub pose_landmarks: Duration,
    /// Hand re-crop model, both hands.
    pub hand_recrop: Duration,
    /// Hand landmark model, both hands.
    pub hands: Duration,
    /// Face path; `None` when the layout has no face.
    pub face: Option<Duration>,
    /// The whole frame.
    pub total: Duration,
}

impl StageTimings {
    /// (name, time) of each stage that ran, for metrics and benchmarks.
    pub fn stages(&self) -> Vec<(&'static str, Duration)> {
        let mut out = Vec::with_capacity(6);
        if let Some(d) = self.pose_detection {
            out.push(("pose detect", d));
        }
        out.push(("pose landmarks", self.pose_landmarks));
        out.push(("hand recrop", self.hand_recrop));
        out.push(("hands", self.hands));
        if let Some(d) = self.face {
            out.push(("face", d));
        }
        out
    }
}

/// MediaPipe Holistic (model complexity 1, detection and tracking confidence
/// 0.5) on tract.
pub struct Holistic {
    layout: Layout,
    pose: PoseTracker,
    hand_models: HandModels,
    left: HandTracker,
    right: HandTracker,
    timings: StageTimings,
}

impl Holistic {
    /// Loads the models the layout needs.
    pub fn new(options: &HolisticOptions) -> Result<Holistic, ModelError> {
        let dir = &options.models_dir;
        Ok(Holistic {
            layout: options.layout,
            pose: PoseTracker::new(dir)?,
            hand_models: HandModels::load(dir)?,
            left: HandTracker::new(Side::Left),
            right: HandTracker::new(Side::Right),
            timings: StageTimings::default(),
        })
    }

    /// The layout the keypoints are meant for.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Forgets all tracking (the next frame starts with the pose detector).
    pub fn reset(&mut self) {
        self.pose.reset();
        self.left.reset();
        self.right.reset();
    }

    /// Keypoints of one frame; frames must come in order for tracking.
    pub fn process(&mut self, image: &RgbImage) -> Result<Keypoints, ModelError> {
        if image.width() == 0 || image.height() == 0 {
            // Nothing to look at (and nothing to sample crops from).
            self.reset();
            self.timings = StageTimings::default();
            return Ok(Keypoints::default());
        }
        let started = Instant::now();
        let pose = self.pose.process(image)?;
        let pose_time = started.elapsed();
        let detection = self.pose.last_detection_time();
        let left_hand = self
            .left
            .process(&self.hand_models, image, pose.as_deref())?;
        let right_hand = self
            .right
            .process(&self.hand_models, image, pose.as_deref())?;
        let (l, r) = (self.left.last_timings(), self.right.last_timings());
        self.timings = StageTimings {
            pose_detection: detection,
            pose_landmarks: pose_time.saturating_sub(detection.unwrap_or_default()),
            hand_recrop: l.recrop + r.recrop,
            hands: l.landmarks + r.landmarks,
            face: None,
            total: started.elapsed(),
        };
        Ok(Keypoints {
            pose,
            face: None,
            left_hand,
            right_hand,
        })
    }

    /// The hand rects of the last frame, (left, right).
    pub fn last_hand_rois(&self) -> (HandRois, HandRois) {
        (self.left.last_rois(), self.right.last_rois())
    }

    /// Time each stage took on the last frame.
    pub fn last_timings(&self) -> &StageTimings {
        &self.timings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_frames_find_nothing_and_do_not_panic() {
        let mut holistic = Holistic::new(&HolisticOptions::default()).unwrap();
        for (w, h) in [(0, 0), (0, 10), (1, 1), (3, 700), (640, 2)] {
            let kp = holistic.process(&RgbImage::new(w, h)).unwrap();
            assert_eq!(kp.parts(), Default::default(), "{w}x{h}");
        }
    }
}
