//! Feature preprocessing shared by training and the live pipeline.
//!
//! The sidecar JSON of a sign model names the preprocessing it was trained
//! with; `SignModel` and the trainer both call [`Preprocessing::apply_window`],
//! so a model sees the same numbers live as it saw in training.

use serde::{Deserialize, Serialize};

use crate::landmarks::keypoints::Layout;

/// Pose indices of the shoulders (MediaPipe pose topology).
const LEFT_SHOULDER: usize = 11;
const RIGHT_SHOULDER: usize = 12;
/// Values per pose landmark (x, y, z, visibility) and per hand/face landmark.
const POSE_STRIDE: usize = 4;
const POINT_STRIDE: usize = 3;
/// Shoulder widths below this (normalised image units) mean "no usable pose".
const MIN_SHOULDER_WIDTH: f32 = 1e-3;

/// How keypoint features are transformed before the model sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocessing {
    /// Raw MediaPipe coordinates, as SignPose used them.
    None,
    /// Coordinates relative to the body: centred on the mid-shoulder point and
    /// divided by the shoulder width (x, y and z alike); visibility unchanged;
    /// a part that was not found stays all zeros. Frames without a pose become
    /// all zeros (without the pose there is no frame of reference).
    BodyRelative,
    /// Body and hand-shape features over the whole window
    /// ([`super::features`]): the default since signtop's cross-session work.
    #[default]
    HandShapes,
}

impl Preprocessing {
    /// Values per frame the model reads for keypoints of `layout`.
    pub const fn model_features(self, layout: Layout) -> usize {
        match self {
            Preprocessing::None | Preprocessing::BodyRelative => layout.features(),
            Preprocessing::HandShapes => super::features::features_per_frame(layout),
        }
    }

    /// The model's input for a window of raw keypoints (row-major frames x
    /// `layout.features()`): row-major frames x [`Preprocessing::model_features`].
    pub fn apply_window(self, layout: Layout, frames: &[f32]) -> Vec<f32> {
        match self {
            Preprocessing::None => frames.to_vec(),
            Preprocessing::BodyRelative => {
                let mut out = frames.to_vec();
                for frame in out.chunks_exact_mut(layout.features()) {
                    body_relative(layout, frame);
                }
                out
            }
            Preprocessing::HandShapes => super::features::window_features(layout, frames),
        }
    }
}

/// The body frame of reference: mid-shoulder point and shoulder width.
struct BodyFrame {
    cx: f32,
    cy: f32,
    scale: f32,
}

fn body_frame(pose: &[f32]) -> Option<BodyFrame> {
    let (lx, ly) = (
        pose[LEFT_SHOULDER * POSE_STRIDE],
        pose[LEFT_SHOULDER * POSE_STRIDE + 1],
    );
    let (rx, ry) = (
        pose[RIGHT_SHOULDER * POSE_STRIDE],
        pose[RIGHT_SHOULDER * POSE_STRIDE + 1],
    );
    let width = ((lx - rx).powi(2) + (ly - ry).powi(2)).sqrt();
    (width.is_finite() && width >= MIN_SHOULDER_WIDTH).then(|| BodyFrame {
        cx: (lx + rx) / 2.0,
        cy: (ly + ry) / 2.0,
        scale: 1.0 / width,
    })
}

fn body_relative(layout: Layout, frame: &mut [f32]) {
    let Some(body) = body_frame(&frame[layout.pose()]) else {
        frame.fill(0.0);
        return;
    };
    for point in frame[layout.pose()].chunks_exact_mut(POSE_STRIDE) {
        relocate(point, &body);
    }
    // Runs on every frame of every live window: no allocation.
    let other_parts = [
        Some(layout.left_hand()),
        Some(layout.right_hand()),
        layout.face(),
    ];
    for range in other_parts.into_iter().flatten() {
        let part = &mut frame[range];
        // A part that was not found is a zero block: keep it distinguishable.
        if part.iter().all(|v| *v == 0.0) {
            continue;
        }
        for point in part.chunks_exact_mut(POINT_STRIDE) {
            relocate(point, &body);
        }
    }
}

/// Moves one (x, y, z, ...) point into the body frame; extra values are kept.
fn relocate(point: &mut [f32], body: &BodyFrame) {
    point[0] = (point[0] - body.cx) * body.scale;
    point[1] = (point[1] - body.cy) * body.scale;
    point[2] *= body.scale;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with_shoulders(layout: Layout) -> Vec<f32> {
        let mut f = vec![0.0; layout.features()];
        f[LEFT_SHOULDER * 4] = 0.6;
        f[LEFT_SHOULDER * 4 + 1] = 0.5;
        f[RIGHT_SHOULDER * 4] = 0.4;
        f[RIGHT_SHOULDER * 4 + 1] = 0.5;
        f[RIGHT_SHOULDER * 4 + 3] = 0.9;
        f
    }

    #[test]
    fn shoulders_land_at_plus_minus_half_and_visibility_is_kept() {
        let f = frame_with_shoulders(Layout::PoseHands);
        let f = Preprocessing::BodyRelative.apply_window(Layout::PoseHands, &f);
        assert!((f[LEFT_SHOULDER * 4] - 0.5).abs() < 1e-6);
        assert!((f[RIGHT_SHOULDER * 4] + 0.5).abs() < 1e-6);
        assert!(f[LEFT_SHOULDER * 4 + 1].abs() < 1e-6);
        assert!((f[RIGHT_SHOULDER * 4 + 3] - 0.9).abs() < 1e-6);
    }

    #[test]
    fn missing_hands_stay_zero_and_found_hands_move() {
        let layout = Layout::PoseHands;
        let mut f = frame_with_shoulders(layout);
        let rh = layout.right_hand();
        f[rh.start] = 0.7;
        f[rh.start + 1] = 0.7;
        let f = Preprocessing::BodyRelative.apply_window(layout, &f);
        assert!(f[layout.left_hand()].iter().all(|v| *v == 0.0));
        assert!((f[rh.start] - 1.0).abs() < 1e-5);
        assert!((f[rh.start + 1] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_frame_without_pose_becomes_zeros_and_none_changes_nothing() {
        let layout = Layout::PoseFaceHands;
        let mut f = vec![0.25; layout.features()];
        f[LEFT_SHOULDER * 4] = 0.5;
        f[RIGHT_SHOULDER * 4] = 0.5;
        f[LEFT_SHOULDER * 4 + 1] = 0.5;
        f[RIGHT_SHOULDER * 4 + 1] = 0.5;
        assert_eq!(Preprocessing::None.apply_window(layout, &f), f);
        let f = Preprocessing::BodyRelative.apply_window(layout, &f);
        assert!(f.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn sidecar_names_are_snake_case() {
        let json = serde_json::to_string(&Preprocessing::BodyRelative).unwrap();
        assert_eq!(json, "\"body_relative\"");
        let json = serde_json::to_string(&Preprocessing::HandShapes).unwrap();
        assert_eq!(json, "\"hand_shapes\"");
    }
}
