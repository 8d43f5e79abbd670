//! Features that hold across recording sessions: where the hands are on the
//! body, and what shape they make, whatever the framing.
//!
//! Per frame, from SignPose-layout keypoints:
//! - the upper body (pose points 0-22: face, shoulders, arms and the pose's
//!   own wrist and finger points) in body coordinates: x, y centred on the
//!   mid-shoulder point and divided by the shoulder width;
//! - for each hand: a found flag, its wrist in body coordinates, and its 20
//!   other points relative to the wrist divided by the hand's size (wrist to
//!   middle-finger knuckle), so a hand shape reads the same near or far;
//! - with the face (1662): a found flag and ten face-mesh points (eyes, brows,
//!   nose, lips, chin) in body coordinates.
//!
//! A hand not found in a frame is zeros with its flag at 0, at once: holding
//! a lost hand's last values for 3 frames was measured and did worse
//! (models/README.md, ablation). Lower-body points, depth of the pose and
//! visibility are left out: they differ between sessions and say nothing
//! about these signs. A frame without a pose is all zeros. The live monitor
//! and training call the same [`window_features`].

use crate::landmarks::keypoints::{HAND_LANDMARKS, Layout};

/// Pose points kept: 0 (nose) to 22 (right thumb).
const UPPER_BODY: usize = 23;
const POSE_STRIDE: usize = 4;
const LEFT_SHOULDER: usize = 11;
const RIGHT_SHOULDER: usize = 12;
/// The hand's middle-finger knuckle (MCP), whose distance from the wrist is the hand's size.
const MIDDLE_MCP: usize = 9;
/// Face-mesh points kept: eye corners, brows, nose tip, lips, chin.
const FACE_POINTS: [usize; 10] = [33, 133, 362, 263, 70, 300, 1, 13, 14, 152];
/// Shoulder widths or hand sizes below this (normalised image units) are no frame of reference.
const MIN_SCALE: f32 = 1e-3;

/// Values per hand: found flag, wrist x, y, then 20 points x, y, z.
const HAND_VALUES: usize = 3 + (HAND_LANDMARKS - 1) * 3;
/// Values of the face block: found flag, then x, y per kept point.
const FACE_VALUES: usize = 1 + FACE_POINTS.len() * 2;

/// Features per frame for a layout.
pub const fn features_per_frame(layout: Layout) -> usize {
    let base = UPPER_BODY * 2 + 2 * HAND_VALUES;
    if layout.has_face() {
        base + FACE_VALUES
    } else {
        base
    }
}

/// The body's frame of reference: mid-shoulder point and 1 / shoulder width.
#[derive(Clone, Copy)]
struct Body {
    cx: f32,
    cy: f32,
    scale: f32,
}

impl Body {
    fn of(pose: &[f32]) -> Option<Body> {
        let point = |i: usize| (pose[i * POSE_STRIDE], pose[i * POSE_STRIDE + 1]);
        let (l, r) = (point(LEFT_SHOULDER), point(RIGHT_SHOULDER));
        let width = ((l.0 - r.0).powi(2) + (l.1 - r.1).powi(2)).sqrt();
        (width.is_finite() && width >= MIN_SCALE).then(|| Body {
            cx: (l.0 + r.0) / 2.0,
            cy: (l.1 + r.1) / 2.0,
            scale: 1.0 / width,
        })
    }

    fn place(&self, x: f32, y: f32) -> [f32; 2] {
        [(x - self.cx) * self.scale, (y - self.cy) * self.scale]
    }
}

/// The features of a window: `frames` is row-major frames x `layout.features()`;
/// the result is row-major frames x [`features_per_frame`].
pub fn window_features(layout: Layout, frames: &[f32]) -> Vec<f32> {
    let width = features_per_frame(layout);
    let rows = frames.len() / layout.features();
    let mut out = vec![0.0; rows * width];
    let hands = [layout.left_hand(), layout.right_hand()];
    for (frame, row) in frames
        .chunks_exact(layout.features())
        .zip(out.chunks_exact_mut(width))
    {
        let Some(body) = Body::of(&frame[layout.pose()]) else {
            continue;
        };
        let (pose_out, rest) = row.split_at_mut(UPPER_BODY * 2);
        for (i, xy) in pose_out.chunks_exact_mut(2).enumerate() {
            let p = &frame[i * POSE_STRIDE..];
            xy.copy_from_slice(&body.place(p[0], p[1]));
        }
        let (hands_out, face_out) = rest.split_at_mut(2 * HAND_VALUES);
        for (range, slot) in hands.iter().zip(hands_out.chunks_exact_mut(HAND_VALUES)) {
            if let Some(values) = hand_values(&frame[range.clone()], &body) {
                slot.copy_from_slice(&values);
            }
        }
        if let Some(face) = layout.face() {
            face_values(&frame[face], &body, face_out);
        }
    }
    out
}

/// A found hand's values (flag, wrist, shape); `None` when it was not found.
fn hand_values(hand: &[f32], body: &Body) -> Option<[f32; HAND_VALUES]> {
    if hand.iter().all(|v| *v == 0.0) {
        return None;
    }
    let point = |i: usize| (hand[i * 3], hand[i * 3 + 1], hand[i * 3 + 2]);
    let wrist = point(0);
    let knuckle = point(MIDDLE_MCP);
    let size = ((knuckle.0 - wrist.0).powi(2) + (knuckle.1 - wrist.1).powi(2)).sqrt();
    if !size.is_finite() || size < MIN_SCALE {
        return None;
    }
    let mut values = [0.0; HAND_VALUES];
    values[0] = 1.0;
    values[1..3].copy_from_slice(&body.place(wrist.0, wrist.1));
    for (i, v) in values[3..].chunks_exact_mut(3).enumerate() {
        let p = point(i + 1);
        v[0] = (p.0 - wrist.0) / size;
        v[1] = (p.1 - wrist.1) / size;
        v[2] = (p.2 - wrist.2) / size;
    }
    Some(values)
}

/// Writes the face block (flag, kept points) when the face was found.
fn face_values(face: &[f32], body: &Body, out: &mut [f32]) {
    if face.iter().all(|v| *v == 0.0) {
        return;
    }
    out[0] = 1.0;
    for (xy, &i) in out[1..].chunks_exact_mut(2).zip(&FACE_POINTS) {
        xy.copy_from_slice(&body.place(face[i * 3], face[i * 3 + 1]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(layout: Layout, right_hand_at: Option<(f32, f32, f32)>) -> Vec<f32> {
        let mut f = vec![0.0; layout.features()];
        for (i, x) in [(LEFT_SHOULDER, 0.6), (RIGHT_SHOULDER, 0.4)] {
            f[i * 4] = x;
            f[i * 4 + 1] = 0.5;
            f[i * 4 + 3] = 0.9;
        }
        if let Some((x, y, size)) = right_hand_at {
            let rh = layout.right_hand().start;
            for p in 0..HAND_LANDMARKS {
                f[rh + p * 3] = x + size * (p as f32 % 3.0) / 2.0;
                f[rh + p * 3 + 1] = y - size * p as f32 / 9.0;
                f[rh + p * 3 + 2] = 0.01 * p as f32;
            }
        }
        f
    }

    fn right_hand(features: &[f32]) -> &[f32] {
        let start = UPPER_BODY * 2 + HAND_VALUES;
        &features[start..start + HAND_VALUES]
    }

    #[test]
    fn a_hand_shape_reads_the_same_near_and_far_and_its_place_is_on_the_body() {
        let layout = Layout::PoseHands;
        let near = window_features(layout, &frame(layout, Some((0.7, 0.4, 0.1))));
        let far = window_features(layout, &frame(layout, Some((0.3, 0.6, 0.05))));
        assert_eq!(near.len(), features_per_frame(layout));
        let (near, far) = (right_hand(&near), right_hand(&far));
        assert_eq!((near[0], far[0]), (1.0, 1.0));
        assert!((near[1] - 1.0).abs() < 1e-5 && (near[2] + 0.5).abs() < 1e-5);
        for (a, b) in near[3..].chunks(3).zip(far[3..].chunks(3)) {
            assert!((a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4);
        }
        // Shoulders at -0.5 / +0.5 of the body's width.
        let body = window_features(layout, &frame(layout, None));
        assert!((body[LEFT_SHOULDER * 2] - 0.5).abs() < 1e-6);
        assert!((body[RIGHT_SHOULDER * 2] + 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_lost_hand_is_zeros_at_once_and_a_found_one_is_not() {
        let layout = Layout::PoseHands;
        let window = [frame(layout, Some((0.7, 0.4, 0.1))), frame(layout, None)].concat();
        let features = window_features(layout, &window);
        let rows: Vec<&[f32]> = features.chunks(features_per_frame(layout)).collect();
        assert_eq!(right_hand(rows[0])[0], 1.0);
        assert!(right_hand(rows[1]).iter().all(|v| *v == 0.0));
        let left = &rows[0][UPPER_BODY * 2..UPPER_BODY * 2 + HAND_VALUES];
        assert!(left.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn a_frame_without_pose_is_zeros_and_the_face_block_exists_only_with_a_face() {
        let layout = Layout::PoseFaceHands;
        let no_pose = vec![0.3; layout.features()];
        let mut f = frame(layout, None);
        let face = layout.face().unwrap();
        f[face.start + 3] = 0.5;
        let both = [no_pose, f].concat();
        let features = window_features(layout, &both);
        let width = features_per_frame(layout);
        assert_eq!(width, features_per_frame(Layout::PoseHands) + FACE_VALUES);
        assert!(features[..width].iter().all(|v| *v == 0.0));
        assert_eq!(features[width + width - FACE_VALUES], 1.0);
    }
}
