//! Hands from pose, as Holistic does it (`hand_landmarks_left_and_right_cpu`):
//! a box from the pose wrist, pinky and index points, refined by the re-crop
//! model, kept from the previous frame's hand landmarks while they still fit
//! it, then 21 hand landmarks on the rotated crop. The side comes from which
//! pose wrist the box was built from: the person's own left and right.

use std::f32::consts::FRAC_PI_2;

use std::time::{Duration, Instant};

use image::RgbImage;

use super::ahead::{RunAhead, take_or_run};
use super::keypoints::{HAND_LANDMARKS, Landmark};
use super::models::{self, ModelSource};
use super::roi::{Roi, TrackingRequirements, alignment_rect_towards, rotation_from};
use super::warp::landmark_crop;
use crate::nn::{Model, ModelError};

/// Side of the re-crop model input.
const RECROP_INPUT: usize = 256;
/// Side of the hand landmark model input.
const LANDMARK_INPUT: usize = 224;
/// MediaPipe divides hand z by this after scaling it like x (`normalize_z`).
const Z_NORMALISATION: f32 = 0.4;
/// Pose wrist visibility a hand needs to be looked for.
const MIN_WRIST_VISIBILITY: f32 = 0.1;
/// Hand presence needed to keep the landmarks.
const MIN_PRESENCE: f32 = 0.5;
/// `hand_landmarks_from_pose_to_recrop_roi`: scale and shift of the pose box.
const FROM_POSE_SCALE: f32 = 2.7;
/// Shift along the rect's own y axis, shared by all three hand rects.
const SHIFT_Y: f32 = -0.1;
/// `hand_landmarks_to_roi`: scale of the previous landmarks' box.
const FROM_LANDMARKS_SCALE: f32 = 2.0;
/// `hand_tracking`: when the previous frame's ROI is kept.
const TRACKING: TrackingRequirements = TrackingRequirements {
    rotation_degrees: 40.0,
    translation: 0.2,
    scale: 0.4,
    recrop_margin: -0.1,
};

/// The person's hand (as seen on an unmirrored frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    /// Pose landmark indices of this side's wrist, pinky and index.
    const fn pose_points(self) -> [usize; 3] {
        match self {
            Side::Left => [15, 17, 19],
            Side::Right => [16, 18, 20],
        }
    }
}

/// Time spent on one hand in the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandTimings {
    /// Re-crop model and its ROI maths.
    pub recrop: Duration,
    /// Hand landmark model.
    pub landmarks: Duration,
    /// The landmarks came from the run made ahead on the tracked rect.
    pub ran_ahead: bool,
}

/// The rects one hand went through in the last frame (for drawing and
/// debugging): from the pose points, from the re-crop model, and the one the
/// landmarks were looked for in (re-crop or previous frame's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandRois {
    pub from_pose: Option<Roi>,
    pub recrop: Option<Roi>,
    pub tracking: Option<Roi>,
    /// The landmark model's hand presence score in the tracking rect.
    pub presence: Option<f32>,
}

/// The two hand models, shared by both sides (tract plans run from `&self`).
pub struct HandModels {
    recrop: Model,
    landmarker: Model,
}

impl HandModels {
    /// Loads `hand_recrop.onnx` and `hand_landmark_full.onnx` from `dir`.
    pub fn load(dir: &ModelSource) -> Result<HandModels, ModelError> {
        Ok(HandModels {
            recrop: models::load(dir, "hand_recrop.onnx", &[1, RECROP_INPUT, RECROP_INPUT, 3])?,
            landmarker: models::load(
                dir,
                "hand_landmark_full.onnx",
                &[1, LANDMARK_INPUT, LANDMARK_INPUT, 3],
            )?,
        })
    }
}

/// One side's tracking state and input buffers.
pub struct HandTracker {
    side: Side,
    previous: Option<Vec<Landmark>>,
    recrop_input: Vec<f32>,
    landmark_input: Vec<f32>,
    timings: HandTimings,
    rois: HandRois,
}

impl HandTracker {
    /// A tracker for `side` with nothing tracked yet.
    pub fn new(side: Side) -> HandTracker {
        HandTracker {
            side,
            previous: None,
            recrop_input: recrop_input(),
            landmark_input: vec![0.0; LANDMARK_INPUT * LANDMARK_INPUT * 3],
            timings: HandTimings::default(),
            rois: HandRois::default(),
        }
    }

    /// Which hand this tracker follows.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Forgets the previous frame's hand.
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Time spent in the last call to [`HandTracker::process`].
    pub fn last_timings(&self) -> HandTimings {
        self.timings
    }

    /// The rects of the last call to [`HandTracker::process`].
    pub fn last_rois(&self) -> HandRois {
        self.rois
    }

    /// The rect this side's hand is tracked in from the previous frame's
    /// landmarks, if it had a hand: the rect [`HandTracker::locate`] will
    /// choose whenever the re-crop model agrees with it, so the landmark model
    /// can run on it ahead of this frame's pose ([`HandsAhead`]).
    pub fn tracked_roi(&self, width: f32, height: f32) -> Option<Roi> {
        self.previous
            .as_deref()
            .map(|prev| roi_from_landmarks(prev, width, height))
    }

    /// This side's hand landmarks for a frame whose (smoothed) pose landmarks
    /// are `pose`; `None` when the wrist is not visible or no hand is found.
    pub fn process(
        &mut self,
        models: &HandModels,
        image: &RgbImage,
        pose: Option<&[Landmark]>,
    ) -> Result<Option<Vec<Landmark>>, ModelError> {
        let roi = self.locate(models, image, pose)?;
        self.finish(models, image, roi, None)
    }

    /// First half of [`HandTracker::process`]: the rect to look for the hand
    /// in (the re-crop model's, or the tracked one when they agree); `None`
    /// when the wrist is not visible or the re-crop model gives nothing.
    pub fn locate(
        &mut self,
        models: &HandModels,
        image: &RgbImage,
        pose: Option<&[Landmark]>,
    ) -> Result<Option<Roi>, ModelError> {
        let recropped = recrop_from_pose(self.side, models, image, pose, &mut self.recrop_input)?;
        Ok(self.locate_in(recropped))
    }

    /// [`HandTracker::locate`] once the re-crop model has looked
    /// ([`recrop_from_pose`], which needs no tracking state): the tracked rect
    /// when the re-crop agrees with it, else the re-crop's.
    pub fn locate_in(&mut self, recropped: Option<Recropped>) -> Option<Roi> {
        self.timings = HandTimings::default();
        self.rois = HandRois::default();
        let Recropped {
            from_pose,
            recrop,
            took,
            width: w,
            height: h,
        } = recropped?;
        self.timings.recrop = took;
        self.rois.from_pose = Some(from_pose);
        self.rois.recrop = recrop;
        let recrop = recrop?;
        let previous = self.previous.as_deref();
        let tracked = |prev: &[Landmark]| roi_from_landmarks(prev, w, h);
        let roi = TRACKING.tracked_or_recrop(previous, tracked, recrop, w, h);
        self.rois.tracking = Some(roi);
        Some(roi)
    }

    /// Second half of [`HandTracker::process`]: the hand landmarks in `roi`
    /// (from [`HandTracker::locate`]), taken from `ahead` when that run was
    /// made on the very same rect (same crop, same model: the same result),
    /// else run now. Remembers them for the next frame's tracking.
    pub fn finish(
        &mut self,
        models: &HandModels,
        image: &RgbImage,
        roi: Option<Roi>,
        ahead: Option<HandAhead>,
    ) -> Result<Option<Vec<Landmark>>, ModelError> {
        let found = match roi {
            None => None,
            Some(roi) => {
                let input = &mut self.landmark_input;
                let taken =
                    take_or_run(&roi, ahead, |roi| hand_landmarks(models, image, roi, input));
                self.timings.landmarks = taken.took;
                self.timings.ran_ahead = taken.ran_ahead;
                let run = taken.run?;
                self.rois.presence = run.presence;
                run.landmarks
            }
        };
        self.previous.clone_from(&found);
        Ok(found)
    }
}

/// What the re-crop model made of one side's hand in a frame, from the pose
/// alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recropped {
    /// The rect from the pose's wrist, pinky and index points.
    from_pose: Roi,
    /// The re-crop model's rect inside it, if it gave one.
    recrop: Option<Roi>,
    /// The re-crop model and its rect maths.
    took: Duration,
    width: f32,
    height: f32,
}

/// The re-crop model on `side`'s rect from `pose` (cropping into `input`);
/// `None` when the pose has no visible wrist on that side. Reads no tracking
/// state, so a frame's re-crops can run while the previous frame's hands do.
pub fn recrop_from_pose(
    side: Side,
    models: &HandModels,
    image: &RgbImage,
    pose: Option<&[Landmark]>,
    input: &mut [f32],
) -> Result<Option<Recropped>, ModelError> {
    let [wrist, pinky, index] = side.pose_points();
    let Some((wrist, pinky, index)) =
        pose.and_then(|p| Some((*p.get(wrist)?, *p.get(pinky)?, *p.get(index)?)))
    else {
        return Ok(None);
    };
    if wrist.visibility <= MIN_WRIST_VISIBILITY {
        return Ok(None);
    }
    let (w, h) = (image.width() as f32, image.height() as f32);
    let started = Instant::now();
    let from_pose = roi_from_pose(wrist, pinky, index, w, h);
    let recrop = recrop(models, image, &from_pose, input)?;
    Ok(Some(Recropped {
        from_pose,
        recrop,
        took: started.elapsed(),
        width: w,
        height: h,
    }))
}

/// A buffer for the re-crop model's input.
pub fn recrop_input() -> Vec<f32> {
    vec![0.0; RECROP_INPUT * RECROP_INPUT * 3]
}

/// The re-crop model's hand ROI inside the ROI from pose.
fn recrop(
    models: &HandModels,
    image: &RgbImage,
    from_pose: &Roi,
    input: &mut [f32],
) -> Result<Option<Roi>, ModelError> {
    let (w, h) = (image.width() as f32, image.height() as f32);
    landmark_crop(image, from_pose, RECROP_INPUT, input);
    let out = models.recrop.run(input)?;
    let Some(raw) = out.first().filter(|r| r.len() >= 4) else {
        return Ok(None);
    };
    let side = RECROP_INPUT as f32;
    let centre = from_pose.project([raw[0] / side, raw[1] / side], w, h);
    let scale_point = from_pose.project([raw[2] / side, raw[3] / side], w, h);
    let rect = alignment_rect_towards(centre, scale_point, -FRAC_PI_2, w, h);
    Ok(Some(rect.transformed(
        [1.0, 1.0],
        [0.0, SHIFT_Y],
        true,
        w,
        h,
    )))
}

/// What the hand landmark model found in one rect.
pub struct HandRun {
    /// The 21 landmarks in image coordinates, when a hand is present.
    landmarks: Option<Vec<Landmark>>,
    /// The model's hand presence score.
    presence: Option<f32>,
}

/// Runs the hand landmark model on `roi`, cropping into `input`.
fn hand_landmarks(
    models: &HandModels,
    image: &RgbImage,
    roi: &Roi,
    input: &mut [f32],
) -> Result<HandRun, ModelError> {
    landmark_crop(image, roi, LANDMARK_INPUT, input);
    let out = models.landmarker.run(input)?;
    let (Some(raw), Some(&presence)) = (out.first(), out.get(1).and_then(|f| f.first())) else {
        return Ok(HandRun {
            landmarks: None,
            presence: None,
        });
    };
    if presence <= MIN_PRESENCE || raw.len() < HAND_LANDMARKS * 3 {
        return Ok(HandRun {
            landmarks: None,
            presence: Some(presence),
        });
    }
    let (w, h) = (image.width() as f32, image.height() as f32);
    let side = LANDMARK_INPUT as f32;
    let landmarks = raw
        .chunks_exact(3)
        .take(HAND_LANDMARKS)
        .map(|v| {
            let p = roi.project([v[0] / side, v[1] / side], w, h);
            Landmark::xyz(p[0], p[1], v[2] / side / Z_NORMALISATION * roi.w)
        })
        .collect();
    Ok(HandRun {
        landmarks: Some(landmarks),
        presence: Some(presence),
    })
}

/// A hand landmark run made ahead of time on one side's tracked rect.
pub type HandAhead = RunAhead<HandRun>;

/// Runs the hand landmark model on both sides' tracked rects while the pose
/// of the frame is still being found. A tracked hand keeps its rect in most
/// frames (MediaPipe's `hand_tracking` keeps it while the re-crop model
/// agrees), and that rect depends only on the previous frame, so the model's
/// work can overlap the pose landmark model's instead of waiting for it.
pub struct HandsAhead {
    inputs: [Vec<f32>; 2],
}

impl Default for HandsAhead {
    fn default() -> HandsAhead {
        HandsAhead {
            inputs: std::array::from_fn(|_| vec![0.0; LANDMARK_INPUT * LANDMARK_INPUT * 3]),
        }
    }
}

impl HandsAhead {
    /// Hand landmarks in each given rect (left, right), one after the other.
    pub fn run(
        &mut self,
        models: &HandModels,
        image: &RgbImage,
        rois: [Option<Roi>; 2],
    ) -> [Option<HandAhead>; 2] {
        let mut out = [None, None];
        for ((slot, input), roi) in out.iter_mut().zip(&mut self.inputs).zip(rois) {
            *slot =
                roi.map(|roi| RunAhead::on(roi, |roi| hand_landmarks(models, image, roi, input)));
        }
        out
    }
}

/// `HandDetectionsFromPoseToRectsCalculator` + the 2.7x transformation: a box
/// centred on the estimated middle finger knuckle, twice its distance to the
/// wrist, turned so the wrist->knuckle direction points up.
fn roi_from_pose(wrist: Landmark, pinky: Landmark, index: Landmark, w: f32, h: f32) -> Roi {
    let middle = [
        (2.0 * index.x + pinky.x) / 3.0,
        (2.0 * index.y + pinky.y) / 3.0,
    ];
    let dx = (middle[0] - wrist.x) * w;
    let dy = (middle[1] - wrist.y) * h;
    let size = 2.0 * (dx * dx + dy * dy).sqrt();
    let rect = Roi {
        x: middle[0],
        y: middle[1],
        w: size / w,
        h: size / h,
        rotation: rotation_from([wrist.x, wrist.y], middle, FRAC_PI_2, w, h),
    };
    rect.transformed(
        [FROM_POSE_SCALE, FROM_POSE_SCALE],
        [0.0, SHIFT_Y],
        true,
        w,
        h,
    )
}

/// Palm points `HandLandmarksToRectCalculator` keeps of the 21: wrist, thumb
/// base, and the two lowest joints of each finger.
const PALM: [usize; 12] = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18];

/// Holistic's `HandLandmarksToRoi`: the box of the previous frame's palm
/// points turned so the wrist -> knuckles direction points up, scaled 2x.
fn roi_from_landmarks(lms: &[Landmark], w: f32, h: f32) -> Roi {
    let at = |i: usize| lms.get(i).map_or([0.0, 0.0], |l| [l.x, l.y]);
    let palm = PALM.map(at);
    // Towards the middle knuckle, averaged with the index and ring knuckles.
    let (wrist, index, middle, ring) = (at(0), at(5), at(9), at(13));
    let toward = [
        ((index[0] + ring[0]) / 2.0 + middle[0]) / 2.0,
        ((index[1] + ring[1]) / 2.0 + middle[1]) / 2.0,
    ];
    let rotation = rotation_from(wrist, toward, FRAC_PI_2, w, h);
    let (min, max) = bounds(palm.iter().copied());
    let centre = [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0];
    // Bounds again in the hand's own (unrotated) frame, in pixels.
    let (sin, cos) = (-rotation).sin_cos();
    let (pmin, pmax) = bounds(palm.iter().map(|p| {
        let x = (p[0] - centre[0]) * w;
        let y = (p[1] - centre[1]) * h;
        [x * cos - y * sin, x * sin + y * cos]
    }));
    let mid = [(pmin[0] + pmax[0]) / 2.0, (pmin[1] + pmax[1]) / 2.0];
    let (sin, cos) = rotation.sin_cos();
    let rect = Roi {
        x: (mid[0] * cos - mid[1] * sin + w * centre[0]) / w,
        y: (mid[0] * sin + mid[1] * cos + h * centre[1]) / h,
        w: (pmax[0] - pmin[0]) / w,
        h: (pmax[1] - pmin[1]) / h,
        rotation,
    };
    rect.transformed(
        [FROM_LANDMARKS_SCALE, FROM_LANDMARKS_SCALE],
        [0.0, SHIFT_Y],
        true,
        w,
        h,
    )
}

/// Component-wise (min, max) of points.
fn bounds(points: impl Iterator<Item = [f32; 2]>) -> ([f32; 2], [f32; 2]) {
    points.fold(
        ([f32::MAX, f32::MAX], [f32::MIN, f32::MIN]),
        |(lo, hi), p| {
            (
                [lo[0].min(p[0]), lo[1].min(p[1])],
                [hi[0].max(p[0]), hi[1].max(p[1])],
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn pose_box_is_centred_on_the_knuckles_and_upright_for_a_raised_hand() {
        let at = |x, y| Landmark {
            x,
            y,
            z: 0.0,
            visibility: 1.0,
        };
        // Wrist below, index and pinky 30 px above it: hand pointing up.
        let roi = roi_from_pose(at(0.5, 0.5), at(0.5, 0.4), at(0.5, 0.4), 300.0, 300.0);
        assert!(close(roi.rotation, 0.0), "{}", roi.rotation);
        assert!(close(roi.w, 0.2 * 2.7) && close(roi.h, 0.2 * 2.7));
        // Shifted by 10% of its (unscaled) height towards the fingertips.
        assert!(close(roi.x, 0.5) && close(roi.y, 0.38), "{roi:?}");
    }

    #[test]
    fn landmark_box_follows_the_hand_rotation() {
        // A hand lying flat, fingers to the right: turned a quarter clockwise.
        let lms: Vec<Landmark> = (0..HAND_LANDMARKS)
            .map(|i| Landmark::xyz(0.3 + 0.01 * i as f32, 0.5, 0.0))
            .collect();
        let roi = roi_from_landmarks(&lms, 200.0, 200.0);
        assert!(close(roi.rotation, FRAC_PI_2), "{}", roi.rotation);
        // Box of the palm points (x 0.30..0.48), squared and doubled.
        assert!(close(roi.w, 0.36) && close(roi.h, 0.36), "{roi:?}");
    }
}
