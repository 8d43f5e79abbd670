//! SignPose's keypoint layout: the one contract between landmarks and classifier.
//!
//! 258 = pose 33 x (x, y, z, visibility) | left hand 21 x (x, y, z) | right hand 21 x (x, y, z)
//! 1662 = pose 33 x 4 | face 468 x 3 | left hand 21 x 3 | right hand 21 x 3
//!
//! A part that was not found is an all-zero block, exactly as SignPose's
//! `extract_keypoints` wrote it, so classifiers trained on SignPose data work here.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Landmarks in MediaPipe's pose topology.
pub const POSE_LANDMARKS: usize = 33;
/// Landmarks per hand.
pub const HAND_LANDMARKS: usize = 21;
/// Landmarks of the face mesh (without iris refinement).
pub const FACE_LANDMARKS: usize = 468;

const POSE_FEATURES: usize = POSE_LANDMARKS * 4;
const HAND_FEATURES: usize = HAND_LANDMARKS * 3;
const FACE_FEATURES: usize = FACE_LANDMARKS * 3;

/// Pairs of pose landmarks that trade places when the image is mirrored
/// (the person's left eye, ear, shoulder, ... become the right ones).
const POSE_MIRROR_PAIRS: [(usize, usize); 16] = [
    (1, 4),
    (2, 5),
    (3, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
    (17, 18),
    (19, 20),
    (21, 22),
    (23, 24),
    (25, 26),
    (27, 28),
    (29, 30),
    (31, 32),
];

/// Errors of the keypoint layout.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LayoutError {
    /// The layout name is not one signtop knows.
    #[error(
        "unknown keypoint layout {0:?}: expected 258 (pose + hands) or 1662 (pose + face + hands)"
    )]
    Unknown(String),
    /// A feature vector does not have the layout's length.
    #[error("a {layout} keypoint vector has {expected} values, got {got}")]
    WrongLength {
        layout: Layout,
        expected: usize,
        got: usize,
    },
    /// No layout has this many features.
    #[error("no keypoint layout has {0} features (expected 258 or 1662)")]
    NoLayoutWith(usize),
}

/// Which features a keypoint vector holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// Pose and both hands: 258 features.
    #[serde(rename = "258")]
    PoseHands,
    /// Pose, face mesh and both hands: 1662 features.
    #[serde(rename = "1662")]
    PoseFaceHands,
}

impl Layout {
    /// Number of features per frame.
    pub const fn features(self) -> usize {
        match self {
            Layout::PoseHands => POSE_FEATURES + 2 * HAND_FEATURES,
            Layout::PoseFaceHands => POSE_FEATURES + FACE_FEATURES + 2 * HAND_FEATURES,
        }
    }

    /// The layout with this many features.
    pub fn from_features(n: usize) -> Result<Layout, LayoutError> {
        match n {
            258 => Ok(Layout::PoseHands),
            1662 => Ok(Layout::PoseFaceHands),
            other => Err(LayoutError::NoLayoutWith(other)),
        }
    }

    /// Whether face landmarks are part of this layout (and so must be computed).
    pub const fn has_face(self) -> bool {
        matches!(self, Layout::PoseFaceHands)
    }

    /// Columns of the pose block.
    pub const fn pose(self) -> Range<usize> {
        0..POSE_FEATURES
    }

    /// Columns of the face block, if the layout has one.
    pub fn face(self) -> Option<Range<usize>> {
        self.has_face()
            .then_some(POSE_FEATURES..POSE_FEATURES + FACE_FEATURES)
    }

    /// Columns of the person's left hand.
    pub fn left_hand(self) -> Range<usize> {
        let start = self.face().map_or(POSE_FEATURES, |f| f.end);
        start..start + HAND_FEATURES
    }

    /// Columns of the person's right hand.
    pub fn right_hand(self) -> Range<usize> {
        let start = self.left_hand().end;
        start..start + HAND_FEATURES
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.features())
    }
}

impl FromStr for Layout {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "258" => Ok(Layout::PoseHands),
            "1662" => Ok(Layout::PoseFaceHands),
            other => Err(LayoutError::Unknown(other.to_string())),
        }
    }
}

/// One landmark in normalised image coordinates (x, y in 0..1 of width and
/// height, z relative depth). `visibility` is only meaningful for pose.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Landmark {
    pub x: f32,
    pub y: f32,
    pub z: f32,
    pub visibility: f32,
}

impl Landmark {
    /// A landmark with no visibility score (hands, face).
    pub const fn xyz(x: f32, y: f32, z: f32) -> Landmark {
        Landmark {
            x,
            y,
            z,
            visibility: 0.0,
        }
    }
}

/// Which parts were found in a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Parts {
    pub pose: bool,
    pub left_hand: bool,
    pub right_hand: bool,
    pub face: bool,
}

/// The landmarks of one frame, each part present or not.
/// Left and right are the person's own (as MediaPipe Holistic names them on an
/// unmirrored frame).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Keypoints {
    pub pose: Option<Vec<Landmark>>,
    pub face: Option<Vec<Landmark>>,
    pub left_hand: Option<Vec<Landmark>>,
    pub right_hand: Option<Vec<Landmark>>,
}

impl Keypoints {
    /// Which parts are present.
    pub fn parts(&self) -> Parts {
        Parts {
            pose: self.pose.is_some(),
            left_hand: self.left_hand.is_some(),
            right_hand: self.right_hand.is_some(),
            face: self.face.is_some(),
        }
    }

    /// The feature vector in `layout`, zeros for missing parts.
    pub fn to_features(&self, layout: Layout) -> Vec<f32> {
        let mut out = vec![0.0; layout.features()];
        self.write_features(layout, &mut out);
        out
    }

    /// Writes the feature vector into `out`, which must have `layout.features()` values.
    pub fn write_features(&self, layout: Layout, out: &mut [f32]) {
        assert_eq!(out.len(), layout.features(), "feature buffer size");
        out.fill(0.0);
        write_block(&self.pose, &mut out[layout.pose()], true);
        if let Some(face) = layout.face() {
            write_block(&self.face, &mut out[face], false);
        }
        write_block(&self.left_hand, &mut out[layout.left_hand()], false);
        write_block(&self.right_hand, &mut out[layout.right_hand()], false);
    }

    /// Reads a feature vector back; an all-zero block means the part was not found.
    pub fn from_features(layout: Layout, values: &[f32]) -> Result<Keypoints, LayoutError> {
        if values.len() != layout.features() {
            return Err(LayoutError::WrongLength {
                layout,
                expected: layout.features(),
                got: values.len(),
            });
        }
        Ok(Keypoints {
            pose: read_block(&values[layout.pose()], true),
            face: layout.face().and_then(|r| read_block(&values[r], false)),
            left_hand: read_block(&values[layout.left_hand()], false),
            right_hand: read_block(&values[layout.right_hand()], false),
        })
    }

    /// The same keypoints as seen in a horizontally flipped image, with meaning
    /// kept: x -> 1 - x, the hands trade places, and so do the pose's left/right
    /// points. (The face mesh is only flipped in x: its 468 points have no
    /// left/right pairing table here.)
    pub fn mirrored(&self) -> Keypoints {
        let flip = |part: &Option<Vec<Landmark>>| {
            part.as_ref().map(|pts| {
                pts.iter()
                    .map(|p| Landmark { x: 1.0 - p.x, ..*p })
                    .collect::<Vec<_>>()
            })
        };
        let pose = flip(&self.pose).map(|mut pts| {
            if pts.len() == POSE_LANDMARKS {
                for (a, b) in POSE_MIRROR_PAIRS {
                    pts.swap(a, b);
                }
            }
            pts
        });
        Keypoints {
            pose,
            face: flip(&self.face),
            left_hand: flip(&self.right_hand),
            right_hand: flip(&self.left_hand),
        }
    }
}

/// Mirrors a feature vector in place of `layout` (used by training augmentation
/// and by the live `--mirror` option alike). Missing parts stay zero.
pub fn mirror_features(layout: Layout, values: &[f32]) -> Result<Vec<f32>, LayoutError> {
    Ok(Keypoints::from_features(layout, values)?
        .mirrored()
        .to_features(layout))
}

fn write_block(part: &Option<Vec<Landmark>>, out: &mut [f32], with_visibility: bool) {
    let Some(points) = part else { return };
    let stride = if with_visibility { 4 } else { 3 };
    for (p, chunk) in points.iter().zip(out.chunks_exact_mut(stride)) {
        chunk[0] = p.x;
        chunk[1] = p.y;
        chunk[2] = p.z;
        if with_visibility {
            chunk[3] = p.visibility;
        }
    }
}

fn read_block(values: &[f32], with_visibility: bool) -> Option<Vec<Landmark>> {
    if values.iter().all(|v| *v == 0.0) {
        return None;
    }
    let stride = if with_visibility { 4 } else { 3 };
    Some(
        values
            .chunks_exact(stride)
            .map(|c| Landmark {
                x: c[0],
                y: c[1],
                z: c[2],
                visibility: if with_visibility { c[3] } else { 0.0 },
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: usize, seed: f32) -> Vec<Landmark> {
        (0..n)
            .map(|i| Landmark {
                x: seed + i as f32 * 0.001,
                y: 0.5 - i as f32 * 0.002,
                z: -0.1 * seed,
                visibility: 0.9,
            })
            .collect()
    }

    #[test]
    fn layouts_have_signpose_sizes_and_offsets() {
        assert_eq!(Layout::PoseHands.features(), 258);
        assert_eq!(Layout::PoseFaceHands.features(), 1662);
        assert_eq!(Layout::PoseHands.left_hand(), 132..195);
        assert_eq!(Layout::PoseHands.right_hand(), 195..258);
        // The shared data README: face columns are 132..1536 in the 1662 layout.
        assert_eq!(Layout::PoseFaceHands.face(), Some(132..1536));
        assert_eq!(Layout::PoseFaceHands.left_hand(), 1536..1599);
        assert_eq!(Layout::PoseFaceHands.right_hand(), 1599..1662);
        assert_eq!(Layout::PoseHands.face(), None);
    }

    #[test]
    fn parses_layout_names_and_rejects_others() {
        assert_eq!("258".parse::<Layout>(), Ok(Layout::PoseHands));
        assert_eq!(" 1662".parse::<Layout>(), Ok(Layout::PoseFaceHands));
        let err = "300".parse::<Layout>().unwrap_err();
        assert!(err.to_string().contains("\"300\""), "{err}");
        assert_eq!(Layout::from_features(1662), Ok(Layout::PoseFaceHands));
        assert!(Layout::from_features(259).is_err());
    }

    #[test]
    fn missing_parts_are_zero_blocks_and_read_back_as_missing() {
        let kp = Keypoints {
            pose: Some(part(POSE_LANDMARKS, 0.3)),
            face: None,
            left_hand: None,
            right_hand: Some(part(HAND_LANDMARKS, 0.6)),
        };
        let v = kp.to_features(Layout::PoseHands);
        assert_eq!(v.len(), 258);
        assert!(v[132..195].iter().all(|x| *x == 0.0));
        assert_eq!(v[3], 0.9, "pose visibility is the 4th value");
        assert_eq!(v[195], 0.6, "right hand x");
        let back = Keypoints::from_features(Layout::PoseHands, &v).unwrap();
        assert_eq!(back.parts(), kp.parts());
        assert_eq!(back.pose, kp.pose);
    }

    #[test]
    fn face_goes_between_pose_and_hands() {
        let kp = Keypoints {
            pose: Some(part(POSE_LANDMARKS, 0.3)),
            face: Some(part(FACE_LANDMARKS, 0.4)),
            left_hand: Some(part(HAND_LANDMARKS, 0.5)),
            right_hand: None,
        };
        let v = kp.to_features(Layout::PoseFaceHands);
        assert_eq!(v[132], 0.4);
        assert_eq!(v[1536], 0.5);
        // Dropping the face columns gives the 258 vector, as the shared data says.
        let mut without_face = v[..132].to_vec();
        without_face.extend_from_slice(&v[1536..]);
        assert_eq!(without_face, kp.to_features(Layout::PoseHands));
    }

    #[test]
    fn wrong_length_is_an_error_naming_both_sizes() {
        let err = Keypoints::from_features(Layout::PoseHands, &[0.0; 100]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a 258 keypoint vector has 258 values, got 100"
        );
    }

    #[test]
    fn mirroring_swaps_hands_and_pose_sides_and_is_an_involution() {
        let kp = Keypoints {
            pose: Some(part(POSE_LANDMARKS, 0.2)),
            face: None,
            left_hand: Some(part(HAND_LANDMARKS, 0.1)),
            right_hand: None,
        };
        let m = kp.mirrored();
        assert!(m.left_hand.is_none());
        let rh = m.right_hand.as_ref().unwrap();
        assert!((rh[0].x - 0.9).abs() < 1e-6);
        let pose = kp.pose.as_ref().unwrap();
        let mpose = m.pose.as_ref().unwrap();
        // Left shoulder (11) of the mirror image is the flipped right shoulder (12).
        assert!((mpose[11].x - (1.0 - pose[12].x)).abs() < 1e-6);
        assert!((mpose[0].x - (1.0 - pose[0].x)).abs() < 1e-6, "nose stays");
        let twice = m.mirrored();
        for (a, b) in twice.pose.unwrap().iter().zip(pose) {
            assert!((a.x - b.x).abs() < 1e-6 && a.y == b.y);
        }
        let v = mirror_features(Layout::PoseHands, &kp.to_features(Layout::PoseHands)).unwrap();
        assert!(
            v[132..195].iter().all(|x| *x == 0.0),
            "left block now empty"
        );
    }
}
